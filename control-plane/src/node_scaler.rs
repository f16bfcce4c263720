//! The leader's node autoscaler loop: for each node group of the policy, every interval, ask the
//! group's capacity provider how big it is, decide with [`NodeAutoscaler`], commit the decision
//! ([`Command::NodeGroupAction`], fenced by term) and only then act on the provider.
//!
//! - **Idempotent across leaders.** Sizes are absolute and computed from the provider's reported
//!   desired size; cooldowns come from committed times. A new leader that finds a committed
//!   termination whose machine is still in the group terminates it again (the same machine).
//! - **Errors never stop the loop.** A provider error is reported on the group (shown by
//!   `fjord nodes`) and the group is tried again at the next interval; retryable errors are
//!   retried with backoff inside the provider.
//! - **A committed scale-out is finished.** The size a scale-out asked for is committed with it;
//!   while it is recent, a tick that finds the provider's desired size below it sets it again
//!   ([`unfinished_scale_out`]), so a leader that died between committing and asking does not
//!   leave the group short until a new window and cooldown have passed.
//! - **Demand beyond the max is reported.** A group holding at its max (a static fleet's size,
//!   `max_nodes`, the provider's max) with instances pending for room logs a warning naming the
//!   group, the memory pending and the max, once per change, and shows the memory in
//!   [`GroupReport::unplaceable_memory_mib`] (the `fjord_node_group_unplaceable_memory_mib`
//!   metric).
//! - **Pending demand goes to one group.** Instances pending for lack of room count for the first
//!   group in policy order that can still grow (else the first group, which then holds at its
//!   max and does not scale in), so two groups do not both scale out for them.

use crate::member::Member;
use crate::raft_types::{Command, CommandResult, GroupAction, NodeState};
use crate::state::{GroupRecord, RegisteredNode};
use crate::state_machine::now_millis;
use fjord_decisions::capacity::{CapacityProvider, GroupSnapshot, InstanceState};
use fjord_decisions::node_autoscale::{
    unfinished_scale_out, CommittedScaleOut, GroupInput, GroupNode, NodeAutoscaler, NodeDecision, NodeGroupPolicy,
    NodeReason, PendingDemand, ProviderKind, ProviderSize,
};
use fjord_decisions::placement;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the node autoscaler last saw and concluded for one group (soft state on the leader).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupReport {
    pub provider: String,
    pub desired: u32,
    pub min: u32,
    /// The provider's max.
    pub max: u32,
    /// The most nodes the group may have now: the lower of the policy's `max_nodes` and the
    /// provider's max.
    pub effective_max: u32,
    /// Memory of the instances pending for room that this group cannot make room for, because
    /// it holds at its max (0 when it can grow, or when nothing is pending).
    pub unplaceable_memory_mib: u64,
    /// Machines the provider lists.
    pub instances: u32,
    /// Registered nodes of the group (terminated ones left out).
    pub nodes: Vec<String>,
    /// The latest decision or hold, or the provider's error, in words.
    pub status: String,
    pub updated_at_ms: u64,
}

#[derive(Default)]
pub struct NodeGroupsReport {
    groups: Mutex<BTreeMap<String, GroupReport>>,
}

impl NodeGroupsReport {
    pub fn all(&self) -> BTreeMap<String, GroupReport> {
        self.groups.lock().expect("group report lock poisoned").clone()
    }

    fn set(&self, name: &str, report: GroupReport) {
        self.groups
            .lock()
            .expect("group report lock poisoned")
            .insert(name.to_string(), report);
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.groups
            .lock()
            .expect("group report lock poisoned")
            .retain(|name, _| keep(name));
    }
}

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct NodeScalerConfig {
    pub interval: Duration,
    pub aws_endpoint_url: Option<String>,
    /// For failover tests: exit right after committing this kind of decision, before acting.
    pub crash_after_commit: Option<CrashPoint>,
}

/// A point where a failover test may have the leader exit on purpose
/// (`--test-crash-after-commit`, or `FJORD_TEST_CRASH_AFTER_COMMIT`, read once at start). Unset,
/// it does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashPoint {
    /// After a node group's scale-out is committed, before the provider is asked.
    NodeScaleOut,
}

/// The exit status of a leader that exited at a [`CrashPoint`].
pub const CRASH_EXIT_STATUS: i32 = 86;

/// What the loop keeps per group between ticks.
#[derive(Default)]
struct GroupLoop {
    autoscaler: NodeAutoscaler,
    /// The demand last warned about as beyond the group's max: (pending MiB, max nodes).
    unplaceable: Option<(u64, u32)>,
}

/// Runs while this member leads in `term`.
pub async fn run(member: Arc<Member>, term: u64, config: NodeScalerConfig) {
    let mut loops: HashMap<String, GroupLoop> = HashMap::new();
    let mut providers: HashMap<String, (NodeGroupPolicy, Arc<dyn CapacityProvider>)> = HashMap::new();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Let the scheduler see every agent first (its pending counts feed the decisions).
    tokio::time::sleep(member.heartbeat_interval * 3).await;
    while member.is_leader() && member.term() == term {
        ticker.tick().await;
        let groups = member.state.read(|a| a.cluster.policy.node_groups.clone());
        loops.retain(|name, _| groups.iter().any(|g| &g.name == name));
        providers.retain(|name, (policy, _)| groups.iter().any(|g| &g.name == name && g == policy));
        member.node_groups.retain(|name| groups.iter().any(|g| g.name == name));

        let mut snapshots = Vec::new();
        for group in &groups {
            let provider = match providers.get(&group.name) {
                Some((_, provider)) => provider.clone(),
                None => match crate::providers::build(group, config.aws_endpoint_url.as_deref()).await {
                    Ok(provider) => {
                        providers.insert(group.name.clone(), (group.clone(), provider.clone()));
                        provider
                    }
                    Err(e) => {
                        report_error(&member, group, &format!("cannot set up the provider: {e}"));
                        continue;
                    }
                },
            };
            match provider.describe().await {
                Ok(snapshot) => snapshots.push((group, provider, snapshot)),
                Err(e) => report_error(&member, group, &format!("provider error: {e}")),
            }
        }

        let (pending_instances, pending_mib) = member.scheduling.pending_for_room();
        // The pending demand goes to the first group that can grow, else to the first group (at
        // its max it holds, saying so, and it never scales in while instances wait for room).
        let can_grow = |(group, _, snapshot): &&(&NodeGroupPolicy, _, GroupSnapshot)| {
            snapshot.desired < group.max_nodes.min(snapshot.max.max(1))
        };
        let owner = snapshots
            .iter()
            .find(can_grow)
            .or(snapshots.first())
            .map(|(group, _, _)| group.name.clone());
        for (group, provider, snapshot) in snapshots {
            let pending = if Some(&group.name) == owner.as_ref() {
                PendingDemand {
                    instances: pending_instances,
                    memory_mib: pending_mib,
                }
            } else {
                PendingDemand::default()
            };
            let state = loops.entry(group.name.clone()).or_default();
            if !tick_group(
                &member,
                term,
                &config,
                group,
                provider.as_ref(),
                &snapshot,
                pending,
                state,
            )
            .await
            {
                tracing::info!(term, "a newer leader exists: stopping the node autoscaler");
                return;
            }
        }
    }
}

fn report_error(member: &Member, group: &NodeGroupPolicy, status: &str) {
    tracing::warn!(group = %group.name, %status, "node group");
    let mut report = member.node_groups.all().remove(&group.name).unwrap_or_default();
    report.provider = group.provider.as_str().to_string();
    report.status = status.to_string();
    report.updated_at_ms = now_millis();
    member.node_groups.set(&group.name, report);
}

/// The provider's id of a node's machine.
fn machine_id(node: &RegisteredNode) -> &str {
    if node.info.instance_id.is_empty() {
        &node.info.id
    } else {
        &node.info.instance_id
    }
}

/// One group, one tick. Returns false when fenced.
#[allow(clippy::too_many_arguments)]
async fn tick_group(
    member: &Member,
    term: u64,
    config: &NodeScalerConfig,
    group: &NodeGroupPolicy,
    provider: &dyn CapacityProvider,
    snapshot: &GroupSnapshot,
    pending: PendingDemand,
    state: &mut GroupLoop,
) -> bool {
    let (nodes, record, placements, memory_of) = member.state.read(|a| {
        let c = &a.cluster;
        (
            c.nodes.values().cloned().collect::<Vec<_>>(),
            c.node_groups.get(&group.name).cloned().unwrap_or_default(),
            c.placements.clone(),
            c.functions
                .iter()
                .map(|(name, r)| (name.clone(), r.spec.memory_mib))
                .collect::<HashMap<_, _>>(),
        )
    });
    let listed: HashMap<&str, &InstanceState> = snapshot
        .instances
        .iter()
        .map(|i| (i.instance_id.as_str(), &i.state))
        .collect();
    let in_group = |node: &RegisteredNode| match group.provider {
        ProviderKind::Static => group.nodes.contains(&node.info.id),
        _ => listed.contains_key(machine_id(node)),
    };

    // A committed termination whose machine is still there: terminate it again.
    for node in nodes.iter().filter(|n| record.terminated.contains(&n.info.id)) {
        let id = machine_id(node);
        if matches!(listed.get(id), Some(InstanceState::InService | InstanceState::Pending)) {
            tracing::info!(group = %group.name, node = %node.info.id, "finishing a committed termination");
            if let Err(e) = provider.terminate(id).await {
                report_error(member, group, &format!("terminating {id} (committed earlier): {e}"));
            }
        }
    }

    let now = now_millis();
    let mut size = ProviderSize {
        desired: snapshot.desired,
        min: snapshot.min,
        max: snapshot.max,
    };
    // A committed scale-out the provider did not get (the leader that committed it died before
    // asking, or the call failed): ask again, for the same absolute size.
    let mut unfinished = None;
    if let (Some(to), Some(at_ms)) = (record.scale_out_to, record.last_scale_out_ms) {
        let committed = CommittedScaleOut { to, at_ms };
        if let Some(to) = unfinished_scale_out(group, size, committed, record.last_scale_in_ms, now) {
            tracing::info!(
                group = %group.name,
                "finishing a committed scale-out: the provider is at {} nodes, asking for {to}",
                size.desired
            );
            match provider.set_desired(to).await {
                Ok(()) => size.desired = to,
                Err(e) => unfinished = Some(format!("finishing the committed scale-out to {to} nodes failed: {e}")),
            }
        }
    }

    let group_nodes: Vec<GroupNode> = nodes
        .iter()
        .filter(|n| in_group(n) && !record.terminated.contains(&n.info.id))
        .map(|n| group_node(member, n, &record, &placements, &memory_of))
        .collect();
    let input = GroupInput {
        policy: group,
        provider: size,
        nodes: &group_nodes,
        pending,
        last_scale_out_ms: record.last_scale_out_ms,
        last_scale_in_ms: record.last_scale_in_ms,
    };
    let decision = state.autoscaler.decide(now, &input);
    let effective_max = group.max_nodes.min(size.max);
    let unplaceable_memory_mib = match decision.reason() {
        Some(NodeReason::AtMax { .. }) => pending.memory_mib,
        _ => 0,
    };
    warn_on_unplaceable_change(group, &decision, pending, effective_max, unplaceable_memory_mib, state);
    let mut report = GroupReport {
        provider: provider.kind().to_string(),
        desired: size.desired,
        min: size.min,
        max: size.max,
        effective_max,
        unplaceable_memory_mib,
        instances: snapshot.instances.len() as u32,
        nodes: group_nodes.iter().map(|n| n.id.clone()).collect(),
        status: match &unfinished {
            Some(failed) => format!("{decision}; {failed}"),
            None => decision.to_string(),
        },
        updated_at_ms: now,
    };
    let action = match &decision {
        NodeDecision::ScaleOut { to, .. } => GroupAction::ScaleOut { to: *to },
        NodeDecision::Drain { node, .. } => GroupAction::Drain { node: node.clone() },
        NodeDecision::Terminate { node, .. } => GroupAction::Terminate { node: node.clone() },
        NodeDecision::Restore { node, .. } => GroupAction::Restore { node: node.clone() },
        NodeDecision::Hold { .. } | NodeDecision::Nothing => {
            member.node_groups.set(&group.name, report);
            return true;
        }
    };
    let reason = decision.reason().map(|r| r.to_string()).unwrap_or_default();
    tracing::info!(group = %group.name, action = %action, %reason, "node autoscaler decision");
    let command = Command::NodeGroupAction {
        group: group.name.clone(),
        action: action.clone(),
        reason,
        at_ms: now,
        term,
    };
    match member.write(command).await {
        Ok(CommandResult::Fenced { .. }) => return false,
        Ok(CommandResult::NotFound { name }) if name == group.name => {
            report.status = format!("{decision}: the group is no longer in the policy");
        }
        Ok(CommandResult::NotFound { name }) => {
            report.status = format!("{decision}: node {name} is no longer registered");
        }
        Ok(_)
            if config.crash_after_commit == Some(CrashPoint::NodeScaleOut)
                && matches!(action, GroupAction::ScaleOut { .. }) =>
        {
            tracing::warn!(
                group = %group.name,
                action = %action,
                "exiting after committing a scale-out, before asking the provider (--test-crash-after-commit node-scale-out)"
            );
            std::process::exit(CRASH_EXIT_STATUS);
        }
        Ok(_) => {
            // Committed: now act. The provider retries what is worth retrying.
            let acted = match &action {
                GroupAction::ScaleOut { to } => provider.set_desired(*to).await,
                GroupAction::Terminate { node } => {
                    let id = nodes
                        .iter()
                        .find(|n| &n.info.id == node)
                        .map_or(node.as_str(), machine_id);
                    provider.terminate(id).await
                }
                GroupAction::Drain { .. } | GroupAction::Restore { .. } => Ok(()),
            };
            if let Err(e) = acted {
                report.status = format!("{decision}: committed, but the provider refused: {e}");
                tracing::warn!(group = %group.name, error = %e, "acting on a node decision");
            }
        }
        Err(e) => report.status = format!("{decision}: could not commit it: {e}"),
    }
    member.node_groups.set(&group.name, report);
    true
}

/// Logs, once per change, that instances wait for room this group cannot make: a warning naming
/// the group, the memory pending and the group's max (a static fleet's size, `max_nodes` or the
/// provider's max), and a line when that is over.
fn warn_on_unplaceable_change(
    group: &NodeGroupPolicy,
    decision: &NodeDecision,
    pending: PendingDemand,
    effective_max: u32,
    unplaceable_memory_mib: u64,
    state: &mut GroupLoop,
) {
    let now = (unplaceable_memory_mib > 0).then_some((unplaceable_memory_mib, effective_max));
    if now == state.unplaceable {
        return;
    }
    match (now, decision.reason()) {
        (Some(_), Some(reason)) => tracing::warn!(
            group = %group.name,
            provider = group.provider.as_str(),
            pending_instances = pending.instances,
            pending_memory_mib = unplaceable_memory_mib,
            effective_max,
            "node group {} cannot make room for {unplaceable_memory_mib} MiB of pending instances: {reason}",
            group.name
        ),
        _ => tracing::info!(
            group = %group.name,
            "node group {}: no pending instance waits beyond its max any more",
            group.name
        ),
    }
    state.unplaceable = now;
}

fn group_node(
    member: &Member,
    node: &RegisteredNode,
    record: &GroupRecord,
    placements: &placement::Placements,
    memory_of: &HashMap<String, u32>,
) -> GroupNode {
    let id = &node.info.id;
    let reserved: u64 = placements
        .iter()
        .filter_map(|(function, by_node)| {
            let count = by_node.get(id)?;
            Some(u64::from(*count) * u64::from(memory_of.get(function).copied().unwrap_or(0)))
        })
        .sum();
    let placed = placements.values().any(|by_node| by_node.contains_key(id));
    let running = member
        .liveness
        .last_report(id)
        .is_some_and(|(load, _)| load.in_flight > 0 || load.functions.values().any(|f| f.ready + f.starting > 0));
    let alive = member.liveness.is_alive(id);
    let state = match node.state {
        _ if !alive => placement::NodeState::Down,
        NodeState::Down => placement::NodeState::Down,
        NodeState::Draining | NodeState::Drained => placement::NodeState::Draining,
        NodeState::Ready => placement::NodeState::Ready,
    };
    GroupNode {
        id: id.clone(),
        memory_mib: node.info.memory_mib,
        reserved_memory_mib: u32::try_from(reserved).unwrap_or(u32::MAX),
        state,
        empty: !placed && (!running || !alive),
        drained_by_autoscaler: record.draining.as_deref() == Some(id.as_str()),
    }
}
