//! The autoscaler itself: what one tick knows about a group ([`GroupInput`]), the rules tried in
//! order ([`NodeAutoscaler::decide`]), and finishing a committed scale-out the provider missed
//! ([`unfinished_scale_out`]).

use super::policy::{NodeGroupPolicy, ProviderKind};
use super::reason::{BoundSource, NodeDecision, NodeReason};
use crate::placement::NodeState;
use crate::schedule::{active_min, ActiveWindow};

/// The group's sizes as the provider reports them (an EC2 Auto Scaling group's desired, min and
/// max size; a static fleet reports its size for all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSize {
    pub desired: u32,
    pub min: u32,
    pub max: u32,
}

/// A node of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupNode {
    pub id: String,
    /// The memory the node declared (its capacity).
    pub memory_mib: u32,
    /// The memory its placed instances reserve.
    pub reserved_memory_mib: u32,
    pub state: NodeState,
    /// No placement is left on it.
    pub empty: bool,
    /// It is draining because this autoscaler committed a [`NodeDecision::Drain`] for it (as
    /// opposed to a drain an operator asked for, which the autoscaler never terminates).
    pub drained_by_autoscaler: bool,
}

/// Instances the scheduler could not place for lack of room (not those larger than any node,
/// which more nodes of the same size would not help).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingDemand {
    pub instances: u32,
    /// The memory they need together.
    pub memory_mib: u64,
}

/// What one tick knows about a group.
#[derive(Debug, Clone, Copy)]
pub struct GroupInput<'a> {
    pub policy: &'a NodeGroupPolicy,
    pub provider: ProviderSize,
    /// The group's registered nodes, leaving out any whose termination is committed.
    pub nodes: &'a [GroupNode],
    pub pending: PendingDemand,
    /// When the last scale-out of this group was committed.
    pub last_scale_out_ms: Option<u64>,
    /// When the last termination of a node of this group was committed.
    pub last_scale_in_ms: Option<u64>,
}

/// A scale-out as committed: the size asked for, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedScaleOut {
    pub to: u32,
    pub at_ms: u64,
}

/// The size to ask the provider for again when a committed scale-out did not reach it, else
/// `None`.
///
/// The leader commits [`NodeDecision::ScaleOut`] before it calls the provider. If it dies in
/// between, or the call fails, the provider's desired size stays below the committed one, and the
/// cooldown (counted from the commit) keeps [`NodeAutoscaler::decide`] from asking again. So the
/// next tick, of this leader or of the next, finishes it: while the scale-out is recent (committed
/// less than `scale_out_cooldown_ms` ago; a time before the commit, from a clock behind the one
/// that committed, counts as recent), when no scale-in was committed since (a termination lowers
/// the desired size on purpose), never above the effective max as it is now, and only when that
/// is above the provider's desired size. Asking twice sets the same absolute size.
pub fn unfinished_scale_out(
    policy: &NodeGroupPolicy,
    provider: ProviderSize,
    committed: CommittedScaleOut,
    last_scale_in_ms: Option<u64>,
    now_ms: u64,
) -> Option<u32> {
    let recent = now_ms < committed.at_ms.saturating_add(policy.scale_out_cooldown_ms);
    let scaled_in_since = last_scale_in_ms.is_some_and(|at| at >= committed.at_ms);
    if !recent || scaled_in_since {
        return None;
    }
    let to = committed.to.min(policy.max_nodes).min(provider.max);
    (to > provider.desired).then_some(to)
}

/// One group's autoscaler: since when each condition has held. Everything else comes in with
/// each [`GroupInput`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAutoscaler {
    /// Since when instances have been pending, while they are.
    pending_since_ms: Option<u64>,
    /// Since when reserved memory has been above the target, while it is.
    above_target_since_ms: Option<u64>,
    /// Since when reserved memory has been under the low mark with nothing pending, while it is.
    below_low_since_ms: Option<u64>,
    latest_ms: u64,
}

impl NodeAutoscaler {
    pub fn new() -> Self {
        NodeAutoscaler::default()
    }

    /// The decision for the group at `now_ms`. Updates since when each condition has held, so
    /// call it once per tick; calling it again with the same time and input gives the same
    /// decision.
    pub fn decide(&mut self, now_ms: u64, input: &GroupInput<'_>) -> NodeDecision {
        let now = now_ms.max(self.latest_ms);
        self.latest_ms = now;
        let tick = Tick::new(now, input);
        let pending = input.pending.instances > 0;
        let above_target = tick.above(input.policy.target_memory_utilization);
        let below_low = !pending && tick.below(input.policy.low_memory_utilization);
        let since = |held: bool, started: Option<u64>| held.then(|| started.unwrap_or(now));
        self.pending_since_ms = since(pending, self.pending_since_ms);
        self.above_target_since_ms = since(above_target, self.above_target_since_ms);
        self.below_low_since_ms = since(below_low, self.below_low_since_ms);

        if tick.desired < tick.floor {
            return NodeDecision::ScaleOut {
                to: tick.floor,
                reason: tick.floor_reason(),
            };
        }
        if let Some(decision) = self.drain_in_progress(&tick) {
            return decision;
        }
        if tick.desired > tick.max && tick.desired > tick.scale_in_floor() {
            if let Some(node) = tick.emptiest_ready() {
                return NodeDecision::Drain {
                    node: node.id.clone(),
                    reason: NodeReason::AboveMax {
                        desired: tick.desired,
                        max: tick.max,
                        source: tick.max_source,
                    },
                };
            }
        }
        if pending || above_target {
            return self.scale_out(&tick);
        }
        if below_low {
            return self.scale_in(&tick);
        }
        NodeDecision::Nothing
    }

    /// How long a condition that started at `since` has held at `now`.
    fn held_for(since: Option<u64>, now: u64) -> Option<u64> {
        since.map(|since| now.saturating_sub(since))
    }

    /// Rule 2: the nodes the autoscaler drained, if any, and what becomes of them.
    fn drain_in_progress(&self, tick: &Tick<'_>) -> Option<NodeDecision> {
        let ours = || tick.nodes().filter(|n| n.drained_by_autoscaler);
        let keeps_floor = tick.desired > tick.scale_in_floor();
        // One that went down cannot come back into service: terminate it once its placements
        // moved.
        let down = ours()
            .filter(|n| n.state == NodeState::Down && n.empty)
            .min_by(|a, b| a.id.cmp(&b.id));
        if let Some(node) = down {
            if keeps_floor {
                return Some(NodeDecision::Terminate {
                    node: node.id.clone(),
                    reason: NodeReason::Drained,
                });
            }
        }
        let node = ours()
            .filter(|n| n.state == NodeState::Draining)
            .min_by(|a, b| a.id.cmp(&b.id))?;
        let restore = |reason| {
            Some(NodeDecision::Restore {
                node: node.id.clone(),
                reason,
            })
        };
        if !keeps_floor {
            return restore(tick.needed_for_floor_reason());
        }
        if let Some(reason) = self.pending_reason(tick) {
            return restore(reason);
        }
        if let Some(reason) = self.above_target_reason(tick) {
            return restore(reason);
        }
        Some(if node.empty {
            NodeDecision::Terminate {
                node: node.id.clone(),
                reason: NodeReason::Drained,
            }
        } else {
            NodeDecision::Hold {
                reason: NodeReason::DrainInProgress { node: node.id.clone() },
            }
        })
    }

    fn pending_reason(&self, tick: &Tick<'_>) -> Option<NodeReason> {
        let pending = tick.input.pending;
        let for_ms = Self::held_for(self.pending_since_ms, tick.now)?;
        Some(NodeReason::InstancesPending {
            instances: pending.instances,
            memory_mib: pending.memory_mib,
            for_ms,
        })
    }

    fn above_target_reason(&self, tick: &Tick<'_>) -> Option<NodeReason> {
        let for_ms = Self::held_for(self.above_target_since_ms, tick.now)?;
        Some(NodeReason::MemoryAboveTarget {
            reserved_mib: tick.reserved_mib,
            capacity_mib: tick.capacity_mib,
            target: tick.input.policy.target_memory_utilization,
            for_ms,
        })
    }

    /// Rule 4.
    fn scale_out(&self, tick: &Tick<'_>) -> NodeDecision {
        let policy = tick.input.policy;
        let needed = tick.nodes_needed(policy.target_memory_utilization);
        if needed == 0 {
            return NodeDecision::Hold {
                reason: NodeReason::NodesJoining {
                    joining: tick.joining,
                    asked_ago_ms: Self::held_for(tick.input.last_scale_out_ms, tick.now),
                },
            };
        }
        if tick.desired >= tick.max {
            return NodeDecision::Hold {
                reason: NodeReason::AtMax {
                    pending_instances: tick.input.pending.instances,
                    max: tick.max,
                    source: tick.max_source,
                },
            };
        }
        let window = policy.scale_out_window_ms;
        let pending_for = Self::held_for(self.pending_since_ms, tick.now);
        let above_for = Self::held_for(self.above_target_since_ms, tick.now);
        let reason = if pending_for.is_some_and(|held| held >= window) {
            self.pending_reason(tick)
        } else if above_for.is_some_and(|held| held >= window) {
            self.above_target_reason(tick)
        } else {
            None
        };
        let Some(reason) = reason else {
            return NodeDecision::Hold {
                reason: NodeReason::ScaleOutWindow {
                    pending_instances: tick.input.pending.instances,
                    for_ms: pending_for.max(above_for).unwrap_or(0),
                    window_ms: window,
                },
            };
        };
        if let Some(remaining_ms) = tick.cooldown_left(tick.input.last_scale_out_ms, policy.scale_out_cooldown_ms) {
            return NodeDecision::Hold {
                reason: NodeReason::ScaleOutCooldown { remaining_ms },
            };
        }
        let step = needed.min(policy.max_step_out);
        NodeDecision::ScaleOut {
            to: tick.desired.saturating_add(step).min(tick.max),
            reason,
        }
    }

    /// Rule 5.
    fn scale_in(&self, tick: &Tick<'_>) -> NodeDecision {
        let policy = tick.input.policy;
        let Some(for_ms) = Self::held_for(self.below_low_since_ms, tick.now) else {
            return NodeDecision::Nothing;
        };
        if for_ms < policy.scale_in_window_ms || tick.joining > 0 || tick.desired <= tick.scale_in_floor() {
            return NodeDecision::Nothing;
        }
        let Some(node) = tick.emptiest_ready() else {
            return NodeDecision::Nothing;
        };
        let remaining_mib = tick.capacity_mib - u64::from(node.memory_mib);
        let stays_under_target = tick.reserved_mib == 0
            || (tick.reserved_mib as f64) < policy.target_memory_utilization * remaining_mib as f64;
        if !stays_under_target {
            return NodeDecision::Nothing;
        }
        let last_change = tick.input.last_scale_out_ms.max(tick.input.last_scale_in_ms);
        if let Some(remaining_ms) = tick.cooldown_left(last_change, policy.scale_in_cooldown_ms) {
            return NodeDecision::Hold {
                reason: NodeReason::ScaleInCooldown { remaining_ms },
            };
        }
        NodeDecision::Drain {
            node: node.id.clone(),
            reason: NodeReason::MemoryBelowLow {
                reserved_mib: tick.reserved_mib,
                capacity_mib: tick.capacity_mib,
                low: policy.low_memory_utilization,
                for_ms,
                node_reserved_mib: node.reserved_memory_mib,
            },
        }
    }
}

/// What one tick derives from its input.
struct Tick<'a> {
    now: u64,
    input: &'a GroupInput<'a>,
    desired: u32,
    max: u32,
    max_source: BoundSource,
    /// The effective min: `max(min_nodes, scheduled min)`, at most `max`.
    floor: u32,
    scheduled: Option<ActiveWindow>,
    /// Memory of the ready nodes.
    capacity_mib: u64,
    /// Memory reserved on ready and draining nodes.
    reserved_mib: u64,
    /// Nodes the provider runs, or is starting, that have not registered yet: the desired size
    /// minus the group's nodes in any state. (A down node still counts as a machine the provider
    /// runs: should the provider have replaced it, the autoscaler may add one node too many,
    /// which scale-in takes back, rather than wait forever for one that never comes.)
    joining: u32,
    /// The memory a node of this group typically has: the median over its nodes.
    typical_node_mib: Option<u64>,
}

impl<'a> Tick<'a> {
    fn new(now: u64, input: &'a GroupInput<'a>) -> Self {
        let policy = input.policy;
        let (max, max_source) = if policy.provider == ProviderKind::Static && input.provider.max <= policy.max_nodes {
            (input.provider.max, BoundSource::StaticFleet)
        } else if input.provider.max < policy.max_nodes {
            (input.provider.max, BoundSource::Provider)
        } else {
            (policy.max_nodes, BoundSource::Policy)
        };
        let scheduled = active_min(&policy.windows, now);
        let floor = policy.min_nodes.max(scheduled.map_or(0, |w| w.min_nodes)).min(max);
        let mut capacity_mib = 0;
        let mut reserved_mib = 0;
        for node in input.nodes {
            if node.state == NodeState::Ready {
                capacity_mib += u64::from(node.memory_mib);
            }
            if node.state != NodeState::Down {
                reserved_mib += u64::from(node.reserved_memory_mib);
            }
        }
        let registered = u32::try_from(input.nodes.len()).unwrap_or(u32::MAX);
        let mut sizes: Vec<u32> = input.nodes.iter().map(|n| n.memory_mib).collect();
        sizes.sort_unstable();
        let typical_node_mib = sizes
            .get(sizes.len().saturating_sub(1) / 2)
            .map(|&m| u64::from(m))
            .filter(|&m| m > 0);
        Tick {
            now,
            input,
            desired: input.provider.desired,
            max,
            max_source,
            floor,
            scheduled,
            capacity_mib,
            reserved_mib,
            joining: input.provider.desired.saturating_sub(registered),
            typical_node_mib,
        }
    }

    fn nodes(&self) -> impl Iterator<Item = &'a GroupNode> {
        self.input.nodes.iter()
    }

    /// The floor scale-in respects: the effective min, and the provider's min (it would refuse
    /// to go lower).
    fn scale_in_floor(&self) -> u32 {
        self.floor.max(self.input.provider.min)
    }

    fn floor_reason(&self) -> NodeReason {
        match self.scheduled {
            Some(window) if window.min_nodes > self.input.policy.min_nodes => NodeReason::ScheduledWindow {
                index: window.index,
                cron: self.input.policy.windows[window.index].cron.to_string(),
                min_nodes: window.min_nodes,
                end_ms: window.end_ms,
            },
            _ => NodeReason::BelowMin {
                min_nodes: self.input.policy.min_nodes,
            },
        }
    }

    /// Why a node drained for scale-in must stay, when the group is at its floor.
    fn needed_for_floor_reason(&self) -> NodeReason {
        if self.input.provider.min > self.floor {
            return NodeReason::AtMin {
                min: self.input.provider.min,
                source: BoundSource::Provider,
            };
        }
        match self.floor_reason() {
            NodeReason::BelowMin { .. } => NodeReason::AtMin {
                min: self.floor,
                source: BoundSource::Policy,
            },
            scheduled => scheduled,
        }
    }

    /// Reserved memory above `share` of the ready capacity (any reservation, with none ready).
    fn above(&self, share: f64) -> bool {
        self.reserved_mib as f64 > share * self.capacity_mib as f64
    }

    /// Reserved memory under `share` of the ready capacity (never, with none ready).
    fn below(&self, share: f64) -> bool {
        (self.reserved_mib as f64) < share * self.capacity_mib as f64
    }

    /// The emptiest ready node: fewest reserved MiB, then smallest id.
    fn emptiest_ready(&self) -> Option<&'a GroupNode> {
        self.nodes()
            .filter(|n| n.state == NodeState::Ready)
            .min_by(|a, b| (a.reserved_memory_mib, &a.id).cmp(&(b.reserved_memory_mib, &b.id)))
    }

    /// Nodes to add beyond those joining: enough for the pending memory, and enough to bring
    /// utilization back to `target`, the larger; 0 when the joining nodes cover both.
    fn nodes_needed(&self, target: f64) -> u32 {
        let typical = self.typical_node_mib;
        let coming_mib = u64::from(self.joining) * typical.unwrap_or(0);
        let at_least_one = |n: u32| if self.joining == 0 { n.max(1) } else { n };
        let mut needed = 0;
        let pending = self.input.pending;
        if pending.instances > 0 {
            let uncovered = pending.memory_mib.saturating_sub(coming_mib);
            let for_pending = typical.map_or(0, |t| uncovered.div_ceil(t));
            needed = at_least_one(u32::try_from(for_pending).unwrap_or(u32::MAX));
        }
        if self.above(target) {
            let short_mib = self.reserved_mib as f64 / target - (self.capacity_mib + coming_mib) as f64;
            let for_target = match typical {
                // Tolerate the float error of the division, as the function autoscaler does.
                Some(t) if short_mib > 0.0 => (short_mib / t as f64 * (1.0 - 1e-9)).ceil() as u32,
                _ => 0,
            };
            needed = needed.max(at_least_one(for_target));
        }
        needed
    }

    /// What is left of a cooldown of `cooldown_ms` from `since`, if any.
    fn cooldown_left(&self, since: Option<u64>, cooldown_ms: u64) -> Option<u64> {
        let ends = since?.saturating_add(cooldown_ms);
        (self.now < ends).then(|| ends - self.now)
    }
}
