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

use crate::placement::NodeState;
use crate::schedule::{active_min, format_utc_minute, ActiveWindow, Window};
use fjord_core::duration::format_duration;
use fjord_core::name::check_dns_label;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

pub const DEFAULT_MIN_NODES: u32 = 1;
pub const DEFAULT_TARGET_MEMORY_UTILIZATION: f64 = 0.70;
pub const DEFAULT_LOW_MEMORY_UTILIZATION: f64 = 0.30;
pub const DEFAULT_SCALE_OUT_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_SCALE_IN_WINDOW_MS: u64 = 600_000;
pub const DEFAULT_SCALE_OUT_COOLDOWN_MS: u64 = 60_000;
pub const DEFAULT_SCALE_IN_COOLDOWN_MS: u64 = 300_000;
pub const DEFAULT_MAX_STEP_OUT: u32 = 5;
/// Largest policy file accepted.
pub const MAX_NODE_GROUP_POLICY_BYTES: usize = 64 * 1024;

/// How one node group scales. Field names are the YAML keys; only `name` and `max_nodes` are
/// required.
///
/// ```yaml
/// name: workers
/// min_nodes: 2
/// max_nodes: 20
/// target_memory_utilization: 0.7   # scale out above this (memory reserved / ready capacity)
/// low_memory_utilization: 0.3      # scale in below this
/// scale_out_window_ms: 60000       # how long pressure must last
/// scale_in_window_ms: 600000       # how long quiet must last
/// scale_out_cooldown_ms: 60000     # after a scale-out, before the next
/// scale_in_cooldown_ms: 300000     # after any scale-out or scale-in, before a drain
/// max_step_out: 5                  # nodes added at once
/// windows:                         # scheduled floors, cron in UTC
///   - cron: "0 8 * * 1-5"
///     duration_ms: 36000000
///     min_nodes: 6
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupPolicy {
    /// The group's name (a DNS label), as the provider and `fjord nodes` know it.
    pub name: String,
    /// Who adds and removes the group's machines.
    #[serde(default)]
    pub provider: ProviderKind,
    /// `aws-asg`: the Auto Scaling group's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub asg_name: String,
    /// `static`: the node ids of the fleet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `command`: a program and its first arguments, run with `describe`, `set-desired N` or
    /// `terminate ID` appended (see `fjord policy --help`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default = "default_min_nodes")]
    pub min_nodes: u32,
    pub max_nodes: u32,
    #[serde(default = "default_target_memory_utilization")]
    pub target_memory_utilization: f64,
    #[serde(default = "default_low_memory_utilization")]
    pub low_memory_utilization: f64,
    #[serde(default = "default_scale_out_window_ms")]
    pub scale_out_window_ms: u64,
    #[serde(default = "default_scale_in_window_ms")]
    pub scale_in_window_ms: u64,
    #[serde(default = "default_scale_out_cooldown_ms")]
    pub scale_out_cooldown_ms: u64,
    #[serde(default = "default_scale_in_cooldown_ms")]
    pub scale_in_cooldown_ms: u64,
    #[serde(default = "default_max_step_out")]
    pub max_step_out: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// The kinds of capacity provider a node group can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// A fixed fleet of VPS nodes: never launches; says when demand exceeds it.
    #[default]
    Static,
    /// An EC2 Auto Scaling group.
    AwsAsg,
    /// An operator's program that adds and removes machines (any cloud or hypervisor API).
    Command,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Static => "static",
            ProviderKind::AwsAsg => "aws-asg",
            ProviderKind::Command => "command",
        }
    }
}

fn default_min_nodes() -> u32 {
    DEFAULT_MIN_NODES
}
fn default_target_memory_utilization() -> f64 {
    DEFAULT_TARGET_MEMORY_UTILIZATION
}
fn default_low_memory_utilization() -> f64 {
    DEFAULT_LOW_MEMORY_UTILIZATION
}
fn default_scale_out_window_ms() -> u64 {
    DEFAULT_SCALE_OUT_WINDOW_MS
}
fn default_scale_in_window_ms() -> u64 {
    DEFAULT_SCALE_IN_WINDOW_MS
}
fn default_scale_out_cooldown_ms() -> u64 {
    DEFAULT_SCALE_OUT_COOLDOWN_MS
}
fn default_scale_in_cooldown_ms() -> u64 {
    DEFAULT_SCALE_IN_COOLDOWN_MS
}
fn default_max_step_out() -> u32 {
    DEFAULT_MAX_STEP_OUT
}

/// A node group policy that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeGroupPolicyError {
    /// The text is not a policy at all (YAML syntax, wrong type, unknown key, bad cron).
    #[error("invalid node group policy: {0}")]
    Parse(String),
    /// One field's value is out of bounds.
    #[error("invalid node group policy: field `{field}` {reason}")]
    Field { field: String, reason: String },
}

impl NodeGroupPolicyError {
    fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NodeGroupPolicyError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault, when one is known (`windows[1].min_nodes`).
    pub fn field_name(&self) -> Option<&str> {
        match self {
            NodeGroupPolicyError::Field { field, .. } => Some(field),
            NodeGroupPolicyError::Parse(_) => None,
        }
    }
}

impl NodeGroupPolicy {
    /// A policy with every default and the given name and bounds.
    pub fn new(name: &str, min_nodes: u32, max_nodes: u32) -> Self {
        NodeGroupPolicy {
            name: name.to_string(),
            provider: ProviderKind::Static,
            asg_name: String::new(),
            nodes: Vec::new(),
            command: Vec::new(),
            min_nodes,
            max_nodes,
            target_memory_utilization: DEFAULT_TARGET_MEMORY_UTILIZATION,
            low_memory_utilization: DEFAULT_LOW_MEMORY_UTILIZATION,
            scale_out_window_ms: DEFAULT_SCALE_OUT_WINDOW_MS,
            scale_in_window_ms: DEFAULT_SCALE_IN_WINDOW_MS,
            scale_out_cooldown_ms: DEFAULT_SCALE_OUT_COOLDOWN_MS,
            scale_in_cooldown_ms: DEFAULT_SCALE_IN_COOLDOWN_MS,
            max_step_out: DEFAULT_MAX_STEP_OUT,
            windows: Vec::new(),
        }
    }

    /// Parses and validates a policy written in YAML.
    pub fn from_yaml(text: &str) -> Result<Self, NodeGroupPolicyError> {
        if text.len() > MAX_NODE_GROUP_POLICY_BYTES {
            return Err(NodeGroupPolicyError::Parse(format!(
                "the policy is {} bytes; the limit is {MAX_NODE_GROUP_POLICY_BYTES}",
                text.len()
            )));
        }
        let policy: NodeGroupPolicy =
            serde_yaml_ng::from_str(text).map_err(|e| NodeGroupPolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks that the provider settings are complete: `asg_name` for `aws-asg`, `nodes` for
    /// `static`, `command` for `command`. Separate from [`Self::validate`], which checks the
    /// scaling rules alone.
    pub fn validate_provider(&self) -> Result<(), NodeGroupPolicyError> {
        let fail = |field: &str, reason: String| Err(NodeGroupPolicyError::field(field, reason));
        match self.provider {
            ProviderKind::AwsAsg if self.asg_name.trim().is_empty() => {
                return fail(
                    "asg_name",
                    "is required with provider aws-asg: the Auto Scaling group's name".into(),
                )
            }
            ProviderKind::Static if self.nodes.is_empty() => {
                return fail("nodes", "is required with provider static: the fleet's node ids".into())
            }
            ProviderKind::Static => {
                for (i, node) in self.nodes.iter().enumerate() {
                    check_dns_label(node).map_err(|r| NodeGroupPolicyError::field(format!("nodes[{i}]"), r))?;
                }
            }
            ProviderKind::Command if self.command.first().is_none_or(|c| c.trim().is_empty()) => {
                return fail(
                    "command",
                    "is required with provider command: [program, args...]".into(),
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks every bound; the first field at fault is reported.
    pub fn validate(&self) -> Result<(), NodeGroupPolicyError> {
        let fail = |field: &str, reason: String| Err(NodeGroupPolicyError::field(field, reason));
        check_dns_label(&self.name).map_err(|r| NodeGroupPolicyError::field("name", r))?;
        if self.max_nodes == 0 {
            return fail("max_nodes", "must be at least 1".into());
        }
        if self.min_nodes > self.max_nodes {
            return fail(
                "min_nodes",
                format!(
                    "is {} but max_nodes is {}; lower min_nodes or raise max_nodes",
                    self.min_nodes, self.max_nodes
                ),
            );
        }
        let target = self.target_memory_utilization;
        if !(target.is_finite() && target > 0.0 && target <= 1.0) {
            return fail(
                "target_memory_utilization",
                format!("must be above 0 and at most 1 (got {target})"),
            );
        }
        let low = self.low_memory_utilization;
        if !(low.is_finite() && low >= 0.0 && low < target) {
            return fail(
                "low_memory_utilization",
                format!("must be at least 0 and below target_memory_utilization ({target}) (got {low})"),
            );
        }
        if self.max_step_out == 0 {
            return fail("max_step_out", "must be at least 1".into());
        }
        for (i, window) in self.windows.iter().enumerate() {
            if let Err((field, reason)) = window.validate() {
                return fail(&format!("windows[{i}].{field}"), reason);
            }
            if window.min_nodes > self.max_nodes {
                return fail(
                    &format!("windows[{i}].min_nodes"),
                    format!("is {} but max_nodes is {}", window.min_nodes, self.max_nodes),
                );
            }
        }
        Ok(())
    }
}

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

/// What the autoscaler asks of a group at one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeDecision {
    /// Set the provider's desired size to `to` (always above the reported desired size and at
    /// most the effective max).
    ScaleOut { to: u32, reason: NodeReason },
    /// Scale-in, step one: drain this ready node.
    Drain { node: String, reason: NodeReason },
    /// Scale-in, step two: terminate exactly this node, which the autoscaler drained and which
    /// is now empty, lowering the desired size by one.
    Terminate { node: String, reason: NodeReason },
    /// Return this node, drained by the autoscaler, to service (ready) instead of terminating it.
    Restore { node: String, reason: NodeReason },
    /// Something calls for a change that a rule holds back, or that is under way.
    Hold { reason: NodeReason },
    /// Nothing calls for a change.
    Nothing,
}

impl NodeDecision {
    pub fn reason(&self) -> Option<&NodeReason> {
        match self {
            NodeDecision::ScaleOut { reason, .. }
            | NodeDecision::Drain { reason, .. }
            | NodeDecision::Terminate { reason, .. }
            | NodeDecision::Restore { reason, .. }
            | NodeDecision::Hold { reason } => Some(reason),
            NodeDecision::Nothing => None,
        }
    }
}

impl fmt::Display for NodeDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeDecision::ScaleOut { to, reason } => write!(f, "scale out to {to} nodes: {reason}"),
            NodeDecision::Drain { node, reason } => write!(f, "drain node {node}: {reason}"),
            NodeDecision::Terminate { node, reason } => write!(f, "terminate node {node}: {reason}"),
            NodeDecision::Restore { node, reason } => write!(f, "return node {node} to service: {reason}"),
            NodeDecision::Hold { reason } => write!(f, "holding: {reason}"),
            NodeDecision::Nothing => f.write_str("steady"),
        }
    }
}

/// Which bound a max or min comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundSource {
    /// The policy's `max_nodes` or `min_nodes`.
    Policy,
    /// The provider's own size limit (the Auto Scaling group's max or min size).
    Provider,
    /// A static fleet's size: the nodes its policy lists, which never grows.
    StaticFleet,
}

/// Why a decision was taken; its `Display` is the sentence `fjord nodes` shows.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeReason {
    /// The desired size is below the policy's `min_nodes`.
    BelowMin { min_nodes: u32 },
    /// The group is at its floor: a node drained for scale-in is needed after all.
    AtMin { min: u32, source: BoundSource },
    /// A scheduled window asks for at least `min_nodes` until `end_ms`.
    ScheduledWindow {
        index: usize,
        cron: String,
        min_nodes: u32,
        end_ms: u64,
    },
    /// Instances have waited for room for `for_ms`.
    InstancesPending {
        instances: u32,
        memory_mib: u64,
        for_ms: u64,
    },
    /// Reserved memory has stayed above the target for `for_ms`.
    MemoryAboveTarget {
        reserved_mib: u64,
        capacity_mib: u64,
        target: f64,
        for_ms: u64,
    },
    /// More nodes are needed, but the group is at its max.
    AtMax {
        pending_instances: u32,
        max: u32,
        source: BoundSource,
    },
    /// Pressure has not lasted `window_ms` yet.
    ScaleOutWindow {
        pending_instances: u32,
        for_ms: u64,
        window_ms: u64,
    },
    /// Nodes asked for have not registered yet; they cover the demand.
    NodesJoining { joining: u32, asked_ago_ms: Option<u64> },
    /// The last scale-out was too recent.
    ScaleOutCooldown { remaining_ms: u64 },
    /// The last scale-out or scale-in was too recent for a drain.
    ScaleInCooldown { remaining_ms: u64 },
    /// Reserved memory has stayed under the low mark for `for_ms`: the emptiest node goes.
    MemoryBelowLow {
        reserved_mib: u64,
        capacity_mib: u64,
        low: f64,
        for_ms: u64,
        node_reserved_mib: u32,
    },
    /// The group has more nodes than its max.
    AboveMax {
        desired: u32,
        max: u32,
        source: BoundSource,
    },
    /// The node drained for scale-in holds no placement any more.
    Drained,
    /// The node drained for scale-in still holds placements.
    DrainInProgress { node: String },
}

fn human_ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "all".into();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

/// What calls for nodes: pending instances if any, else reserved memory.
fn pressure(pending_instances: u32) -> String {
    if pending_instances > 0 {
        format!("{pending_instances} instances pending")
    } else {
        "memory reserved is above the target".into()
    }
}

fn bound_name(source: BoundSource, bound: &str) -> String {
    match source {
        BoundSource::Policy => format!("its {bound}"),
        BoundSource::Provider => format!("the provider's {bound}"),
        BoundSource::StaticFleet => "the static fleet's size".to_string(),
    }
}

impl fmt::Display for NodeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeReason::BelowMin { min_nodes } => write!(f, "the group is below its min_nodes of {min_nodes}"),
            NodeReason::AtMin { min, source } => {
                write!(f, "the group is at {} of {min} nodes", bound_name(*source, "min"))
            }
            NodeReason::ScheduledWindow {
                index,
                cron,
                min_nodes,
                end_ms,
            } => write!(
                f,
                "scheduled window {index} ({cron}) asks for at least {min_nodes} nodes until {}",
                format_utc_minute(*end_ms)
            ),
            NodeReason::InstancesPending {
                instances,
                memory_mib,
                for_ms,
            } => write!(
                f,
                "{instances} instances ({memory_mib} MiB) have waited for room for {}",
                human_ms(*for_ms)
            ),
            NodeReason::MemoryAboveTarget {
                reserved_mib,
                capacity_mib,
                target,
                for_ms,
            } => write!(
                f,
                "{reserved_mib} MiB reserved of {capacity_mib} MiB ready ({}) has stayed above the {:.0}% target for {}",
                percent(*reserved_mib, *capacity_mib),
                target * 100.0,
                human_ms(*for_ms)
            ),
            NodeReason::AtMax {
                pending_instances,
                max,
                source: BoundSource::StaticFleet,
            } => write!(
                f,
                "{} but the static fleet is full at {max} nodes; add machines to the group's nodes list \
                 or lower the demand",
                pressure(*pending_instances)
            ),
            NodeReason::AtMax {
                pending_instances,
                max,
                source,
            } => write!(
                f,
                "{} but the group is at {} of {max} nodes",
                pressure(*pending_instances),
                bound_name(*source, "max")
            ),
            NodeReason::ScaleOutWindow {
                pending_instances,
                for_ms,
                window_ms,
            } => write!(
                f,
                "{} for {}; nodes are added once it lasts {} (scale_out_window_ms)",
                pressure(*pending_instances),
                human_ms(*for_ms),
                human_ms(*window_ms)
            ),
            NodeReason::NodesJoining { joining, asked_ago_ms } => {
                write!(f, "waiting for {joining} new nodes to join")?;
                match asked_ago_ms {
                    Some(ago) => write!(f, " (asked for {} ago)", human_ms(*ago)),
                    None => Ok(()),
                }
            }
            NodeReason::ScaleOutCooldown { remaining_ms } => write!(
                f,
                "more nodes are needed, but the last scale-out was recent; next possible in {} (scale_out_cooldown_ms)",
                human_ms(*remaining_ms)
            ),
            NodeReason::ScaleInCooldown { remaining_ms } => write!(
                f,
                "a node could go, but the group changed size recently; next possible in {} (scale_in_cooldown_ms)",
                human_ms(*remaining_ms)
            ),
            NodeReason::MemoryBelowLow {
                reserved_mib,
                capacity_mib,
                low,
                for_ms,
                node_reserved_mib,
            } => write!(
                f,
                "{reserved_mib} MiB reserved of {capacity_mib} MiB ready ({}) has stayed under the {:.0}% low mark \
                 for {}; this is the emptiest node ({node_reserved_mib} MiB reserved)",
                percent(*reserved_mib, *capacity_mib),
                low * 100.0,
                human_ms(*for_ms)
            ),
            NodeReason::AboveMax { desired, max, source } => write!(
                f,
                "the group has {desired} nodes, above {} of {max}",
                bound_name(*source, "max")
            ),
            NodeReason::Drained => f.write_str("drained for scale-in and empty"),
            NodeReason::DrainInProgress { node } => {
                write!(f, "node {node} is draining for scale-in; its instances are moving")
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::tests::TestRng;
    use crate::schedule::Cron;

    /// Monday 2024-01-01 00:00 UTC.
    const T0: u64 = 1_704_067_200_000;
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const NODE_MIB: u32 = 4096;

    fn node(id: &str, reserved_memory_mib: u32) -> GroupNode {
        GroupNode {
            id: id.to_string(),
            memory_mib: NODE_MIB,
            reserved_memory_mib,
            state: NodeState::Ready,
            empty: reserved_memory_mib == 0,
            drained_by_autoscaler: false,
        }
    }

    fn nodes(reserved: &[u32]) -> Vec<GroupNode> {
        reserved
            .iter()
            .enumerate()
            .map(|(i, &r)| node(&format!("n{i}"), r))
            .collect()
    }

    fn pending(instances: u32, memory_mib: u64) -> PendingDemand {
        PendingDemand { instances, memory_mib }
    }

    /// A group under a controllable clock; `apply` commits a decision as the leader would and
    /// the provider follows at once (new nodes join only when a test says so).
    struct Sim {
        policy: NodeGroupPolicy,
        autoscaler: NodeAutoscaler,
        now_ms: u64,
        provider: ProviderSize,
        nodes: Vec<GroupNode>,
        pending: PendingDemand,
        last_scale_out_ms: Option<u64>,
        last_scale_in_ms: Option<u64>,
    }

    impl Sim {
        fn new(policy: NodeGroupPolicy, nodes: Vec<GroupNode>) -> Self {
            Sim {
                policy,
                autoscaler: NodeAutoscaler::new(),
                now_ms: T0,
                provider: ProviderSize {
                    desired: nodes.len() as u32,
                    min: 0,
                    max: 100,
                },
                nodes,
                pending: PendingDemand::default(),
                last_scale_out_ms: None,
                last_scale_in_ms: None,
            }
        }

        fn input(&self) -> GroupInput<'_> {
            GroupInput {
                policy: &self.policy,
                provider: self.provider,
                nodes: &self.nodes,
                pending: self.pending,
                last_scale_out_ms: self.last_scale_out_ms,
                last_scale_in_ms: self.last_scale_in_ms,
            }
        }

        fn decide(&mut self) -> NodeDecision {
            let mut autoscaler = std::mem::take(&mut self.autoscaler);
            let decision = autoscaler.decide(self.now_ms, &self.input());
            self.autoscaler = autoscaler;
            decision
        }

        /// Advances the clock by `ms`, then decides.
        fn tick(&mut self, ms: u64) -> NodeDecision {
            self.now_ms += ms;
            self.decide()
        }

        /// Ticks every `every_ms` for `total_ms`, without applying anything.
        fn run(&mut self, total_ms: u64, every_ms: u64) -> Vec<NodeDecision> {
            (0..total_ms / every_ms).map(|_| self.tick(every_ms)).collect()
        }

        /// Ticks every 5 s until the decision is not `Nothing` or a hold, at most `limit_ms`.
        fn until_action(&mut self, limit_ms: u64) -> NodeDecision {
            let end = self.now_ms + limit_ms;
            while self.now_ms < end {
                let d = self.tick(5 * SECOND);
                if !matches!(d, NodeDecision::Nothing | NodeDecision::Hold { .. }) {
                    return d;
                }
            }
            panic!("no action within {limit_ms} ms");
        }

        /// A quiet group of min 1 whose first node (the emptiest) the autoscaler has drained.
        fn quiet_until_n0_drains(reserved: &[u32]) -> Self {
            let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(reserved));
            let d = sim.until_action(HOUR);
            assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n0"), "{d}");
            sim.apply(&d);
            sim
        }

        fn apply(&mut self, decision: &NodeDecision) {
            match decision {
                NodeDecision::ScaleOut { to, .. } => {
                    self.provider.desired = *to;
                    self.last_scale_out_ms = Some(self.now_ms);
                }
                NodeDecision::Drain { node, .. } => {
                    let n = self.node_mut(node);
                    n.state = NodeState::Draining;
                    n.drained_by_autoscaler = true;
                }
                NodeDecision::Terminate { node, .. } => {
                    self.nodes.retain(|n| n.id != *node);
                    self.provider.desired -= 1;
                    self.last_scale_in_ms = Some(self.now_ms);
                }
                NodeDecision::Restore { node, .. } => {
                    let n = self.node_mut(node);
                    n.state = NodeState::Ready;
                    n.drained_by_autoscaler = false;
                }
                NodeDecision::Hold { .. } | NodeDecision::Nothing => {}
            }
        }

        fn node_mut(&mut self, id: &str) -> &mut GroupNode {
            self.nodes.iter_mut().find(|n| n.id == id).expect("known node")
        }

        /// The scheduler moves everything off `id` onto `to`.
        fn move_all(&mut self, id: &str, to: &str) {
            let moved = std::mem::take(&mut self.node_mut(id).reserved_memory_mib);
            self.node_mut(id).empty = true;
            let target = self.node_mut(to);
            target.reserved_memory_mib += moved;
            target.empty = false;
        }

        fn join(&mut self, id: &str) {
            self.nodes.push(node(id, 0));
        }
    }

    fn is_scale_out(d: &NodeDecision) -> bool {
        matches!(d, NodeDecision::ScaleOut { .. })
    }

    #[test]
    fn a_minimal_policy_takes_every_default() {
        let policy = NodeGroupPolicy::from_yaml("name: workers\nmax_nodes: 10\n").unwrap();
        assert_eq!(policy, NodeGroupPolicy::new("workers", DEFAULT_MIN_NODES, 10));
        assert_eq!(policy.target_memory_utilization, 0.70);
        assert_eq!(policy.low_memory_utilization, 0.30);
        assert_eq!(policy.scale_out_window_ms, 60_000);
        assert_eq!(policy.scale_in_window_ms, 600_000);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn a_full_policy_reads_and_round_trips() {
        let text = "\
name: workers
min_nodes: 2
max_nodes: 20
target_memory_utilization: 0.8
low_memory_utilization: 0.25
scale_out_window_ms: 30000
scale_in_window_ms: 900000
scale_out_cooldown_ms: 120000
scale_in_cooldown_ms: 600000
max_step_out: 3
windows:
  - cron: \"0 8 * * 1-5\"
    duration_ms: 36000000
    min_nodes: 6
";
        let policy = NodeGroupPolicy::from_yaml(text).unwrap();
        let expected = NodeGroupPolicy {
            target_memory_utilization: 0.8,
            low_memory_utilization: 0.25,
            scale_out_window_ms: 30_000,
            scale_in_window_ms: 900_000,
            scale_out_cooldown_ms: 120_000,
            scale_in_cooldown_ms: 600_000,
            max_step_out: 3,
            windows: vec![Window {
                cron: Cron::parse("0 8 * * 1-5").unwrap(),
                duration_ms: 36_000_000,
                min_nodes: 6,
            }],
            ..NodeGroupPolicy::new("workers", 2, 20)
        };
        assert_eq!(policy, expected);
        let again = serde_yaml_ng::to_string(&policy).unwrap();
        assert_eq!(NodeGroupPolicy::from_yaml(&again).unwrap(), policy);
    }

    #[test]
    fn unreadable_policies_say_why() {
        for (text, says) in [
            ("name: workers\n", "missing field `max_nodes`"),
            ("name: workers\nmax_nodes: 3\nmax_node: 4\n", "unknown field `max_node`"),
            ("name: workers\nmax_nodes: 3\nminNodes: 1\n", "unknown field `minNodes`"),
            (
                "name: w\nmax_nodes: 3\nwindows:\n  - cron: \"0 8 * * 9\"\n    duration_ms: 60000\n    min_nodes: 1\n",
                "cron field day-of-week: bad token \"9\": 9 is outside 0-7",
            ),
            (
                "name: w\nmax_nodes: 3\nwindows:\n  - cron: \"0 8 * * 1\"\n    duration_ms: 60000\n",
                "missing field `min_nodes`",
            ),
        ] {
            let err = NodeGroupPolicy::from_yaml(text).unwrap_err();
            assert!(matches!(err, NodeGroupPolicyError::Parse(_)), "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert_eq!(err.field_name(), None);
        }
        let huge = format!("name: w\nmax_nodes: 3\n#{}\n", "x".repeat(MAX_NODE_GROUP_POLICY_BYTES));
        assert!(NodeGroupPolicy::from_yaml(&huge)
            .unwrap_err()
            .to_string()
            .contains("limit"));
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = || {
            let mut policy = NodeGroupPolicy::new("workers", 1, 5);
            policy.windows = vec![
                Window {
                    cron: Cron::parse("0 8 * * *").unwrap(),
                    duration_ms: HOUR,
                    min_nodes: 3,
                },
                Window {
                    cron: Cron::parse("0 20 * * *").unwrap(),
                    duration_ms: HOUR,
                    min_nodes: 2,
                },
            ];
            policy
        };
        assert_eq!(base().validate(), Ok(()));
        type Change = fn(&mut NodeGroupPolicy);
        let cases: [(Change, &str); 14] = [
            (|p| p.name = "Workers".into(), "name"),
            (|p| p.name = String::new(), "name"),
            (|p| p.max_nodes = 0, "max_nodes"),
            (|p| p.min_nodes = 6, "min_nodes"),
            (|p| p.target_memory_utilization = 0.0, "target_memory_utilization"),
            (|p| p.target_memory_utilization = 1.5, "target_memory_utilization"),
            (|p| p.target_memory_utilization = f64::NAN, "target_memory_utilization"),
            (|p| p.low_memory_utilization = -0.1, "low_memory_utilization"),
            (|p| p.low_memory_utilization = 0.7, "low_memory_utilization"),
            (|p| p.low_memory_utilization = f64::INFINITY, "low_memory_utilization"),
            (|p| p.max_step_out = 0, "max_step_out"),
            (|p| p.windows[1].duration_ms = 0, "windows[1].duration_ms"),
            (|p| p.windows[0].min_nodes = 6, "windows[0].min_nodes"),
            (|p| p.windows[1].duration_ms = 400 * 24 * HOUR, "windows[1].duration_ms"),
        ];
        for (change, field) in cases {
            let mut policy = base();
            change(&mut policy);
            let err = policy.validate().unwrap_err();
            assert_eq!(err.field_name(), Some(field), "{err}");
            assert!(err.to_string().contains(&format!("field `{field}`")), "{err}");
        }
        // A target of exactly 1 and a low mark of 0 are allowed.
        let mut policy = base();
        policy.target_memory_utilization = 1.0;
        policy.low_memory_utilization = 0.0;
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn a_surge_scales_out_after_the_window_and_not_before() {
        // Two nodes at 49%: five instances of 1 GiB wait for room.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[2000, 2000]));
        sim.pending = pending(5, 5 * 1024);
        let first = sim.decide();
        let before = sim.run(55 * SECOND, 5 * SECOND);
        for d in std::iter::once(&first).chain(&before) {
            assert!(
                matches!(
                    d.reason(),
                    Some(NodeReason::ScaleOutWindow {
                        pending_instances: 5,
                        ..
                    })
                ),
                "{d}"
            );
        }
        assert_eq!(
            before.last().unwrap().to_string(),
            "holding: 5 instances pending for 55s; nodes are added once it lasts 1m (scale_out_window_ms)"
        );
        // Exactly one window after the pending was first seen: ceil(5120 / 4096) = 2 nodes.
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d,
            NodeDecision::ScaleOut {
                to: 4,
                reason: NodeReason::InstancesPending {
                    instances: 5,
                    memory_mib: 5120,
                    for_ms: MINUTE,
                }
            }
        );
        assert_eq!(
            d.to_string(),
            "scale out to 4 nodes: 5 instances (5120 MiB) have waited for room for 1m"
        );
        sim.apply(&d);
        // The two nodes boot: the autoscaler waits for them instead of asking again.
        for d in sim.run(3 * MINUTE, 5 * SECOND) {
            assert!(
                matches!(d.reason(), Some(NodeReason::NodesJoining { joining: 2, .. })),
                "{d}"
            );
        }
        assert_eq!(
            sim.decide().to_string(),
            "holding: waiting for 2 new nodes to join (asked for 3m ago)"
        );
        // One joins and takes four of the instances: the other covers the last.
        sim.join("n2");
        sim.node_mut("n2").reserved_memory_mib = 4096;
        sim.pending = pending(1, 1024);
        assert!(matches!(
            sim.tick(5 * SECOND).reason(),
            Some(NodeReason::NodesJoining { joining: 1, .. })
        ));
        // Both joined, the instances placed: steady.
        sim.join("n3");
        sim.pending = PendingDemand::default();
        sim.node_mut("n3").reserved_memory_mib = 1024;
        assert_eq!(sim.tick(5 * SECOND), NodeDecision::Nothing);
    }

    #[test]
    fn pending_that_the_joined_nodes_did_not_absorb_asks_again_after_the_cooldown() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3000, 3000]));
        sim.pending = pending(1, 2048);
        let d = sim.until_action(2 * MINUTE);
        assert_eq!(
            d.clone(),
            NodeDecision::ScaleOut {
                to: 3,
                reason: d.reason().unwrap().clone()
            }
        );
        sim.apply(&d);
        sim.join("n2");
        // Still one pending (say the new node filled up with others): the cooldown holds first.
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d,
            NodeDecision::Hold {
                reason: NodeReason::ScaleOutCooldown {
                    remaining_ms: 55 * SECOND
                }
            }
        );
        assert!(
            d.to_string().contains("next possible in 55s (scale_out_cooldown_ms)"),
            "{d}"
        );
        let d = sim.until_action(2 * MINUTE);
        assert!(is_scale_out(&d), "{d}");
        assert_eq!(
            sim.now_ms - sim.last_scale_out_ms.unwrap(),
            MINUTE,
            "right when the cooldown ends"
        );
    }

    #[test]
    fn the_step_is_bounded_by_max_step_out_and_by_max() {
        // 40 GiB pending is 10 nodes' worth; max_step_out is 5.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 20), nodes(&[3000, 3000]));
        sim.pending = pending(40, 40 * 1024);
        let d = sim.until_action(2 * MINUTE);
        assert!(matches!(d, NodeDecision::ScaleOut { to: 7, .. }), "{d}");
        // With a max of 4, the step stops at 4.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 4), nodes(&[3000, 3000]));
        sim.pending = pending(40, 40 * 1024);
        let d = sim.until_action(2 * MINUTE);
        assert!(matches!(d, NodeDecision::ScaleOut { to: 4, .. }), "{d}");
        // A provider max below the policy's bounds it too.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 20), nodes(&[3000, 3000]));
        sim.provider.max = 3;
        sim.pending = pending(40, 40 * 1024);
        let d = sim.until_action(2 * MINUTE);
        assert!(matches!(d, NodeDecision::ScaleOut { to: 3, .. }), "{d}");
    }

    #[test]
    fn pending_beyond_max_holds_and_names_the_max() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 5), nodes(&[4000; 5]));
        sim.pending = pending(3, 3 * 512);
        for d in std::iter::once(sim.decide()).chain(sim.run(10 * MINUTE, 5 * SECOND)) {
            assert_eq!(
                d,
                NodeDecision::Hold {
                    reason: NodeReason::AtMax {
                        pending_instances: 3,
                        max: 5,
                        source: BoundSource::Policy
                    }
                }
            );
        }
        assert_eq!(
            sim.decide().to_string(),
            "holding: 3 instances pending but the group is at its max of 5 nodes"
        );
        // The provider's max, when it is the lower one, is the one named.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[4000; 4]));
        sim.policy.provider = ProviderKind::AwsAsg;
        sim.provider.max = 4;
        sim.pending = pending(3, 3 * 512);
        assert_eq!(
            sim.decide().to_string(),
            "holding: 3 instances pending but the group is at the provider's max of 4 nodes"
        );
        // Memory above the target at the max.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 2), nodes(&[4000, 4000]));
        assert_eq!(
            sim.decide().to_string(),
            "holding: memory reserved is above the target but the group is at its max of 2 nodes"
        );
    }

    #[test]
    fn a_full_static_fleet_holds_naming_the_fleet() {
        // A static fleet of two reports desired = min = max = 2, below the policy's max of 5.
        let mut sim = Sim::new(NodeGroupPolicy::new("vps", 1, 5), nodes(&[4000, 4000]));
        sim.provider = ProviderSize {
            desired: 2,
            min: 2,
            max: 2,
        };
        sim.pending = pending(2, 1200);
        let d = sim.decide();
        assert_eq!(
            d,
            NodeDecision::Hold {
                reason: NodeReason::AtMax {
                    pending_instances: 2,
                    max: 2,
                    source: BoundSource::StaticFleet
                }
            }
        );
        assert_eq!(
            d.to_string(),
            "holding: 2 instances pending but the static fleet is full at 2 nodes; add machines to the \
             group's nodes list or lower the demand"
        );
        // A policy max equal to the fleet: the fleet is still what stops it.
        sim.policy.max_nodes = 2;
        assert!(matches!(
            sim.decide().reason(),
            Some(NodeReason::AtMax {
                source: BoundSource::StaticFleet,
                ..
            })
        ));
        // Below the fleet, the policy's max is the bound named.
        sim.policy.max_nodes = 1;
        assert!(matches!(
            sim.decide().reason(),
            Some(NodeReason::AtMax {
                max: 1,
                source: BoundSource::Policy,
                ..
            })
        ));
    }

    #[test]
    fn a_committed_scale_out_the_provider_missed_is_finished_while_recent() {
        let policy = NodeGroupPolicy::new("workers", 1, 6);
        let size = |desired, max| ProviderSize { desired, min: 0, max };
        let committed = CommittedScaleOut { to: 3, at_ms: T0 };
        // The leader committed `to 3` and died before asking: the next tick asks for 3.
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 10), committed, None, T0 + SECOND),
            Some(3)
        );
        // A clock behind the one that committed still counts it as recent.
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 10), committed, None, T0 - SECOND),
            Some(3)
        );
        // Reached (or passed): nothing to do, so it is asked for once.
        assert_eq!(
            unfinished_scale_out(&policy, size(3, 10), committed, None, T0 + SECOND),
            None
        );
        assert_eq!(
            unfinished_scale_out(&policy, size(4, 10), committed, None, T0 + SECOND),
            None
        );
        // Only within the scale-out cooldown of the commit.
        let end = T0 + policy.scale_out_cooldown_ms;
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 10), committed, None, end - 1),
            Some(3)
        );
        assert_eq!(unfinished_scale_out(&policy, size(1, 10), committed, None, end), None);
        // A termination committed since lowered the desired size on purpose.
        assert_eq!(
            unfinished_scale_out(&policy, size(2, 10), committed, Some(T0 + 1), T0 + SECOND),
            None
        );
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 10), committed, Some(T0 - MINUTE), T0 + SECOND),
            Some(3)
        );
        // Never above the max as it is now: the policy's or the provider's, whichever is lower.
        let big = CommittedScaleOut { to: 9, at_ms: T0 };
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 10), big, None, T0 + SECOND),
            Some(6)
        );
        assert_eq!(
            unfinished_scale_out(&policy, size(1, 4), big, None, T0 + SECOND),
            Some(4)
        );
        assert_eq!(unfinished_scale_out(&policy, size(4, 4), big, None, T0 + SECOND), None);
    }

    #[test]
    fn memory_above_target_scales_out_to_bring_it_back() {
        // 14,000 of 16,384 MiB (85%): 14,000 / 0.7 = 20,000 MiB wanted, one more node.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3500; 4]));
        assert!(matches!(sim.decide(), NodeDecision::Hold { .. }));
        let before = sim.run(55 * SECOND, 5 * SECOND);
        assert!(before.iter().all(|d| !is_scale_out(d)), "{before:?}");
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d.to_string(),
            "scale out to 5 nodes: 14000 MiB reserved of 16384 MiB ready (85%) has stayed above the 70% target for 1m"
        );
        // 95% of 4 nodes: 15,564 / 0.7 = 22,234 MiB, two more.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3891; 4]));
        assert!(matches!(
            sim.until_action(2 * MINUTE),
            NodeDecision::ScaleOut { to: 6, .. }
        ));
    }

    #[test]
    fn flapping_around_the_target_does_not_scale_out() {
        // Four nodes alternating between 69% and 71% reserved every tick, for an hour.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[2826; 4]));
        for i in 0..720 {
            let reserved = if i % 2 == 0 { 2826 } else { 2908 };
            for n in &mut sim.nodes {
                n.reserved_memory_mib = reserved;
            }
            let d = sim.tick(5 * SECOND);
            assert!(!is_scale_out(&d), "tick {i}: {d}");
            assert!(!matches!(d, NodeDecision::Drain { .. }), "tick {i}: {d}");
        }
        // Staying at 71% for the window does.
        let d = sim.until_action(2 * MINUTE);
        assert!(is_scale_out(&d), "{d}");
    }

    #[test]
    fn quiet_drains_the_emptiest_node_then_terminates_exactly_it() {
        // 2,400 of 16,384 MiB (15%); n1 and n2 tie at 300 MiB: n1 goes first.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 2, 10), nodes(&[1000, 300, 300, 800]));
        assert_eq!(sim.decide(), NodeDecision::Nothing);
        let quiet = sim.run(10 * MINUTE - 5 * SECOND, 5 * SECOND);
        assert!(quiet.iter().all(|d| *d == NodeDecision::Nothing), "{quiet:?}");
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d.to_string(),
            "drain node n1: 2400 MiB reserved of 16384 MiB ready (15%) has stayed under the 30% low mark \
             for 10m; this is the emptiest node (300 MiB reserved)"
        );
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n1"));
        sim.apply(&d);
        // While it drains: one drain at a time, nothing terminated.
        for d in sim.run(MINUTE, 5 * SECOND) {
            assert_eq!(
                d,
                NodeDecision::Hold {
                    reason: NodeReason::DrainInProgress { node: "n1".into() }
                }
            );
        }
        // Its instances moved: exactly n1 is terminated.
        sim.move_all("n1", "n2");
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d,
            NodeDecision::Terminate {
                node: "n1".into(),
                reason: NodeReason::Drained
            }
        );
        assert_eq!(d.to_string(), "terminate node n1: drained for scale-in and empty");
        sim.apply(&d);
        assert_eq!(sim.provider.desired, 3);
        // The next drain waits out the scale-in cooldown, then takes the emptiest again: n2.
        let d = sim.tick(5 * SECOND);
        assert!(matches!(d.reason(), Some(NodeReason::ScaleInCooldown { .. })), "{d}");
        let d = sim.until_action(10 * MINUTE);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n2"), "{d}");
        assert_eq!(sim.now_ms - sim.last_scale_in_ms.unwrap(), DEFAULT_SCALE_IN_COOLDOWN_MS);
        sim.apply(&d);
        sim.move_all("n2", "n3");
        let d = sim.tick(5 * SECOND);
        assert!(
            matches!(&d, NodeDecision::Terminate { node, .. } if node == "n2"),
            "{d}"
        );
        sim.apply(&d);
        // At min_nodes (2): no further scale-in, ever.
        for d in sim.run(HOUR, MINUTE) {
            assert!(matches!(d, NodeDecision::Nothing | NodeDecision::Hold { .. }), "{d}");
            assert!(!matches!(d, NodeDecision::Drain { .. }));
        }
        assert_eq!(sim.provider.desired, 2);
        assert_eq!(
            sim.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["n0", "n3"]
        );
    }

    #[test]
    fn scale_in_keeps_the_rest_under_the_target() {
        // n0 is the emptiest but the largest: without it, 3,100 MiB on 4,096 would be 76%.
        let mut big = node("n0", 100);
        big.memory_mib = 16_384;
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), vec![big, node("n1", 3000)]);
        for d in sim.run(HOUR, MINUTE) {
            assert_eq!(d, NodeDecision::Nothing);
        }
        // With 2,000 on n1 instead, 2,100 on 4,096 (51%) is fine.
        sim.node_mut("n1").reserved_memory_mib = 2000;
        let d = sim.tick(MINUTE);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n0"), "{d}");
        // A tighter target: two nodes at 28% would be 56% on one, above a 50% target.
        let mut policy = NodeGroupPolicy::new("workers", 1, 10);
        policy.target_memory_utilization = 0.5;
        let mut sim = Sim::new(policy, nodes(&[1147, 1147]));
        for d in sim.run(HOUR, MINUTE) {
            assert_eq!(d, NodeDecision::Nothing);
        }
    }

    #[test]
    fn an_operator_drain_is_never_terminated_and_does_not_block_scale_in() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[0, 500, 600]));
        sim.node_mut("n0").state = NodeState::Draining;
        let d = sim.until_action(HOUR);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n1"), "{d}");
    }

    #[test]
    fn demand_returning_during_a_drain_restores_the_node() {
        let mut sim = Sim::quiet_until_n0_drains(&[500, 600, 700]);
        sim.pending = pending(2, 2048);
        let d = sim.tick(5 * SECOND);
        assert_eq!(
            d,
            NodeDecision::Restore {
                node: "n0".into(),
                reason: NodeReason::InstancesPending {
                    instances: 2,
                    memory_mib: 2048,
                    for_ms: 0
                }
            }
        );
        assert_eq!(
            d.to_string(),
            "return node n0 to service: 2 instances (2048 MiB) have waited for room for 0s"
        );
        sim.apply(&d);
        sim.pending = PendingDemand::default();
        // The quiet window starts again from scratch.
        let d = sim.until_action(HOUR);
        assert!(matches!(&d, NodeDecision::Drain { .. }), "{d}");
        assert!(matches!(d.reason(), Some(NodeReason::MemoryBelowLow { for_ms, .. }) if *for_ms == 10 * MINUTE));
    }

    #[test]
    fn a_scheduled_window_raises_the_group_at_its_start_and_releases_it_after() {
        let mut policy = NodeGroupPolicy::new("workers", 2, 10);
        policy.windows.push(Window {
            cron: Cron::parse("0 8 * * 1-5").unwrap(),
            duration_ms: 10 * HOUR,
            min_nodes: 6,
        });
        let mut sim = Sim::new(policy, nodes(&[300, 300]));
        // Monday 07:50, quiet and at min: nothing.
        sim.now_ms = T0 + 7 * HOUR + 50 * MINUTE;
        for d in sim.run(10 * MINUTE - 30 * SECOND, 30 * SECOND) {
            assert_eq!(d, NodeDecision::Nothing);
        }
        // 08:00: up to 6 at once, with no window and no cooldown.
        sim.last_scale_out_ms = Some(sim.now_ms);
        let d = sim.tick(30 * SECOND);
        assert_eq!(sim.now_ms, T0 + 8 * HOUR);
        assert_eq!(
            d.to_string(),
            "scale out to 6 nodes: scheduled window 0 (0 8 * * 1-5) asks for at least 6 nodes until 2024-01-01 18:00 UTC"
        );
        assert!(matches!(d, NodeDecision::ScaleOut { to: 6, .. }));
        sim.apply(&d);
        for id in ["n2", "n3", "n4", "n5"] {
            sim.join(id);
        }
        // All day the group is idle, and keeps its six nodes.
        for d in sim.run(10 * HOUR - 30 * SECOND, 30 * SECOND) {
            assert_eq!(d, NodeDecision::Nothing, "at {}", format_utc_minute(sim.now_ms));
        }
        // 18:00: the floor falls back to 2 and the idle nodes go, one at a time.
        let d = sim.tick(30 * SECOND);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n2"), "{d}");
        sim.apply(&d);
        let mut terminated = 0;
        while terminated < 4 {
            let d = sim.tick(30 * SECOND);
            if matches!(d, NodeDecision::Drain { .. } | NodeDecision::Terminate { .. }) {
                terminated += u32::from(matches!(d, NodeDecision::Terminate { .. }));
                sim.apply(&d);
            }
            assert!(sim.now_ms < T0 + 20 * HOUR, "released by 20:00");
        }
        assert_eq!(sim.provider.desired, 2);
        for d in sim.run(HOUR, MINUTE) {
            assert_eq!(d, NodeDecision::Nothing);
        }
    }

    #[test]
    fn a_window_starting_during_a_drain_restores_the_node() {
        let mut policy = NodeGroupPolicy::new("workers", 1, 10);
        policy.windows.push(Window {
            cron: Cron::parse("0 1 * * *").unwrap(),
            duration_ms: HOUR,
            min_nodes: 3,
        });
        let mut sim = Sim::new(policy, nodes(&[100, 200, 300]));
        let d = sim.until_action(HOUR);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n0"), "{d}");
        sim.apply(&d);
        sim.now_ms = T0 + HOUR - 5 * SECOND;
        assert!(matches!(sim.tick(0), NodeDecision::Hold { .. }));
        let d = sim.tick(5 * SECOND);
        assert!(matches!(&d, NodeDecision::Restore { node, .. } if node == "n0"), "{d}");
        assert!(matches!(
            d.reason(),
            Some(NodeReason::ScheduledWindow { min_nodes: 3, .. })
        ));
        // Even if it had emptied already: restored, not terminated.
        sim.move_all("n0", "n1");
        assert_eq!(sim.decide(), d);
    }

    #[test]
    fn a_min_raised_during_a_drain_restores_the_node() {
        let mut sim = Sim::quiet_until_n0_drains(&[100, 500, 600]);
        sim.policy.min_nodes = 3;
        assert_eq!(
            sim.tick(5 * SECOND).to_string(),
            "return node n0 to service: the group is at its min of 3 nodes"
        );
        let mut sim = Sim::quiet_until_n0_drains(&[100, 500, 600]);
        sim.provider.min = 3;
        assert_eq!(
            sim.tick(5 * SECOND).to_string(),
            "return node n0 to service: the group is at the provider's min of 3 nodes"
        );
    }

    #[test]
    fn below_min_scales_out_at_once_and_from_zero() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 2, 10), Vec::new());
        sim.last_scale_out_ms = Some(sim.now_ms);
        assert_eq!(
            sim.decide(),
            NodeDecision::ScaleOut {
                to: 2,
                reason: NodeReason::BelowMin { min_nodes: 2 }
            }
        );
        assert_eq!(
            sim.decide().to_string(),
            "scale out to 2 nodes: the group is below its min_nodes of 2"
        );
        // min 0 and no node at all: pending asks for one node (no size to go by yet).
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 0, 10), Vec::new());
        sim.pending = pending(3, 3 * 1024);
        let d = sim.until_action(2 * MINUTE);
        assert!(matches!(d, NodeDecision::ScaleOut { to: 1, .. }), "{d}");
    }

    #[test]
    fn a_group_with_min_zero_goes_down_to_no_node() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 0, 10), nodes(&[0]));
        let d = sim.until_action(HOUR);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n0"), "{d}");
        sim.apply(&d);
        let d = sim.tick(5 * SECOND);
        assert!(
            matches!(&d, NodeDecision::Terminate { node, .. } if node == "n0"),
            "{d}"
        );
        sim.apply(&d);
        assert_eq!(sim.provider.desired, 0);
        assert_eq!(sim.tick(HOUR), NodeDecision::Nothing);
    }

    #[test]
    fn above_max_drains_one_node_at_a_time_without_waiting() {
        let mut sim = Sim::new(
            NodeGroupPolicy::new("workers", 1, 3),
            nodes(&[2000, 1000, 1500, 2500, 1200]),
        );
        let d = sim.decide();
        assert_eq!(
            d.to_string(),
            "drain node n1: the group has 5 nodes, above its max of 3"
        );
        sim.apply(&d);
        assert!(matches!(
            sim.tick(5 * SECOND).reason(),
            Some(NodeReason::DrainInProgress { .. })
        ));
        sim.move_all("n1", "n0");
        let d = sim.tick(5 * SECOND);
        assert!(matches!(&d, NodeDecision::Terminate { node, .. } if node == "n1"));
        sim.apply(&d);
        let d = sim.tick(5 * SECOND);
        assert!(matches!(&d, NodeDecision::Drain { node, .. } if node == "n4"), "{d}");
    }

    #[test]
    fn a_down_node_the_autoscaler_drained_is_terminated_once_empty() {
        let mut sim = Sim::quiet_until_n0_drains(&[100, 500, 600]);
        sim.node_mut("n0").state = NodeState::Down;
        // Its placements are not moved yet: it holds nothing back, and no second drain starts.
        let d = sim.tick(5 * SECOND);
        assert!(!matches!(d, NodeDecision::Terminate { .. }), "{d}");
        sim.move_all("n0", "n1");
        let d = sim.tick(5 * SECOND);
        assert!(
            matches!(&d, NodeDecision::Terminate { node, .. } if node == "n0"),
            "{d}"
        );
    }

    #[test]
    fn a_new_leader_respects_committed_cooldowns_and_never_acts_sooner() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3000, 3000]));
        sim.pending = pending(1, 1024);
        let d = sim.until_action(2 * MINUTE);
        sim.apply(&d);
        sim.join("n2");
        // The leader changes 10 s later: the new one starts its windows afresh.
        sim.autoscaler = NodeAutoscaler::new();
        let seen = sim.run(MINUTE - 5 * SECOND, 5 * SECOND);
        assert!(seen.iter().all(|d| !is_scale_out(d)), "{seen:?}");
        // A new leader at a quiet group within the scale-in cooldown of a committed scale-out.
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[100, 100, 100]));
        sim.last_scale_out_ms = Some(T0 + 8 * MINUTE);
        let d = sim.until_action(HOUR);
        assert!(matches!(d, NodeDecision::Drain { .. }));
        assert_eq!(sim.now_ms, T0 + 13 * MINUTE, "the later of the window and the cooldown");
    }

    #[test]
    fn the_same_input_gives_the_same_decision() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3000, 3000]));
        sim.pending = pending(5, 5 * 1024);
        let d = sim.until_action(2 * MINUTE);
        // Asked again before the provider moved (or by a new leader with the same history).
        assert_eq!(sim.decide(), d);
        let mut twin = NodeAutoscaler::new();
        twin.decide(sim.now_ms - MINUTE, &sim.input());
        assert_eq!(twin.decide(sim.now_ms, &sim.input()), d);
        // An absolute size: applying it twice is applying it once.
        sim.apply(&d);
        sim.apply(&d);
        assert_eq!(sim.provider.desired, 4);
        let hold = sim.decide();
        assert_eq!(sim.decide(), hold);
        assert!(matches!(hold.reason(), Some(NodeReason::NodesJoining { .. })));
    }

    #[test]
    fn random_groups_keep_every_bound() {
        let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
        for case in 0..3000 {
            let max_nodes = 1 + rng.below(8) as u32;
            let mut policy = NodeGroupPolicy::new("workers", rng.below(u64::from(max_nodes) + 1) as u32, max_nodes);
            policy.scale_out_window_ms = rng.below(3) * 30 * SECOND;
            policy.scale_in_window_ms = rng.below(3) * 5 * MINUTE;
            if rng.below(3) == 0 {
                policy.windows.push(Window {
                    cron: Cron::parse("0 * * * *").unwrap(),
                    duration_ms: (1 + rng.below(60)) * MINUTE,
                    min_nodes: rng.below(u64::from(max_nodes) + 1) as u32,
                });
            }
            let count = rng.below(10) as usize;
            let group: Vec<GroupNode> = (0..count)
                .map(|i| {
                    let reserved = rng.below(u64::from(NODE_MIB) + 1) as u32;
                    let drained = rng.below(4) == 0;
                    GroupNode {
                        id: format!("n{i}"),
                        memory_mib: [2048, 4096, 8192][rng.below(3) as usize],
                        reserved_memory_mib: reserved,
                        state: [NodeState::Ready, NodeState::Ready, NodeState::Draining, NodeState::Down]
                            [rng.below(4) as usize],
                        empty: reserved == 0 || rng.below(2) == 0,
                        drained_by_autoscaler: drained,
                    }
                })
                .collect();
            let provider = ProviderSize {
                desired: rng.below(12) as u32,
                min: rng.below(3) as u32,
                max: 1 + rng.below(12) as u32,
            };
            let input = GroupInput {
                policy: &policy,
                provider,
                nodes: &group,
                pending: pending(rng.below(4) as u32, rng.below(20_000)),
                last_scale_out_ms: (rng.below(2) == 0).then(|| T0 - rng.below(20) * MINUTE),
                last_scale_in_ms: (rng.below(2) == 0).then(|| T0 - rng.below(20) * MINUTE),
            };
            let mut autoscaler = NodeAutoscaler::new();
            let mut now = T0;
            for _ in 0..rng.below(5) {
                autoscaler.decide(now, &input);
                now += rng.below(10) * MINUTE;
            }
            let d = autoscaler.decide(now, &input);
            assert_eq!(
                autoscaler.decide(now, &input),
                d,
                "case {case}: same input, same decision"
            );
            let max = policy.max_nodes.min(provider.max);
            let floor = policy
                .min_nodes
                .max(active_min(&policy.windows, now).map_or(0, |w| w.min_nodes))
                .min(max);
            let find = |id: &str| group.iter().find(|n| n.id == id).expect("a node of the group");
            match &d {
                NodeDecision::ScaleOut { to, .. } => {
                    assert!(*to <= max, "case {case}: {d} past max {max}");
                    assert!(*to > provider.desired, "case {case}: {d}");
                }
                NodeDecision::Drain { node, .. } => {
                    assert_eq!(find(node).state, NodeState::Ready, "case {case}: {d}");
                    assert!(provider.desired > floor.max(provider.min), "case {case}: {d}");
                    assert!(
                        !group
                            .iter()
                            .any(|n| n.drained_by_autoscaler && n.state == NodeState::Draining),
                        "case {case}: a second drain: {d}"
                    );
                }
                NodeDecision::Terminate { node, .. } => {
                    let n = find(node);
                    assert!(
                        n.drained_by_autoscaler && n.empty && n.state != NodeState::Ready,
                        "case {case}: {d}"
                    );
                    assert!(provider.desired > floor.max(provider.min), "case {case}: {d}");
                }
                NodeDecision::Restore { node, .. } => {
                    let n = find(node);
                    assert!(
                        n.drained_by_autoscaler && n.state == NodeState::Draining,
                        "case {case}: {d}"
                    );
                }
                NodeDecision::Hold { .. } | NodeDecision::Nothing => {}
            }
        }
    }

    #[test]
    fn a_clock_going_backwards_counts_as_the_latest_time() {
        let mut sim = Sim::new(NodeGroupPolicy::new("workers", 1, 10), nodes(&[3000, 3000]));
        sim.pending = pending(1, 1024);
        sim.decide();
        sim.now_ms += MINUTE;
        let d = sim.decide();
        assert!(is_scale_out(&d));
        sim.now_ms -= 10 * MINUTE;
        assert_eq!(sim.decide(), d);
    }

    #[test]
    fn every_reason_reads_as_its_own_sentence() {
        let reasons = [
            NodeReason::BelowMin { min_nodes: 2 },
            NodeReason::AtMin {
                min: 2,
                source: BoundSource::Provider,
            },
            NodeReason::ScheduledWindow {
                index: 0,
                cron: "0 8 * * 1-5".into(),
                min_nodes: 6,
                end_ms: T0,
            },
            NodeReason::InstancesPending {
                instances: 1,
                memory_mib: 512,
                for_ms: MINUTE,
            },
            NodeReason::MemoryAboveTarget {
                reserved_mib: 8,
                capacity_mib: 10,
                target: 0.7,
                for_ms: MINUTE,
            },
            NodeReason::AtMax {
                pending_instances: 1,
                max: 5,
                source: BoundSource::Policy,
            },
            NodeReason::AtMax {
                pending_instances: 1,
                max: 5,
                source: BoundSource::StaticFleet,
            },
            NodeReason::ScaleOutWindow {
                pending_instances: 0,
                for_ms: 0,
                window_ms: MINUTE,
            },
            NodeReason::NodesJoining {
                joining: 1,
                asked_ago_ms: None,
            },
            NodeReason::ScaleOutCooldown { remaining_ms: 1 },
            NodeReason::ScaleInCooldown { remaining_ms: 1 },
            NodeReason::MemoryBelowLow {
                reserved_mib: 0,
                capacity_mib: 0,
                low: 0.3,
                for_ms: 0,
                node_reserved_mib: 0,
            },
            NodeReason::AboveMax {
                desired: 4,
                max: 3,
                source: BoundSource::Provider,
            },
            NodeReason::Drained,
            NodeReason::DrainInProgress { node: "n1".into() },
        ];
        let texts: std::collections::BTreeSet<String> = reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(texts.len(), reasons.len());
        assert!(texts.iter().all(|t| !t.is_empty() && !t.ends_with('.')));
        assert_eq!(NodeDecision::Nothing.to_string(), "steady");
        assert_eq!(NodeDecision::Nothing.reason(), None);
    }
}
