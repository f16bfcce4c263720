//! The node autoscaler's decisions: when a node group should grow, which node it should give
//! up, and, when it holds, why.
//!
//! The leader runs one [`NodeAutoscaler`] per node group every few seconds. Each tick it builds
//! a [`GroupInput`] from what it already has (the group's [`NodeGroupPolicy`], the provider's
//! reported sizes, the nodes with their memory and state, the instances the scheduler could not
//! place for lack of room, and the committed times of the last scale-out and scale-in) and asks
//! [`NodeAutoscaler::decide`] for one [`NodeDecision`]. The rules, in the order they are tried:
//!
//! 1. **Floor.** The effective min is `max(min_nodes, the largest min_nodes of the scheduled
//!    windows active now)` ([`crate::schedule::active_min`]), at most the effective max. A group
//!    whose desired size is below it scales out to it at once: no window, no cooldown. So a
//!    window raises the group at its start; when it ends, the floor falls back and the normal
//!    scale-in rules take the extra nodes away.
//! 2. **The drain in progress.** At most one node is drained for scale-in at a time. While it
//!    drains, the autoscaler returns it to service ([`NodeDecision::Restore`]) if demand comes
//!    back (instances pending, memory above target) or the floor rose to need it; once it is
//!    empty it terminates exactly that node ([`NodeDecision::Terminate`]); until then it holds.
//! 3. **Above max** (the max was lowered): drain the emptiest ready node, one at a time.
//! 4. **Scale out** when instances have stayed pending for lack of room for
//!    `scale_out_window_ms`, or memory reserved / ready capacity has stayed above
//!    `target_memory_utilization` as long. The step fits the demand: `ceil(pending MiB / typical
//!    node MiB)` for the pending instances, and as many nodes as bring utilization back to the
//!    target, the larger of the two, at most `max_step_out`, never past the effective max. Nodes
//!    asked for that have not joined yet (desired size minus the group's nodes) count as coming
//!    capacity, so the autoscaler waits for them rather than asking again. A group at its max
//!    holds, naming the max (for a static fleet, its size: it never grows); so does a group in
//!    its scale-out cooldown.
//! 5. **Scale in** when memory reserved / ready capacity has stayed under
//!    `low_memory_utilization` for `scale_in_window_ms` with nothing pending, no node joining,
//!    the desired size above the floor, and the emptiest ready node (fewest reserved MiB, ties
//!    by id) removable with the rest still under the target. Step one drains it
//!    ([`NodeDecision::Drain`]): the scheduler moves its instances elsewhere, new ones starting
//!    before old ones stop, so no request is dropped. Step two is rule 2's terminate. Nothing is
//!    drained within `scale_in_cooldown_ms` of the last scale-out or scale-in.
//!
//! **Idempotent.** Every size is computed from the provider's reported desired size, never from
//! what the autoscaler asked before: running `decide` again with the same input (after a leader
//! change, or before the last decision was applied) gives the same decision, and
//! `ScaleOut { to }` sets an absolute size, so applying it twice changes nothing. Cooldowns come
//! from committed times, so a new leader respects them. The only memory between ticks is since
//! when each condition has held (pending, above target, under the low mark); a new leader starts
//! those afresh, which delays a scale-out or scale-in by one window and never hastens one.
//!
//! **Finishing a committed scale-out.** A scale-out is committed before the provider is asked;
//! [`unfinished_scale_out`] gives the size to ask for again when the provider did not get there
//! (the leader died in between, or the call failed), while the scale-out is recent.
//!
//! **Accounting.** Ready nodes are the capacity. Draining nodes are not, but what they still
//! hold counts as reserved, since it must find room elsewhere. Down nodes add neither capacity
//! nor reservation (the scheduler places their instances again, which shows up as pending if
//! there is no room), but still count as machines when estimating the nodes yet to join. The
//! typical node size is the median memory of the group's nodes; with none, a step is one node.
//!
//! Pure: no I/O, no clock. `now_ms` is Unix milliseconds (the cooldowns compare it with
//! committed times, the windows with the calendar); a time earlier than one already seen counts
//! as the latest seen.

mod autoscaler;
mod policy;
mod reason;
#[cfg(test)]
mod tests;

pub use autoscaler::{
    unfinished_scale_out, CommittedScaleOut, GroupInput, GroupNode, NodeAutoscaler, PendingDemand, ProviderSize,
};
pub use policy::{
    NodeGroupPolicy, NodeGroupPolicyError, ProviderKind, DEFAULT_LOW_MEMORY_UTILIZATION, DEFAULT_MAX_STEP_OUT,
    DEFAULT_MIN_NODES, DEFAULT_SCALE_IN_COOLDOWN_MS, DEFAULT_SCALE_IN_WINDOW_MS, DEFAULT_SCALE_OUT_COOLDOWN_MS,
    DEFAULT_SCALE_OUT_WINDOW_MS, DEFAULT_TARGET_MEMORY_UTILIZATION, MAX_NODE_GROUP_POLICY_BYTES,
};
pub use reason::{BoundSource, NodeDecision, NodeReason};
