//! What the node autoscaler decides ([`NodeDecision`]) and why ([`NodeReason`]), each reason
//! reading as its own sentence in `fjord nodes` and `fjord describe`.

use crate::schedule::format_utc_minute;
use fjord_core::duration::format_duration;
use std::fmt;
use std::time::Duration;

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
