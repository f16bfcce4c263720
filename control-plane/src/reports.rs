//! What the leader's loops last concluded, kept for `fjord describe`, `fjord nodes` and the
//! metrics: the scheduler's per-function report ([`SchedulingReport`]) and the node
//! autoscaler's per-group report ([`NodeGroupsReport`]), and the queue's depth per function
//! ([`QueueDepths`]). Soft state on the leader, rebuilt by
//! the next one within a tick. The loops write here and [`crate::member::Member`] holds the
//! reports; this module depends on neither, so the imports go one way.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Scaling decisions kept per function for `fjord describe`.
pub(crate) const DECISIONS_KEPT: usize = 20;

/// One change of a function's desired count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScalingDecision {
    pub(crate) at_ms: u64,
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) reason: String,
    pub(crate) stable_concurrency: f64,
    pub(crate) panic_concurrency: f64,
}

/// Desired instances not placed (or held on a draining node), and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingReport {
    pub(crate) instances: u32,
    pub(crate) reason: String,
    /// Memory the instances need in all.
    pub(crate) memory_mib: u64,
    /// Pending for lack of room: more nodes would place them (not so when an instance is
    /// larger than any node, or when it is held on a draining node).
    pub(crate) for_room: bool,
    /// Held on a draining node: placed there, waiting for room elsewhere (not pending).
    pub(crate) held: bool,
}

/// What the leader's scheduler last concluded about one function.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FunctionReport {
    pub(crate) desired: u32,
    pub(crate) pending: Vec<PendingReport>,
    pub(crate) decisions: VecDeque<ScalingDecision>,
}

/// The scheduler's conclusions, readable by the Admin service on the leader.
#[derive(Default)]
pub(crate) struct SchedulingReport {
    functions: Mutex<BTreeMap<String, FunctionReport>>,
}

impl SchedulingReport {
    pub(crate) fn function(&self, name: &str) -> Option<FunctionReport> {
        self.functions.lock().expect("report lock poisoned").get(name).cloned()
    }

    pub(crate) fn update(&self, name: &str, f: impl FnOnce(&mut FunctionReport)) {
        f(self
            .functions
            .lock()
            .expect("report lock poisoned")
            .entry(name.to_string())
            .or_default());
    }

    /// Desired instances placed nowhere, over every function (held ones are placed).
    pub(crate) fn pending_instances(&self) -> u32 {
        let functions = self.functions.lock().expect("report lock poisoned");
        functions
            .values()
            .flat_map(|f| f.pending.iter())
            .filter(|p| !p.held)
            .map(|p| p.instances)
            .sum()
    }

    /// Instances pending for lack of room, over every function: (instances, memory MiB).
    pub(crate) fn pending_for_room(&self) -> (u32, u64) {
        let functions = self.functions.lock().expect("report lock poisoned");
        functions
            .values()
            .flat_map(|f| f.pending.iter())
            .filter(|p| p.for_room)
            .fold((0, 0), |(n, mib), p| (n + p.instances, mib + p.memory_mib))
    }

    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.functions
            .lock()
            .expect("report lock poisoned")
            .retain(|name, _| keep(name));
    }
}

/// What the node autoscaler last saw and concluded for one group (soft state on the leader).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GroupReport {
    pub(crate) provider: String,
    pub(crate) desired: u32,
    pub(crate) min: u32,
    /// The provider's max.
    pub(crate) max: u32,
    /// The most nodes the group may have now: the lower of the policy's `max_nodes` and the
    /// provider's max.
    pub(crate) effective_max: u32,
    /// Memory of the instances pending for room that this group cannot make room for, because
    /// it holds at its max (0 when it can grow, or when nothing is pending).
    pub(crate) unplaceable_memory_mib: u64,
    /// Machines the provider lists.
    pub(crate) instances: u32,
    /// Registered nodes of the group (terminated ones left out).
    pub(crate) nodes: Vec<String>,
    /// The latest decision or hold, or the provider's error, in words.
    pub(crate) status: String,
    pub(crate) updated_at_ms: u64,
}

/// The node autoscaler's reports per group, readable by the Admin service and the metrics.
#[derive(Default)]
pub(crate) struct NodeGroupsReport {
    groups: Mutex<BTreeMap<String, GroupReport>>,
}

impl NodeGroupsReport {
    pub(crate) fn all(&self) -> BTreeMap<String, GroupReport> {
        self.groups.lock().expect("group report lock poisoned").clone()
    }

    pub(crate) fn set(&self, name: &str, report: GroupReport) {
        self.groups
            .lock()
            .expect("group report lock poisoned")
            .insert(name.to_string(), report);
    }

    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.groups
            .lock()
            .expect("group report lock poisoned")
            .retain(|name, _| keep(name));
    }
}

/// The asynchronous calls waiting per function, as the leader last read them from the queue.
#[derive(Default)]
pub(crate) struct QueueDepths {
    read: Mutex<QueueRead>,
}

#[derive(Default, Clone)]
struct QueueRead {
    functions: BTreeMap<String, fjord_events::queue::Depth>,
    /// Why the last read failed (or why there is no queue), if it did.
    error: Option<String>,
}

impl QueueDepths {
    /// Replaces what is known by one read of every function.
    pub(crate) fn set(&self, functions: BTreeMap<String, fjord_events::queue::Depth>) {
        *self.read.lock().expect("queue depth lock poisoned") = QueueRead { functions, error: None };
    }

    /// Records that the queue could not be read: what was known is no longer.
    pub(crate) fn set_error(&self, error: String) {
        *self.read.lock().expect("queue depth lock poisoned") = QueueRead {
            functions: BTreeMap::new(),
            error: Some(error),
        };
    }

    /// Forgets everything (this member no longer leads).
    pub(crate) fn clear(&self) {
        *self.read.lock().expect("queue depth lock poisoned") = QueueRead::default();
    }

    pub(crate) fn get(&self, function: &str) -> Option<fjord_events::queue::Depth> {
        self.read
            .lock()
            .expect("queue depth lock poisoned")
            .functions
            .get(function)
            .copied()
    }

    pub(crate) fn all(&self) -> BTreeMap<String, fjord_events::queue::Depth> {
        self.read.lock().expect("queue depth lock poisoned").functions.clone()
    }

    /// What the last read found for `function` and, when it failed, why.
    pub(crate) fn read(&self, function: &str) -> (Option<fjord_events::queue::Depth>, Option<String>) {
        let read = self.read.lock().expect("queue depth lock poisoned");
        (read.functions.get(function).copied(), read.error.clone())
    }
}
