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

pub(crate) struct Liveness {
    /// When this member last took office (or started): until one timeout after it, a node not
    /// heard from is given the benefit of the doubt.
    grace_from: Mutex<Instant>,
    timeout: Duration,
    seen: Mutex<HashMap<String, Seen>>,
    /// Bumped when a heartbeat changes what routing depends on (warm sets, a node coming back).
    changed: watch::Sender<u64>,
}

impl Liveness {
    pub(crate) fn new(timeout: Duration) -> Self {
        Liveness {
            grace_from: Mutex::new(Instant::now()),
            timeout,
            seen: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }

    /// Starts a new grace period: called when this member becomes leader, since heartbeats only
    /// reach the leader and it has heard from nobody yet.
    pub(crate) fn restart_grace(&self) {
        *self.grace_from.lock().expect("liveness lock poisoned") = Instant::now();
    }

    /// Records a heartbeat.
    pub(crate) fn heartbeat(&self, node_id: &str, load: NodeLoad) {
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

    /// Whether the node may be alive: it has heartbeated within the timeout, or this member took
    /// office less than one timeout ago. A new leader has heard from nobody yet (heartbeats reach
    /// only the leader, and what it saw in an earlier term, or at a node's registration, is
    /// stale), so every node keeps its place in the routing table until the agents had a full
    /// timeout to find the new leader: a leader change never empties the table.
    pub(crate) fn is_alive(&self, node_id: &str) -> bool {
        self.heard_recently(node_id) || self.in_grace()
    }

    /// Whether the node has heartbeated within the timeout. A node committed down comes back
    /// only on this, never on the grace of a new term.
    pub(crate) fn heard_recently(&self, node_id: &str) -> bool {
        self.seen
            .lock()
            .expect("liveness lock poisoned")
            .get(node_id)
            .is_some_and(|seen| seen.at.elapsed() < self.timeout)
    }

    fn in_grace(&self) -> bool {
        self.grace_from.lock().expect("liveness lock poisoned").elapsed() < self.timeout
    }

    /// The node's last reported load and how long ago it came.
    pub(crate) fn last_report(&self, node_id: &str) -> Option<(NodeLoad, Duration)> {
        self.seen
            .lock()
            .expect("liveness lock poisoned")
            .get(node_id)
            .map(|s| (s.load.clone(), s.at.elapsed()))
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
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
    fn a_node_last_heard_before_taking_office_is_alive_for_one_timeout_from_it() {
        let liveness = Liveness::new(Duration::from_millis(200));
        liveness.heartbeat("n1", NodeLoad::default());
        // The heartbeat ages past the timeout while this member is a follower.
        *liveness.grace_from.lock().unwrap() = Instant::now() - Duration::from_secs(5);
        liveness.seen.lock().unwrap().get_mut("n1").unwrap().at = Instant::now() - Duration::from_secs(5);
        assert!(!liveness.is_alive("n1"), "stale and out of grace: dead");
        liveness.restart_grace();
        assert!(
            liveness.is_alive("n1"),
            "a new term gives the stale node a full timeout"
        );
        assert!(liveness.is_alive("never-seen"), "and a node never heard from");
        assert!(!liveness.heard_recently("n1"), "but it has not been heard from");
        *liveness.grace_from.lock().unwrap() = Instant::now() - Duration::from_millis(250);
        assert!(!liveness.is_alive("n1"), "after the grace only heartbeats count");
        liveness.heartbeat("n1", NodeLoad::default());
        assert!(liveness.is_alive("n1") && liveness.heard_recently("n1"));
    }

    #[test]
    fn unknown_nodes_are_alive_only_during_the_startup_grace() {
        let liveness = Liveness::new(Duration::from_millis(0));
        assert!(!liveness.is_alive("never-seen"));
        let liveness = Liveness::new(Duration::from_secs(60));
        assert!(liveness.is_alive("never-seen"));
    }
}
