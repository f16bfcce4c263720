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

use fjord_core::hashing::{bounded_load_order, HashNode};
use fjord_core::node::NodeInfo;
use fjord_core::spec::FunctionSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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

/// Plans the placements of `functions` over `nodes`, starting from `current`, with the bound
/// factor `load_bound_c` of the bounded-load order ([`fjord_core::hashing::DEFAULT_LOAD_BOUND_C`]
/// unless configured). Functions in `current` but not in `functions` get no placements.
pub fn plan(
    nodes: &[PlacementNode],
    current: &Placements,
    functions: &[FunctionDemand<'_>],
    load_bound_c: f64,
) -> PlacementPlan {
    let cluster = Cluster::new(nodes);
    let mut planner = Planner {
        free_memory: cluster.nodes.iter().map(|n| u64::from(n.info.memory_mib)).collect(),
        free_cpu: cluster.nodes.iter().map(|n| u64::from(n.info.cpu_millis)).collect(),
        cluster,
        load_bound_c,
    };

    let mut seen = BTreeSet::new();
    let mut demands: Vec<&FunctionDemand<'_>> = functions.iter().filter(|d| seen.insert(&d.spec.name)).collect();
    demands.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let mut works: Vec<Work<'_>> = demands
        .iter()
        .map(|d| planner.keep_existing(d, current.get(&d.spec.name)))
        .collect();
    // Existing instances claim capacity before any new one, in name order.
    for work in &mut works {
        planner.admit_kept(work);
    }
    for work in &mut works {
        planner.lend_for_spread(work);
    }
    planner.repair_spread(&mut works);
    planner.place_new(&mut works);

    let mut plan = PlacementPlan::default();
    for work in &mut works {
        if work.need > 0 {
            // Why, as of the final plan: the same answer when the plan is fed back.
            let reason = planner.why_no_room(work);
            planner.hold_on_draining(work, current.get(work.name), &reason, &mut plan.held);
            if work.need > 0 {
                plan.pending.push(Pending {
                    function: work.name.to_string(),
                    instances: work.need,
                    reason,
                });
            }
        }
        let by_node: BTreeMap<String, u32> = work
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(i, &count)| (planner.cluster.nodes[i].info.id.clone(), count))
            .collect();
        if !by_node.is_empty() {
            plan.placements.insert(work.name.to_string(), by_node);
        }
    }
    plan.moves = relocations(&planner.cluster, current, &plan.placements);
    plan
}

/// The nodes, each id once, in id order.
struct Cluster<'a> {
    nodes: Vec<&'a PlacementNode>,
    by_id: BTreeMap<&'a str, usize>,
    /// Indexes of the ready nodes, in id order.
    ready: Vec<usize>,
    /// Distinct non-empty zones among the ready nodes.
    ready_zones: usize,
}

impl<'a> Cluster<'a> {
    fn new(nodes: &'a [PlacementNode]) -> Self {
        let mut unique: BTreeMap<&str, &PlacementNode> = BTreeMap::new();
        for node in nodes {
            unique.entry(node.info.id.as_str()).or_insert(node);
        }
        let nodes: Vec<&PlacementNode> = unique.into_values().collect();
        let by_id = nodes.iter().enumerate().map(|(i, n)| (n.info.id.as_str(), i)).collect();
        let ready: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].state == NodeState::Ready)
            .collect();
        let ready_zones = ready
            .iter()
            .map(|&i| nodes[i].info.zone.as_str())
            .filter(|z| !z.is_empty())
            .collect::<BTreeSet<_>>()
            .len();
        Cluster {
            nodes,
            by_id,
            ready,
            ready_zones,
        }
    }

    fn zone(&self, i: usize) -> &str {
        &self.nodes[i].info.zone
    }

    fn state_of(&self, id: &str) -> Option<NodeState> {
        self.by_id.get(id).map(|&i| self.nodes[i].state)
    }
}

/// The ready nodes as the hashing sees them: the same ids and weights the lb hashes on.
struct ReadyNode<'a>(&'a NodeInfo);

impl HashNode for ReadyNode<'_> {
    fn hash_id(&self) -> &str {
        &self.0.id
    }
    fn hash_weight(&self) -> u32 {
        self.0.hash_weight()
    }
}

/// One function during planning.
struct Work<'a> {
    name: &'a str,
    memory_mib: u64,
    cpu_millis: u64,
    desired: u32,
    /// Instances per node (indexes into `Cluster::nodes`).
    counts: Vec<u32>,
    /// Instances still to place.
    need: u32,
    /// The node lending one of its instances to a spread repair; its capacity stays taken until
    /// the instance has found a node in a new zone or on a new node, or returns.
    lent_by: Option<usize>,
    /// An attempt to place found no node.
    blocked: bool,
    /// Position of each node in the function's hashing order over the ready nodes
    /// (`usize::MAX` for nodes that are not ready).
    rank: Vec<usize>,
}

impl Work<'_> {
    fn placed(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Whether node `i` counts as holding the function (a lent instance still counts).
    fn holds(&self, i: usize) -> bool {
        self.counts[i] > 0 || self.lent_by == Some(i)
    }
}

struct Planner<'a> {
    cluster: Cluster<'a>,
    free_memory: Vec<u64>,
    free_cpu: Vec<u64>,
    load_bound_c: f64,
}

impl Planner<'_> {
    /// The function's current instances on ready nodes, scaled down to its desired count.
    fn keep_existing<'f>(&self, demand: &'f FunctionDemand<'_>, current: Option<&BTreeMap<String, u32>>) -> Work<'f> {
        let n = self.cluster.nodes.len();
        let infos: Vec<ReadyNode<'_>> = self
            .cluster
            .ready
            .iter()
            .map(|&i| ReadyNode(&self.cluster.nodes[i].info))
            .collect();
        let mut rank = vec![usize::MAX; n];
        for (r, j) in fjord_core::hashing::preference_order(&demand.spec.name, &infos)
            .into_iter()
            .enumerate()
        {
            rank[self.cluster.ready[j]] = r;
        }
        let mut counts = vec![0u32; n];
        for (id, &count) in current.into_iter().flatten() {
            if let Some(&i) = self.cluster.by_id.get(id.as_str()) {
                if self.cluster.nodes[i].state == NodeState::Ready {
                    counts[i] = count;
                }
            }
        }
        let mut total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        while total > u64::from(demand.desired) {
            let zone_load = |i: usize| -> u64 {
                if self.cluster.zone(i).is_empty() {
                    return u64::from(counts[i]);
                }
                (0..n)
                    .filter(|&j| self.cluster.zone(j) == self.cluster.zone(i))
                    .map(|j| u64::from(counts[j]))
                    .sum()
            };
            let victim = (0..n)
                .filter(|&i| counts[i] > 0)
                .max_by_key(|&i| (counts[i], zone_load(i), rank[i]))
                .expect("a total above the desired count has a node with instances");
            counts[victim] -= 1;
            total -= 1;
        }
        Work {
            name: &demand.spec.name,
            memory_mib: u64::from(demand.spec.memory_mib),
            cpu_millis: u64::from(demand.spec.cpu_millis),
            desired: demand.desired,
            counts,
            need: 0,
            lent_by: None,
            blocked: false,
            rank,
        }
    }

    /// How many more instances of `work` node `i` holds.
    fn room_for(&self, work: &Work<'_>, i: usize) -> u64 {
        let by_memory = self.free_memory[i].checked_div(work.memory_mib).unwrap_or(u64::MAX);
        let by_cpu = self.free_cpu[i].checked_div(work.cpu_millis).unwrap_or(u64::MAX);
        by_memory.min(by_cpu)
    }

    fn take(&mut self, work: &Work<'_>, i: usize, instances: u32) {
        self.free_memory[i] -= work.memory_mib * u64::from(instances);
        self.free_cpu[i] -= work.cpu_millis * u64::from(instances);
    }

    fn release(&mut self, work: &Work<'_>, i: usize) {
        self.free_memory[i] += work.memory_mib;
        self.free_cpu[i] += work.cpu_millis;
    }

    /// Claims capacity for the kept instances, in the function's hashing order; those that no
    /// longer fit (a node shrank, the spec grew) are placed again.
    fn admit_kept(&mut self, work: &mut Work<'_>) {
        let mut order: Vec<usize> = self.cluster.ready.clone();
        order.sort_by_key(|&i| work.rank[i]);
        for i in order {
            let keep = work.counts[i].min(u32::try_from(self.room_for(work, i)).unwrap_or(u32::MAX));
            self.take(work, i, keep);
            work.counts[i] = keep;
        }
        work.need = work.desired - work.placed();
    }

    /// Whether `work` should be on another node or zone than it is.
    fn lacks_spread(&self, work: &Work<'_>) -> bool {
        if work.desired < 2 {
            return false;
        }
        let nodes = (0..work.counts.len()).filter(|&i| work.holds(i)).count();
        nodes < 2 && self.cluster.ready.len() >= 2 || self.zones_held(work).len() < 2 && self.cluster.ready_zones >= 2
    }

    fn zones_held<'z>(&'z self, work: &Work<'_>) -> BTreeSet<&'z str> {
        (0..work.counts.len())
            .filter(|&i| work.holds(i))
            .map(|i| self.cluster.zone(i))
            .filter(|z| !z.is_empty())
            .collect()
    }

    /// A function fully placed on one node or zone lends one instance (from its most loaded
    /// node, latest in its order) to be moved to a new node or zone, if one has room.
    fn lend_for_spread(&mut self, work: &mut Work<'_>) {
        if work.need > 0 || !self.lacks_spread(work) {
            return;
        }
        let lender = (0..work.counts.len())
            .filter(|&i| work.counts[i] > 0)
            .max_by_key(|&i| (work.counts[i], work.rank[i]))
            .expect("a function with desired ≥ 2 and nothing to place has instances");
        work.counts[lender] -= 1;
        work.need = 1;
        work.lent_by = Some(lender);
    }

    /// Moves lent instances where they improve the spread, repeating while one move frees room
    /// for another; instances that found no such node return to their lender.
    fn repair_spread(&mut self, works: &mut [Work<'_>]) {
        loop {
            let mut moved = false;
            for work in works.iter_mut().filter(|w| w.lent_by.is_some()) {
                if let Some(i) = self.pick(work, true) {
                    let lender = work.lent_by.take().expect("filtered on lent_by");
                    self.take(work, i, 1);
                    self.release(work, lender);
                    work.counts[i] += 1;
                    work.need = 0;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for work in works.iter_mut() {
            if let Some(lender) = work.lent_by.take() {
                work.counts[lender] += 1;
                work.need = 0;
            }
        }
    }

    /// Places the remaining instances, one per function in turn, until each is placed or finds
    /// no room (capacity only shrinks from here, so a function without room stays without).
    fn place_new(&mut self, works: &mut [Work<'_>]) {
        loop {
            let mut active = false;
            for work in works.iter_mut().filter(|w| w.need > 0 && !w.blocked) {
                active = true;
                match self.pick(work, false) {
                    Some(i) => {
                        self.take(work, i, 1);
                        work.counts[i] += 1;
                        work.need -= 1;
                    }
                    None => work.blocked = true,
                }
            }
            if !active {
                break;
            }
        }
    }

    /// The node for one more instance of `work`, or `None` without room. With `spread_only`, only
    /// a node that adds a zone or (failing that) a node to the function's set qualifies.
    fn pick(&self, work: &Work<'_>, spread_only: bool) -> Option<usize> {
        let with_room: Vec<usize> = self
            .cluster
            .ready
            .iter()
            .copied()
            .filter(|&i| self.room_for(work, i) > 0)
            .collect();
        if with_room.is_empty() {
            return None;
        }
        let mut allowed = with_room.clone();
        if work.desired >= 2 {
            let zones = self.zones_held(work);
            let nodes = (0..work.counts.len()).filter(|&i| work.holds(i)).count();
            let new_zone: Vec<usize> = with_room
                .iter()
                .copied()
                .filter(|&i| !self.cluster.zone(i).is_empty() && !zones.contains(self.cluster.zone(i)))
                .collect();
            let new_node: Vec<usize> = with_room.iter().copied().filter(|&i| !work.holds(i)).collect();
            if zones.len() < 2 && !new_zone.is_empty() {
                allowed = new_zone;
            } else if nodes < 2 && !new_node.is_empty() {
                allowed = new_node;
            } else if spread_only {
                return None;
            }
        } else if spread_only {
            return None;
        }
        let infos: Vec<ReadyNode<'_>> = self
            .cluster
            .ready
            .iter()
            .map(|&i| ReadyNode(&self.cluster.nodes[i].info))
            .collect();
        let loads: Vec<u32> = self.cluster.ready.iter().map(|&i| work.counts[i]).collect();
        bounded_load_order(work.name, &infos, &loads, self.load_bound_c)
            .into_iter()
            .map(|j| self.cluster.ready[j])
            .find(|i| allowed.contains(i))
    }

    /// Why no ready node takes one more instance of `work` now.
    fn why_no_room(&self, work: &Work<'_>) -> PendingReason {
        let ready = &self.cluster.ready;
        if ready.is_empty() {
            let count = |state| self.cluster.nodes.iter().filter(|n| n.state == state).count();
            return PendingReason::NoReadyNode {
                draining: count(NodeState::Draining),
                down: count(NodeState::Down),
            };
        }
        let memory_mib = u32::try_from(work.memory_mib).unwrap_or(u32::MAX);
        let cpu_millis = u32::try_from(work.cpu_millis).unwrap_or(u32::MAX);
        let large_enough = ready.iter().any(|&i| {
            let info = &self.cluster.nodes[i].info;
            u64::from(info.memory_mib) >= work.memory_mib && u64::from(info.cpu_millis) >= work.cpu_millis
        });
        if !large_enough {
            return PendingReason::LargerThanAnyNode { memory_mib, cpu_millis };
        }
        let memory_free = ready.iter().any(|&i| self.free_memory[i] >= work.memory_mib);
        let cpu_free = ready.iter().any(|&i| self.free_cpu[i] >= work.cpu_millis);
        match (memory_free, cpu_free) {
            (false, _) => PendingReason::NoFreeMemory { memory_mib },
            (true, false) => PendingReason::NoFreeCpu { cpu_millis },
            (true, true) => PendingReason::NoNodeWithBoth { memory_mib, cpu_millis },
        }
    }

    /// Keeps instances that found no ready node where they run, on draining nodes.
    fn hold_on_draining(
        &mut self,
        work: &mut Work<'_>,
        current: Option<&BTreeMap<String, u32>>,
        reason: &PendingReason,
        held: &mut Vec<Held>,
    ) {
        for (id, &count) in current.into_iter().flatten() {
            let Some(&i) = self.cluster.by_id.get(id.as_str()) else {
                continue;
            };
            if self.cluster.nodes[i].state != NodeState::Draining || work.need == 0 {
                continue;
            }
            let keep = count
                .min(work.need)
                .min(u32::try_from(self.room_for(work, i)).unwrap_or(u32::MAX));
            if keep == 0 {
                continue;
            }
            self.take(work, i, keep);
            work.counts[i] += keep;
            work.need -= keep;
            held.push(Held {
                function: work.name.to_string(),
                node: id.clone(),
                instances: keep,
                reason: reason.clone(),
            });
        }
    }
}

/// Instances that leave a node still running them (ready or draining) while the same function
/// gains instances elsewhere: each such pair is a move. Draining nodes are paired first.
fn relocations(cluster: &Cluster<'_>, current: &Placements, planned: &Placements) -> Vec<Move> {
    let empty = BTreeMap::new();
    let mut moves = Vec::new();
    for (function, before) in current {
        let after = planned.get(function).unwrap_or(&empty);
        let mut leaving: Vec<(bool, &str, u32)> = before
            .iter()
            .filter_map(|(id, &count)| {
                let state = cluster.state_of(id)?;
                let gone = count.saturating_sub(after.get(id).copied().unwrap_or(0));
                (state != NodeState::Down && gone > 0).then_some((state != NodeState::Draining, id.as_str(), gone))
            })
            .collect();
        leaving.sort();
        let mut arriving: Vec<(&str, u32)> = after
            .iter()
            .filter_map(|(id, &count)| {
                let new = count.saturating_sub(before.get(id).copied().unwrap_or(0));
                (new > 0).then_some((id.as_str(), new))
            })
            .collect();
        let mut to = arriving.iter_mut();
        let mut target = to.next();
        for (_, from, mut gone) in leaving {
            while gone > 0 {
                let Some((id, new)) = target.as_mut() else {
                    break;
                };
                let instances = gone.min(*new);
                moves.push(Move {
                    function: function.clone(),
                    from: from.to_string(),
                    to: id.to_string(),
                    instances,
                });
                gone -= instances;
                *new -= instances;
                if *new == 0 {
                    target = to.next();
                }
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::hashing::{preference_order, DEFAULT_LOAD_BOUND_C};

    fn node(id: &str, memory_mib: u32, cpu_millis: u32, zone: &str) -> PlacementNode {
        PlacementNode {
            info: NodeInfo {
                id: id.into(),
                invoke_addr: format!("{id}:7500"),
                memory_mib,
                cpu_millis,
                zone: zone.into(),
                runtime: "process".into(),
                instance_id: String::new(),
            },
            state: NodeState::Ready,
        }
    }

    fn spec(name: &str, memory_mib: u32, cpu_millis: u32) -> FunctionSpec {
        let mut spec = FunctionSpec::with_command(name, vec!["run".into()]);
        spec.memory_mib = memory_mib;
        spec.cpu_millis = cpu_millis;
        spec
    }

    fn demands(specs: &[(FunctionSpec, u32)]) -> Vec<FunctionDemand<'_>> {
        specs
            .iter()
            .map(|(spec, desired)| FunctionDemand {
                spec,
                desired: *desired,
            })
            .collect()
    }

    fn plan_of(nodes: &[PlacementNode], current: &Placements, specs: &[(FunctionSpec, u32)]) -> PlacementPlan {
        plan(nodes, current, &demands(specs), DEFAULT_LOAD_BOUND_C)
    }

    fn on(plan: &PlacementPlan, function: &str, node: &str) -> u32 {
        plan.placements
            .get(function)
            .and_then(|m| m.get(node))
            .copied()
            .unwrap_or(0)
    }

    /// A small seeded generator for the property tests (SplitMix64).
    struct TestRng(u64);
    impl TestRng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random cluster: nodes of varied sizes, zones (or none), some draining or down;
    /// functions of varied sizes and counts; current placements that may be stale or too big.
    fn random_case(rng: &mut TestRng) -> (Vec<PlacementNode>, Placements, Vec<(FunctionSpec, u32)>) {
        let zoned = rng.below(3) > 0;
        let nodes: Vec<PlacementNode> = (0..1 + rng.below(8))
            .map(|i| {
                let zone = if zoned {
                    ["a", "b", "c"][rng.below(3) as usize]
                } else {
                    ""
                };
                let mut n = node(
                    &format!("node-{i}"),
                    512 * (1 + rng.below(16) as u32),
                    500 * (1 + rng.below(16) as u32),
                    zone,
                );
                n.state = match rng.below(10) {
                    0 => NodeState::Draining,
                    1 => NodeState::Down,
                    _ => NodeState::Ready,
                };
                n
            })
            .collect();
        let specs: Vec<(FunctionSpec, u32)> = (0..1 + rng.below(12))
            .map(|f| {
                let s = spec(
                    &format!("fn-{f}"),
                    64 * (1 + rng.below(24) as u32),
                    100 * (1 + rng.below(20) as u32),
                );
                (s, rng.below(9) as u32)
            })
            .collect();
        let mut current = Placements::new();
        for (s, _) in &specs {
            if rng.below(2) == 0 {
                continue;
            }
            let by_node = current.entry(s.name.clone()).or_default();
            for _ in 0..rng.below(5) {
                // Some placements name a node that no longer exists.
                let id = format!("node-{}", rng.below(nodes.len() as u64 + 1));
                *by_node.entry(id).or_default() += 1 + rng.below(3) as u32;
            }
        }
        (nodes, current, specs)
    }

    /// Free memory and CPU per ready node id after `plan`.
    fn free_after(
        nodes: &[PlacementNode],
        specs: &[(FunctionSpec, u32)],
        plan: &PlacementPlan,
    ) -> Vec<(usize, i64, i64)> {
        nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let (mut memory, mut cpu) = (i64::from(n.info.memory_mib), i64::from(n.info.cpu_millis));
                for (s, _) in specs {
                    let count = i64::from(on(plan, &s.name, &n.info.id));
                    memory -= count * i64::from(s.memory_mib);
                    cpu -= count * i64::from(s.cpu_millis);
                }
                (k, memory, cpu)
            })
            .collect()
    }

    /// The rules every plan keeps, checked from the outside.
    fn check_plan(
        case: usize,
        nodes: &[PlacementNode],
        current: &Placements,
        specs: &[(FunctionSpec, u32)],
        plan: &PlacementPlan,
    ) {
        let state: BTreeMap<&str, NodeState> = nodes.iter().map(|n| (n.info.id.as_str(), n.state)).collect();
        // Capacity is never exceeded.
        let free = free_after(nodes, specs, plan);
        for &(k, memory, cpu) in &free {
            assert!(
                memory >= 0 && cpu >= 0,
                "case {case}: {} overcommitted: {plan:?}",
                nodes[k].info.id
            );
        }
        let fits = |s: &FunctionSpec, k: usize| {
            nodes[k].state == NodeState::Ready
                && free[k].1 >= i64::from(s.memory_mib)
                && free[k].2 >= i64::from(s.cpu_millis)
        };
        for (s, desired) in specs {
            let placed = plan.instances_of(&s.name);
            let pending: u32 = plan
                .pending
                .iter()
                .filter(|p| p.function == s.name)
                .map(|p| p.instances)
                .sum();
            // Every desired instance is placed or pending.
            assert_eq!(
                placed + pending,
                *desired,
                "case {case}: {} accounting: {plan:?}",
                s.name
            );
            // Pending only when no ready node has room for one more.
            if pending > 0 {
                assert!(
                    !(0..nodes.len()).any(|k| fits(s, k)),
                    "case {case}: {} pending with room left: {plan:?}",
                    s.name
                );
            }
            for (id, &count) in plan.placements.get(&s.name).into_iter().flatten() {
                assert!(count > 0);
                match state.get(id.as_str()) {
                    Some(NodeState::Ready) => {}
                    // On a draining node only what was there, and only as held.
                    Some(NodeState::Draining) => {
                        let before = current.get(&s.name).and_then(|m| m.get(id)).copied().unwrap_or(0);
                        assert!(count <= before, "case {case}: new instances on draining {id}");
                        let held: u32 = plan
                            .held
                            .iter()
                            .filter(|h| h.function == s.name && &h.node == id)
                            .map(|h| h.instances)
                            .sum();
                        assert_eq!(held, count, "case {case}: {plan:?}");
                    }
                    other => panic!("case {case}: {} placed on {id} in state {other:?}", s.name),
                }
            }
            // Spread: one node or one zone only when no other has room.
            if *desired >= 2 && placed > 0 {
                let used: Vec<usize> = (0..nodes.len())
                    .filter(|&k| on(plan, &s.name, &nodes[k].info.id) > 0)
                    .collect();
                if used.len() < 2 {
                    assert!(
                        !(0..nodes.len()).any(|k| !used.contains(&k) && fits(s, k)),
                        "case {case}: {} on one node with room elsewhere: {plan:?}",
                        s.name
                    );
                }
                let zones: BTreeSet<&str> = used
                    .iter()
                    .map(|&k| nodes[k].info.zone.as_str())
                    .filter(|z| !z.is_empty())
                    .collect();
                if zones.len() < 2 {
                    assert!(
                        !(0..nodes.len()).any(|k| !nodes[k].info.zone.is_empty()
                            && !zones.contains(nodes[k].info.zone.as_str())
                            && fits(s, k)),
                        "case {case}: {} in one zone with room in another: {plan:?}",
                        s.name
                    );
                }
            }
        }
        // Nothing else is placed.
        for function in plan.placements.keys() {
            assert!(
                specs.iter().any(|(s, _)| &s.name == function),
                "case {case}: stray {function}"
            );
        }
        // Moves leave live nodes for ready ones, and match the change in counts.
        for m in &plan.moves {
            assert_ne!(state.get(m.from.as_str()), Some(&NodeState::Down));
            assert_eq!(state.get(m.to.as_str()), Some(&NodeState::Ready), "case {case}: {m:?}");
            let before_to = current
                .get(&m.function)
                .and_then(|b| b.get(&m.to))
                .copied()
                .unwrap_or(0);
            assert!(
                on(plan, &m.function, &m.to) >= before_to + m.instances,
                "case {case}: {m:?}"
            );
            let before_from = current
                .get(&m.function)
                .and_then(|b| b.get(&m.from))
                .copied()
                .unwrap_or(0);
            assert!(
                on(plan, &m.function, &m.from) + m.instances <= before_from,
                "case {case}: {m:?}"
            );
        }
    }

    #[test]
    fn random_clusters_keep_every_rule_and_replanning_changes_nothing() {
        let mut rng = TestRng(2024);
        let mut pending_cases = 0;
        for case in 0..1500 {
            let (nodes, current, specs) = random_case(&mut rng);
            let first = plan_of(&nodes, &current, &specs);
            check_plan(case, &nodes, &current, &specs, &first);
            pending_cases += usize::from(!first.pending.is_empty());
            // A fixpoint: the plan fed back gives itself, with nothing to move.
            let second = plan_of(&nodes, &first.placements, &specs);
            assert_eq!(second.placements, first.placements, "case {case}");
            assert!(second.moves.is_empty(), "case {case}: {:?}", second.moves);
            assert_eq!(second.pending, first.pending, "case {case}");
            // The order of the inputs does not matter.
            let mut shuffled_nodes = nodes.clone();
            shuffled_nodes.reverse();
            let mut shuffled_specs = specs.clone();
            shuffled_specs.reverse();
            assert_eq!(
                plan_of(&shuffled_nodes, &current, &shuffled_specs),
                first,
                "case {case}"
            );
        }
        assert!(pending_cases > 50, "the cases exercise full clusters ({pending_cases})");
    }

    #[test]
    fn a_single_instance_goes_to_the_functions_home_node() {
        let nodes: Vec<PlacementNode> = (0..6).map(|i| node(&format!("n{i}"), 4096, 4000, "")).collect();
        let infos: Vec<NodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
        for f in 0..50 {
            let name = format!("fn-{f}");
            let p = plan_of(&nodes, &Placements::new(), &[(spec(&name, 128, 100), 1)]);
            let home = &infos[preference_order(&name, &infos)[0]].id;
            assert_eq!(on(&p, &name, home), 1, "{name}: {p:?}");
        }
    }

    #[test]
    fn two_instances_spread_over_two_nodes_and_two_zones() {
        // Two roomy nodes: without the spread rule both instances would fit on the home node.
        let nodes = vec![node("n0", 8192, 8000, ""), node("n1", 8192, 8000, "")];
        let p = plan_of(&nodes, &Placements::new(), &[(spec("echo", 128, 100), 2)]);
        assert_eq!((on(&p, "echo", "n0"), on(&p, "echo", "n1")), (1, 1), "{p:?}");

        // Three nodes, two in zone a: for every name the two instances land in both zones.
        let nodes = vec![
            node("a1", 8192, 8000, "a"),
            node("a2", 8192, 8000, "a"),
            node("b1", 8192, 8000, "b"),
        ];
        for f in 0..40 {
            let name = format!("fn-{f}");
            let p = plan_of(&nodes, &Placements::new(), &[(spec(&name, 128, 100), 2)]);
            let in_a = on(&p, &name, "a1") + on(&p, &name, "a2");
            assert_eq!((in_a, on(&p, &name, "b1")), (1, 1), "{name}: {p:?}");
        }

        // Zone b has no room: both go to zone a, still on two nodes.
        let nodes = vec![
            node("a1", 8192, 8000, "a"),
            node("a2", 8192, 8000, "a"),
            node("b1", 64, 8000, "b"),
        ];
        let p = plan_of(&nodes, &Placements::new(), &[(spec("echo", 128, 100), 2)]);
        assert_eq!((on(&p, "echo", "a1"), on(&p, "echo", "a2")), (1, 1), "{p:?}");
    }

    #[test]
    fn many_instances_spread_within_the_bound_over_the_functions_order() {
        let nodes: Vec<PlacementNode> = (0..4).map(|i| node(&format!("n{i}"), 65_536, 64_000, "")).collect();
        let p = plan_of(&nodes, &Placements::new(), &[(spec("hot", 128, 100), 40)]);
        // Fair share 10 per node; c = 1.25 allows ceil(1.25 × 40 / 4) = 13.
        for n in &nodes {
            let count = on(&p, "hot", &n.info.id);
            assert!((1..=13).contains(&count), "{p:?}");
        }
    }

    #[test]
    fn pending_when_full_names_the_missing_resource() {
        let one = vec![node("n0", 1024, 8000, "")];
        let p = plan_of(&one, &Placements::new(), &[(spec("echo", 256, 100), 6)]);
        assert_eq!(on(&p, "echo", "n0"), 4);
        assert_eq!(
            p.pending,
            vec![Pending {
                function: "echo".into(),
                instances: 2,
                reason: PendingReason::NoFreeMemory { memory_mib: 256 },
            }]
        );
        assert!(p.pending[0].reason.to_string().contains("256 MiB"));

        let p = plan_of(&one, &Placements::new(), &[(spec("echo", 128, 3000), 3)]);
        assert_eq!(on(&p, "echo", "n0"), 2);
        assert_eq!(p.pending[0].reason, PendingReason::NoFreeCpu { cpu_millis: 3000 });

        let p = plan_of(&one, &Placements::new(), &[(spec("big", 2048, 100), 1)]);
        assert!(p.placements.is_empty());
        assert_eq!(
            p.pending[0].reason,
            PendingReason::LargerThanAnyNode {
                memory_mib: 2048,
                cpu_millis: 100
            }
        );

        // One node short of memory, another short of CPU.
        let two = vec![node("m", 4096, 100, ""), node("c", 100, 8000, "")];
        let p = plan_of(&two, &Placements::new(), &[(spec("echo", 128, 200), 1)]);
        assert_eq!(
            p.pending[0].reason,
            PendingReason::LargerThanAnyNode {
                memory_mib: 128,
                cpu_millis: 200
            }
        );
        let two = vec![node("m", 4096, 300, ""), node("c", 300, 8000, "")];
        let current = Placements::from([("filler".to_string(), BTreeMap::from([("m".to_string(), 1)]))]);
        let p = plan_of(
            &two,
            &current,
            &[(spec("filler", 16, 200), 1), (spec("echo", 256, 200), 2)],
        );
        // filler keeps m's CPU; c has CPU but not the memory after echo's first instance.
        assert_eq!(on(&p, "filler", "m"), 1);
        assert_eq!(on(&p, "echo", "c"), 1);
        assert_eq!(
            p.pending,
            vec![Pending {
                function: "echo".into(),
                instances: 1,
                reason: PendingReason::NoNodeWithBoth {
                    memory_mib: 256,
                    cpu_millis: 200
                },
            }]
        );

        let mut draining = vec![node("n0", 4096, 4000, ""), node("n1", 4096, 4000, "")];
        draining[0].state = NodeState::Draining;
        draining[1].state = NodeState::Down;
        let p = plan_of(&draining, &Placements::new(), &[(spec("echo", 128, 100), 1)]);
        assert_eq!(p.pending[0].reason, PendingReason::NoReadyNode { draining: 1, down: 1 });
    }

    /// A stable plan for a few functions over `nodes`.
    fn settled(nodes: &[PlacementNode], specs: &[(FunctionSpec, u32)]) -> PlacementPlan {
        let p = plan_of(nodes, &Placements::new(), specs);
        assert!(p.pending.is_empty(), "{p:?}");
        p
    }

    fn some_functions() -> Vec<(FunctionSpec, u32)> {
        (0..12)
            .map(|f| (spec(&format!("fn-{f}"), 128, 100), 1 + f % 4))
            .collect()
    }

    #[test]
    fn instances_of_a_down_node_are_placed_again_and_nothing_else_moves() {
        let mut nodes: Vec<PlacementNode> = (0..4).map(|i| node(&format!("n{i}"), 8192, 8000, "")).collect();
        let specs = some_functions();
        let before = settled(&nodes, &specs);
        let lost: u32 = before.placements.values().filter_map(|m| m.get("n2")).sum();
        assert!(lost > 0, "the test needs instances on n2");
        nodes[2].state = NodeState::Down;
        let after = plan_of(&nodes, &before.placements, &specs);
        check_plan(0, &nodes, &before.placements, &specs, &after);
        assert!(after.pending.is_empty() && after.moves.is_empty(), "{after:?}");
        for (s, desired) in &specs {
            assert_eq!(after.instances_of(&s.name), *desired);
            assert_eq!(on(&after, &s.name, "n2"), 0);
            for id in ["n0", "n1", "n3"] {
                assert!(
                    on(&after, &s.name, id) >= on(&before, &s.name, id),
                    "survivors keep theirs"
                );
            }
        }
    }

    #[test]
    fn a_drain_moves_everything_off_the_node_starting_new_ones_first() {
        let mut nodes: Vec<PlacementNode> = (0..4)
            .map(|i| node(&format!("n{i}"), 8192, 8000, ["a", "b"][i % 2]))
            .collect();
        let specs = some_functions();
        let before = settled(&nodes, &specs);
        let on_n1: BTreeMap<&str, u32> = before
            .placements
            .iter()
            .filter_map(|(f, m)| m.get("n1").map(|&c| (f.as_str(), c)))
            .collect();
        assert!(!on_n1.is_empty());
        nodes[1].state = NodeState::Draining;
        let after = plan_of(&nodes, &before.placements, &specs);
        check_plan(0, &nodes, &before.placements, &specs, &after);
        assert!(after.placements.values().all(|m| !m.contains_key("n1")), "{after:?}");
        assert!(after.held.is_empty() && after.pending.is_empty());
        // Each instance on n1 has a move to a ready node.
        let mut moved: BTreeMap<&str, u32> = BTreeMap::new();
        for m in &after.moves {
            assert_eq!(m.from, "n1", "{m:?}");
            *moved.entry(m.function.as_str()).or_default() += m.instances;
        }
        assert_eq!(moved, on_n1);
        // Once the moves are done, the plan stands.
        let again = plan_of(&nodes, &after.placements, &specs);
        assert_eq!(again.placements, after.placements);
        assert!(again.moves.is_empty());
    }

    #[test]
    fn a_drain_without_room_elsewhere_holds_instances_in_place() {
        let mut nodes = vec![node("n0", 512, 8000, ""), node("n1", 512, 8000, "")];
        let specs = vec![(spec("echo", 256, 100), 3)];
        let before = settled(&nodes, &specs);
        let on_n0 = on(&before, "echo", "n0");
        nodes[0].state = NodeState::Draining;
        let after = plan_of(&nodes, &before.placements, &specs);
        check_plan(0, &nodes, &before.placements, &specs, &after);
        // n1 takes two; the rest stays on n0 until room appears.
        assert_eq!(on(&after, "echo", "n1"), 2);
        assert_eq!(on(&after, "echo", "n0"), 1);
        assert_eq!(after.held.len(), 1);
        assert_eq!((after.held[0].node.as_str(), after.held[0].instances), ("n0", 1));
        assert_eq!(after.held[0].reason, PendingReason::NoFreeMemory { memory_mib: 256 });
        let moved: u32 = after.moves.iter().map(|m| m.instances).sum();
        assert_eq!(moved, 2 - on(&before, "echo", "n1"));
        assert_eq!(moved + 1, on_n0);
    }

    #[test]
    fn adding_a_node_moves_only_what_the_spread_rule_asks_for() {
        let mut rng = TestRng(99);
        for case in 0..300 {
            let n = 2 + rng.below(6) as usize;
            let mut nodes: Vec<PlacementNode> = (0..n)
                .map(|i| node(&format!("n{i}"), 2048 * (1 + rng.below(4) as u32), 16_000, ""))
                .collect();
            let specs: Vec<(FunctionSpec, u32)> = (0..1 + rng.below(20))
                .map(|f| {
                    (
                        spec(&format!("fn-{case}-{f}"), 128 * (1 + rng.below(4) as u32), 100),
                        1 + rng.below(5) as u32,
                    )
                })
                .collect();
            let before = plan_of(&nodes, &Placements::new(), &specs);
            // Functions that sit on a single node with desired ≥ 2: the new node may take one
            // instance of each, nothing else moves.
            let crowded = specs
                .iter()
                .filter(|(s, d)| *d >= 2 && before.placements.get(&s.name).is_some_and(|m| m.len() < 2))
                .count() as u32;
            nodes.push(node("joined", 8192, 16_000, ""));
            let after = plan_of(&nodes, &before.placements, &specs);
            check_plan(case, &nodes, &before.placements, &specs, &after);
            let mut stopped = 0;
            for (f, by_node) in &before.placements {
                for (id, &count) in by_node {
                    stopped +=
                        count.saturating_sub(after.placements.get(f).and_then(|m| m.get(id)).copied().unwrap_or(0));
                }
            }
            assert!(stopped <= crowded, "case {case}: {stopped} moved, {crowded} crowded");
            let moved: u32 = after.moves.iter().map(|m| m.instances).sum();
            assert_eq!(moved, stopped, "case {case}");
            assert!(
                after.moves.iter().all(|m| m.to == "joined"),
                "case {case}: {:?}",
                after.moves
            );
        }
    }

    #[test]
    fn a_function_crowded_on_one_node_moves_one_instance_when_a_node_joins() {
        let mut nodes = vec![node("n0", 8192, 8000, "")];
        let specs = vec![(spec("echo", 128, 100), 3)];
        let before = settled(&nodes, &specs);
        assert_eq!(on(&before, "echo", "n0"), 3);
        nodes.push(node("n1", 8192, 8000, ""));
        let after = plan_of(&nodes, &before.placements, &specs);
        assert_eq!((on(&after, "echo", "n0"), on(&after, "echo", "n1")), (2, 1));
        assert_eq!(
            after.moves,
            vec![Move {
                function: "echo".into(),
                from: "n0".into(),
                to: "n1".into(),
                instances: 1,
            }]
        );
    }

    #[test]
    fn scaling_down_keeps_spread_and_stops_the_surplus_only() {
        let nodes = vec![
            node("a1", 8192, 8000, "a"),
            node("a2", 8192, 8000, "a"),
            node("b1", 8192, 8000, "b"),
        ];
        // Whatever the function's hashing order: a1 (most instances) gives up first, then zone a
        // (most instances), so b1 keeps its one and nothing has to move to restore the spread.
        for f in 0..30 {
            let name = format!("fn-{f}");
            let current = Placements::from([(
                name.clone(),
                BTreeMap::from([("a1".to_string(), 3), ("a2".to_string(), 1), ("b1".to_string(), 1)]),
            )]);
            let p = plan_of(&nodes, &current, &[(spec(&name, 128, 100), 2)]);
            assert_eq!(on(&p, &name, "b1"), 1, "{p:?}");
            assert_eq!(on(&p, &name, "a1") + on(&p, &name, "a2"), 1);
            assert!(p.moves.is_empty(), "{p:?}");
        }
        let current = Placements::from([("echo".to_string(), BTreeMap::from([("a1".to_string(), 2)]))]);
        // A function no longer wanted is not placed.
        let p = plan_of(&nodes, &current, &[]);
        assert_eq!(p, PlacementPlan::default());
    }

    #[test]
    fn instances_that_no_longer_fit_are_placed_again() {
        // The spec grew: n0 holds 2 of the new size, not 4; the other 2 go to n1.
        let nodes = vec![node("n0", 1024, 8000, ""), node("n1", 4096, 8000, "")];
        let current = Placements::from([("echo".to_string(), BTreeMap::from([("n0".to_string(), 4)]))]);
        let specs = vec![(spec("echo", 512, 100), 4)];
        let p = plan_of(&nodes, &current, &specs);
        check_plan(0, &nodes, &current, &specs, &p);
        assert_eq!((on(&p, "echo", "n0"), on(&p, "echo", "n1")), (2, 2));
        assert_eq!(p.moves.iter().map(|m| m.instances).sum::<u32>(), 2);
    }
}
