//! Placement: on which nodes the instances of each function run, as the scheduler plans it.
//!
//! [`plan`] takes the nodes (capacity, zone, state), the current placements and, per function,
//! its spec and desired instance count, and returns a [`PlacementPlan`]: the new placements,
//! the instances to relocate (start the new one, then stop the old), the instances left on
//! draining nodes for want of room, and what could not be placed, with the reason. The rules:
//!
//! - **Capacity.** A node never carries more instances than its declared memory and CPU hold,
//!   counting every function's instances at their spec's `memory_mib` and `cpu_millis`.
//! - **Minimal movement.** Instances on ready nodes stay where they are while they fit. When a
//!   function scales down, instances go first from the node holding most of them, then from the
//!   zone holding most, then from the node latest in the function's hashing order. A plan fed
//!   back as the current placements gives itself again (a fixpoint), so planning at every
//!   change never churns.
//! - **Hashing order.** A new instance goes to the first node with room in
//!   [`bounded_load_order`] over the ready nodes, the loads being the function's own instances
//!   per node: a function lives on its home node, where the lb sends its requests first, and a
//!   function with many instances spreads over its own next choices, at most `c` times its fair
//!   share per node.
//! - **Spread.** A function that wants two or more instances runs on at least two nodes when
//!   another ready node has room, and in at least two zones when the ready nodes carry zone
//!   labels and another zone has room. New instances go to a new zone (then a new node) first;
//!   a function already placed on one node or zone has one instance moved when room appears
//!   elsewhere (a node joined), and only then.
//! - **Draining and down nodes** get no new instances. Instances on a down node are placed again
//!   elsewhere. Instances on a draining node are placed elsewhere and reported as [`Move`]s, so
//!   the caller starts the new instance before it stops the old; those that fit nowhere else stay
//!   on the draining node ([`Held`]) until room appears.
//! - **Accounting.** Every desired instance is placed (on a ready node, or held on a draining
//!   one) or listed in [`PlacementPlan::pending`] with the reason.
//! - **Determinism.** The same input gives the same plan, whatever order nodes and functions come
//!   in: maps are `BTreeMap`s, functions are planned in name order (one instance each in turn
//!   when room is short), and a repeated node id or function name counts once (the first).
//!
//! Pure: no I/O, no clock. The plan is what to aim for; committing it and telling agents is the
//! control plane's business.

mod planner;
mod relocations;
mod spread;
#[cfg(test)]
mod tests;

use fjord_core::node::NodeInfo;
use fjord_core::spec::FunctionSpec;
use std::collections::BTreeMap;
use std::fmt;

pub use planner::plan;

/// A node's lifecycle state, as committed in the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeState {
    /// Takes new instances.
    Ready,
    /// Keeps its instances until they run elsewhere; takes no new ones.
    Draining,
    /// Gone: its instances are lost and placed again.
    Down,
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementNode {
    pub info: NodeInfo,
    pub state: NodeState,
}

/// Instances per node per function: function name → node id → instance count.
pub type Placements = BTreeMap<String, BTreeMap<String, u32>>;

/// One function to place: its spec (name, memory, CPU) and how many instances it should have.
#[derive(Debug, Clone, Copy)]
pub struct FunctionDemand<'a> {
    pub spec: &'a FunctionSpec,
    pub desired: u32,
}

/// Instances to relocate: start `instances` new ones on `to`, then stop as many on `from`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    pub function: String,
    pub from: String,
    pub to: String,
    pub instances: u32,
}

/// Instances left on a draining node because no ready node has room for them; they are part of
/// the plan's placements and the drain cannot finish until room appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub function: String,
    pub node: String,
    pub instances: u32,
    pub reason: PendingReason,
}

/// Desired instances that could not be placed anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub function: String,
    pub instances: u32,
    pub reason: PendingReason,
}

/// Why an instance found no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingReason {
    /// No node is ready: all are draining or down (or there are none).
    NoReadyNode { draining: usize, down: usize },
    /// No ready node is that large, even empty.
    LargerThanAnyNode { memory_mib: u32, cpu_millis: u32 },
    /// No ready node has the memory free.
    NoFreeMemory { memory_mib: u32 },
    /// Memory is free somewhere, but no ready node has the CPU free.
    NoFreeCpu { cpu_millis: u32 },
    /// Some ready nodes have the memory free and some the CPU, but none both.
    NoNodeWithBoth { memory_mib: u32, cpu_millis: u32 },
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::NoReadyNode { draining, down } => {
                write!(
                    f,
                    "no node is ready ({draining} draining, {down} down); add or restore a node"
                )
            }
            PendingReason::LargerThanAnyNode { memory_mib, cpu_millis } => write!(
                f,
                "an instance needs {memory_mib} MiB and {cpu_millis} millicores, more than any ready node has; \
                 lower the function's memory_mib or cpu_millis, or add a larger node"
            ),
            PendingReason::NoFreeMemory { memory_mib } => {
                write!(f, "no ready node has {memory_mib} MiB of memory free; add a node")
            }
            PendingReason::NoFreeCpu { cpu_millis } => {
                write!(f, "no ready node has {cpu_millis} millicores of CPU free; add a node")
            }
            PendingReason::NoNodeWithBoth { memory_mib, cpu_millis } => write!(
                f,
                "no ready node has both {memory_mib} MiB of memory and {cpu_millis} millicores free; add a node"
            ),
        }
    }
}

/// What the scheduler should aim for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementPlan {
    /// Every placed instance: on ready nodes, and those [`held`](Self::held) on draining nodes.
    /// No zero counts, no function without instances.
    pub placements: Placements,
    /// Instances leaving a node that still runs them (draining, or a spread or capacity repair):
    /// start the new ones first. Instances of down nodes are not moves, just new placements.
    pub moves: Vec<Move>,
    /// Instances kept on draining nodes for want of room elsewhere.
    pub held: Vec<Held>,
    /// Instances placed nowhere, one entry per function.
    pub pending: Vec<Pending>,
}

impl PlacementPlan {
    /// The instances of `function` in the plan.
    pub fn instances_of(&self, function: &str) -> u32 {
        self.placements
            .get(function)
            .map_or(0, |by_node| by_node.values().sum())
    }
}
