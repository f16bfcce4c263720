//! Pre-created containers: after each cold start the runtime creates, not starts, the
//! function's next container, with the same configuration and labels, and the next cold start
//! whose spec gives the same configuration starts that one instead, skipping the engine's create.
//! Such a container holds no process and no memory; it is removed when its function changes,
//! idles past [`SPARE_IDLE_LIMIT`], or the agent stops. It must not start a container for a spec
//! other than the one it was created for.

use super::container::{remove_container_quietly, remove_in_background, Started};
use super::DockerRuntime;
use crate::runtime::StartPhases;
use bollard::models::ContainerCreateBody;
use bollard::Docker;
use fjord_core::FunctionSpec;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after a start its function's next container is pre-created: out of the way of the
/// request the start was for.
const SPARE_CREATE_DELAY: Duration = Duration::from_millis(100);
/// A pre-created container whose function has not started an instance for this long is removed.
pub const SPARE_IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Pre-created containers one node keeps at most (created containers hold no memory or
/// processes, only their writable layer and the engine's bookkeeping).
pub const MAX_SPARES: usize = 64;
/// How often idle pre-created containers are looked for.
const SPARE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A container created for a function ahead of time and not started.
pub(super) struct Spare {
    pub(super) container: String,
    pub(super) instance_id: String,
    /// What it was created with: it serves a start only if that start's spec gives the same.
    pub(super) config: ContainerCreateBody,
}

/// Containers created ahead of time, at most one per function that started an instance in the
/// last [`SPARE_IDLE_LIMIT`], made for the spec of its last start: a cold start that finds one
/// skips the engine's create. Each carries the usual labels, so a new agent of the node removes
/// them with the rest; the runtime removes them when their function changes, idles, or the agent
/// stops.
#[derive(Default)]
pub(super) struct SpareContainers {
    state: Mutex<SpareState>,
    /// Told when a create in flight ends (for [`SpareContainers::close`]).
    settled: tokio::sync::Notify,
}

#[derive(Default)]
struct SpareState {
    functions: HashMap<String, SpareSlot>,
    /// Numbers the spares' instance ids.
    next: u64,
    closed: bool,
}

struct SpareSlot {
    ready: Option<Spare>,
    /// The instance id of the spare being created, if one is.
    creating: Option<String>,
    last_start: Instant,
}

impl SpareContainers {
    fn lock(&self) -> std::sync::MutexGuard<'_, SpareState> {
        self.state.lock().expect("spare lock poisoned")
    }

    /// Takes `function`'s spare, if it has one, and notes that the function starts an instance.
    pub(super) fn take(&self, function: &str) -> Option<Spare> {
        let mut state = self.lock();
        let slot = state.functions.get_mut(function)?;
        slot.last_start = Instant::now();
        slot.ready.take()
    }

    /// Reserves the making of `function`'s next spare: its instance id, or `None` when it has one,
    /// one is being made, or the runtime is closing.
    pub(super) fn begin_create(&self, function: &str, node_id: &str) -> Option<String> {
        let mut state = self.lock();
        let held = state
            .functions
            .values()
            .filter(|slot| slot.ready.is_some() || slot.creating.is_some())
            .count();
        if state.closed || held >= MAX_SPARES {
            return None;
        }
        state.next += 1;
        let instance_id = format!("{function}-{node_id}-s{}", state.next);
        let slot = state
            .functions
            .entry(function.to_string())
            .or_insert_with(|| SpareSlot {
                ready: None,
                creating: None,
                last_start: Instant::now(),
            });
        if slot.ready.is_some() || slot.creating.is_some() {
            return None;
        }
        slot.creating = Some(instance_id.clone());
        Some(instance_id)
    }

    /// Keeps a spare whose making [`SpareContainers::begin_create`] reserved; hands it back to be
    /// removed when the reservation was cancelled meanwhile (function changed, runtime closing).
    pub(super) fn finish_create(&self, function: &str, spare: Spare) -> Option<Spare> {
        let mut state = self.lock();
        let closed = state.closed;
        let unwanted = match state.functions.get_mut(function) {
            Some(slot) if slot.creating.as_deref() == Some(spare.instance_id.as_str()) => {
                slot.creating = None;
                match closed {
                    true => Some(spare),
                    false => slot.ready.replace(spare),
                }
            }
            _ => Some(spare),
        };
        drop(state);
        self.settled.notify_waiters();
        unwanted
    }

    /// Ends a reservation whose create failed.
    pub(super) fn abandon_create(&self, function: &str, instance_id: &str) {
        if let Some(slot) = self.lock().functions.get_mut(function) {
            if slot.creating.as_deref() == Some(instance_id) {
                slot.creating = None;
            }
        }
        self.settled.notify_waiters();
    }

    /// Forgets `function` (redeployed or removed): returns its spare, to be removed; a create in
    /// flight will be handed back by [`SpareContainers::finish_create`].
    pub(super) fn forget(&self, function: &str) -> Option<Spare> {
        self.lock().functions.remove(function)?.ready
    }

    /// Forgets the functions that started no instance within `idle_limit`; returns their spares.
    pub(super) fn idle(&self, idle_limit: Duration) -> Vec<Spare> {
        let mut state = self.lock();
        let idle: Vec<String> = state
            .functions
            .iter()
            .filter(|(_, slot)| slot.creating.is_none() && slot.last_start.elapsed() >= idle_limit)
            .map(|(name, _)| name.clone())
            .collect();
        idle.iter()
            .filter_map(|name| state.functions.remove(name)?.ready)
            .collect()
    }

    /// Stops making spares and returns every one there is, once the creates in flight (at most
    /// `within`) have ended and been handed back.
    pub(super) async fn close(&self, within: Duration) -> Vec<Spare> {
        self.lock().closed = true;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.lock().functions.values().all(|slot| slot.creating.is_none()) {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
        }
        let mut state = self.lock();
        state
            .functions
            .values_mut()
            .filter_map(|slot| slot.ready.take())
            .collect()
    }
}

/// Removes, every [`SPARE_SWEEP_EVERY`], the spares of functions idle past [`SPARE_IDLE_LIMIT`];
/// ends with the runtime.
pub(super) fn sweep_idle_spares(docker: Docker, spares: std::sync::Weak<SpareContainers>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SPARE_SWEEP_EVERY).await;
            let Some(spares) = spares.upgrade() else { return };
            for spare in spares.idle(SPARE_IDLE_LIMIT) {
                remove_container_quietly(&docker, &spare.container).await;
            }
        }
    });
}

impl DockerRuntime {
    /// Starts the function's pre-created container when there is one made for exactly this
    /// spec; `None` (and the container removed) when there is none, it no longer fits, or it
    /// does not start.
    pub(super) async fn start_spare(
        &self,
        spec: &FunctionSpec,
        secrets_dir: Option<&Path>,
        phases: &mut StartPhases,
    ) -> Option<Started> {
        let spare = self.spares.take(&spec.name)?;
        // A spare made before a redeploy or a secret's rotation mounts the wrong files.
        if spare.config != self.container_config(spec, &spare.instance_id, secrets_dir) {
            remove_in_background(&self.docker, spare.container);
            return None;
        }
        match self.start_created(&spare.container, phases).await {
            Ok(addr) => {
                phases.precreated = true;
                Some(Started {
                    container: spare.container,
                    instance_id: spare.instance_id,
                    addr,
                })
            }
            Err(e) => {
                tracing::debug!(function = %spec.name, container = %spare.container, "pre-created container: {e}");
                remove_in_background(&self.docker, spare.container);
                *phases = StartPhases::default();
                None
            }
        }
    }

    /// Creates, in the background, the container the function's next cold start will take,
    /// unless it has one or one is being made.
    pub(super) fn replenish_spare(&self, spec: &FunctionSpec, secrets_dir: Option<&Path>) {
        if !self.precreate {
            return;
        }
        let Some(instance_id) = self.spares.begin_create(&spec.name, &self.node_id) else {
            return;
        };
        let runtime = self.clone();
        let spec = spec.clone();
        let secrets_dir = secrets_dir.map(Path::to_path_buf);
        tokio::spawn(async move {
            // Out of the way of the request the cold start was for.
            tokio::time::sleep(SPARE_CREATE_DELAY).await;
            let spares = &runtime.spares;
            let secrets_dir = secrets_dir.as_deref();
            match runtime.create(&spec, &instance_id, secrets_dir).await {
                Ok(container) => {
                    let spare = Spare {
                        config: runtime.container_config(&spec, &instance_id, secrets_dir),
                        container,
                        instance_id,
                    };
                    if let Some(unwanted) = spares.finish_create(&spec.name, spare) {
                        remove_container_quietly(&runtime.docker, &unwanted.container).await;
                    }
                }
                Err(e) => {
                    spares.abandon_create(&spec.name, &instance_id);
                    tracing::debug!(function = %spec.name, "pre-creating a container: {e}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Spare, SpareContainers, MAX_SPARES};
    use bollard::models::ContainerCreateBody;
    use std::time::Duration;

    fn spare(instance_id: &str) -> Spare {
        Spare {
            container: format!("c-{instance_id}"),
            instance_id: instance_id.into(),
            config: ContainerCreateBody::default(),
        }
    }

    #[test]
    fn one_spare_per_function_and_none_after_it_changed() {
        let spares = SpareContainers::default();
        let id = spares.begin_create("echo", "n1").unwrap();
        assert_eq!(id, "echo-n1-s1");
        assert!(spares.begin_create("echo", "n1").is_none(), "one create at a time");
        assert!(spares.finish_create("echo", spare(&id)).is_none());
        assert!(spares.begin_create("echo", "n1").is_none(), "one spare per function");
        assert_eq!(spares.take("echo").unwrap().instance_id, id);
        assert!(spares.take("echo").is_none());

        // A create that finishes after its function changed is handed back to be removed.
        let id = spares.begin_create("echo", "n1").unwrap();
        assert!(spares.forget("echo").is_none());
        assert_eq!(spares.finish_create("echo", spare(&id)).unwrap().instance_id, id);
        assert!(spares.take("echo").is_none());

        // A failed create frees the function for the next.
        let id = spares.begin_create("echo", "n1").unwrap();
        spares.abandon_create("echo", &id);
        assert!(spares.begin_create("echo", "n1").is_some());
    }

    #[test]
    fn spares_are_bounded_and_idle_ones_given_up() {
        let spares = SpareContainers::default();
        for i in 0..MAX_SPARES {
            let id = spares.begin_create(&format!("f{i}"), "n").unwrap();
            assert!(spares.finish_create(&format!("f{i}"), spare(&id)).is_none());
        }
        assert!(spares.begin_create("one-more", "n").is_none());
        assert!(spares.idle(Duration::from_secs(3600)).is_empty());
        assert_eq!(spares.idle(Duration::ZERO).len(), MAX_SPARES);
        assert!(spares.take("f0").is_none());
        assert!(spares.begin_create("one-more", "n").is_some());
    }

    #[tokio::test]
    async fn closing_hands_back_every_spare_and_refuses_new_ones() {
        let spares = SpareContainers::default();
        let kept = spares.begin_create("a", "n").unwrap();
        assert!(spares.finish_create("a", spare(&kept)).is_none());
        let late = spares.begin_create("b", "n").unwrap();
        let closing = spares.close(Duration::from_secs(10));
        tokio::pin!(closing);
        // The close waits for the create in flight, which is then handed back too.
        assert!(futures::poll!(closing.as_mut()).is_pending());
        assert!(spares.finish_create("b", spare(&late)).is_some());
        let left = closing.await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].instance_id, kept);
        assert!(spares.begin_create("c", "n").is_none());
    }
}
