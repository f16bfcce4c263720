//! The planner: keeps what fits, places new instances in hashing order, holds what cannot leave
//! a draining node, and says why the rest is pending.

use super::relocations::relocations;
use super::{FunctionDemand, Held, NodeState, Pending, PendingReason, PlacementNode, PlacementPlan, Placements};
use fjord_core::hashing::{bounded_load_order, HashNode};
use fjord_core::node::NodeInfo;
use std::collections::{BTreeMap, BTreeSet};

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
pub(super) struct Cluster<'a> {
    nodes: Vec<&'a PlacementNode>,
    by_id: BTreeMap<&'a str, usize>,
    /// Indexes of the ready nodes, in id order.
    pub(super) ready: Vec<usize>,
    /// Distinct non-empty zones among the ready nodes.
    pub(super) ready_zones: usize,
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

    pub(super) fn zone(&self, i: usize) -> &str {
        &self.nodes[i].info.zone
    }

    pub(super) fn state_of(&self, id: &str) -> Option<NodeState> {
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
pub(super) struct Work<'a> {
    name: &'a str,
    memory_mib: u64,
    cpu_millis: u64,
    pub(super) desired: u32,
    /// Instances per node (indexes into `Cluster::nodes`).
    pub(super) counts: Vec<u32>,
    /// Instances still to place.
    pub(super) need: u32,
    /// The node lending one of its instances to a spread repair; its capacity stays taken until
    /// the instance has found a node in a new zone or on a new node, or returns.
    pub(super) lent_by: Option<usize>,
    /// An attempt to place found no node.
    blocked: bool,
    /// Position of each node in the function's hashing order over the ready nodes
    /// (`usize::MAX` for nodes that are not ready).
    pub(super) rank: Vec<usize>,
}

impl Work<'_> {
    fn placed(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Whether node `i` counts as holding the function (a lent instance still counts).
    pub(super) fn holds(&self, i: usize) -> bool {
        self.counts[i] > 0 || self.lent_by == Some(i)
    }
}

pub(super) struct Planner<'a> {
    pub(super) cluster: Cluster<'a>,
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
    pub(super) fn room_for(&self, work: &Work<'_>, i: usize) -> u64 {
        let by_memory = self.free_memory[i].checked_div(work.memory_mib).unwrap_or(u64::MAX);
        let by_cpu = self.free_cpu[i].checked_div(work.cpu_millis).unwrap_or(u64::MAX);
        by_memory.min(by_cpu)
    }

    pub(super) fn take(&mut self, work: &Work<'_>, i: usize, instances: u32) {
        self.free_memory[i] -= work.memory_mib * u64::from(instances);
        self.free_cpu[i] -= work.cpu_millis * u64::from(instances);
    }

    pub(super) fn release(&mut self, work: &Work<'_>, i: usize) {
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
    pub(super) fn pick(&self, work: &Work<'_>, spread_only: bool) -> Option<usize> {
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
