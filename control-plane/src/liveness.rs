//! Soft state: which nodes are alive and what they report, from heartbeats. Never written to
//! the Raft log; rebuilt within one heartbeat interval after a restart.

use fjord_core::NodeLoad;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

struct Seen {
    at: Instant,
    load: NodeLoad,
}

pub struct Liveness {
    started: Mutex<Instant>,
    timeout: Duration,
    seen: Mutex<HashMap<String, Seen>>,
    /// Bumped when a heartbeat changes what routing depends on (warm sets, a node coming back).
    changed: watch::Sender<u64>,
}

impl Liveness {
    pub fn new(timeout: Duration) -> Self {
        Liveness {
            started: Mutex::new(Instant::now()),
            timeout,
            seen: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts a new grace period: called when this member becomes leader, since heartbeats only
    /// reach the leader and it has heard from nobody yet.
    pub fn restart_grace(&self) {
        *self.started.lock().expect("liveness lock poisoned") = Instant::now();
    }

    /// Records a heartbeat.
    pub fn heartbeat(&self, node_id: &str, load: NodeLoad) {
        let mut seen = self.seen.lock().expect("liveness lock poisoned");
        let routing_changed = match seen.get(node_id) {
            Some(prev) => prev.at.elapsed() >= self.timeout || warm_set(&prev.load) != warm_set(&load),
            None => true,
        };
        seen.insert(
            node_id.to_string(),
            Seen {
                at: Instant::now(),
                load,
            },
        );
        drop(seen);
        if routing_changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// Whether the node has heartbeated within the timeout. A member that has just started has
    /// heard from nobody yet: it gives registered nodes the benefit of the doubt for one timeout,
    /// so a control-plane restart does not empty the routing table.
    pub fn is_alive(&self, node_id: &str) -> bool {
        match self.seen.lock().expect("liveness lock poisoned").get(node_id) {
            Some(seen) => seen.at.elapsed() < self.timeout,
            None => self.started.lock().expect("liveness lock poisoned").elapsed() < self.timeout,
        }
    }

    /// The node's last reported load and how long ago it came.
    pub fn last_report(&self, node_id: &str) -> Option<(NodeLoad, Duration)> {
        self.seen
            .lock()
            .expect("liveness lock poisoned")
            .get(node_id)
            .map(|s| (s.load.clone(), s.at.elapsed()))
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

fn warm_set(load: &NodeLoad) -> Vec<(&str, u64)> {
    load.functions
        .iter()
        .filter(|(_, f)| f.ready > 0)
        .map(|(name, f)| (name.as_str(), f.revision))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::node::FunctionLoad;

    #[test]
    fn heartbeats_keep_nodes_alive_and_warm_changes_notify() {
        let liveness = Liveness::new(Duration::from_secs(60));
        let rx = liveness.subscribe();
        liveness.heartbeat("n1", NodeLoad::default());
        assert!(liveness.is_alive("n1"));
        let first = *rx.borrow();
        liveness.heartbeat("n1", NodeLoad::default());
        assert_eq!(*rx.borrow(), first, "an identical heartbeat does not disturb routing");
        let mut load = NodeLoad::default();
        load.functions.insert(
            "echo".into(),
            FunctionLoad {
                revision: 1,
                ready: 1,
                ..Default::default()
            },
        );
        liveness.heartbeat("n1", load);
        assert!(*rx.borrow() > first);
    }

    #[test]
    fn unknown_nodes_are_alive_only_during_the_startup_grace() {
        let liveness = Liveness::new(Duration::from_millis(0));
        assert!(!liveness.is_alive("never-seen"));
        let liveness = Liveness::new(Duration::from_secs(60));
        assert!(liveness.is_alive("never-seen"));
    }
}
