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
use crate::reports::GroupReport;
use crate::state::{GroupRecord, RegisteredNode};
use crate::state_machine::now_millis;
use fjord_decisions::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError};
use fjord_decisions::node_autoscale::{
    unfinished_scale_out, CommittedScaleOut, GroupInput, GroupNode, NodeAutoscaler, NodeDecision, NodeGroupPolicy,
    NodeReason, PendingDemand, ProviderKind, ProviderSize,
};
use fjord_decisions::placement;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The loop's settings.
#[derive(Debug, Clone)]
pub(crate) struct NodeScalerConfig {
    pub(crate) interval: Duration,
    pub(crate) aws_endpoint_url: Option<String>,
    /// For failover tests: exit right after committing this kind of decision, before acting.
    pub(crate) crash_after_commit: Option<CrashPoint>,
}

/// A point where a failover test may have the leader exit on purpose
/// (`--test-crash-after-commit`, or `FJORD_TEST_CRASH_AFTER_COMMIT`, read once at start). Unset,
/// it does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CrashPoint {
    /// After a node group's scale-out is committed, before the provider is asked.
    NodeScaleOut,
}

/// The exit status of a leader that exited at a [`CrashPoint`].
pub(crate) const CRASH_EXIT_STATUS: i32 = 86;

/// What the loop keeps per group between ticks.
#[derive(Default)]
struct GroupLoop {
    autoscaler: NodeAutoscaler,
    /// The demand last warned about as beyond the group's max: (pending MiB, max nodes).
    unplaceable: Option<(u64, u32)>,
}

/// Runs while this member leads in `term`.
pub(crate) async fn run(member: Arc<Member>, term: u64, config: NodeScalerConfig) {
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
            let tick = GroupTick {
                member: &member,
                term,
                config: &config,
                group,
                provider: provider.as_ref(),
                snapshot: &snapshot,
                pending,
            };
            if tick.run(state).await.is_err() {
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

/// What one tick of one group works with.
struct GroupTick<'a> {
    member: &'a Member,
    term: u64,
    config: &'a NodeScalerConfig,
    group: &'a NodeGroupPolicy,
    provider: &'a dyn CapacityProvider,
    snapshot: &'a GroupSnapshot,
    /// The instances pending for room that count for this group.
    pending: PendingDemand,
}

/// The committed state a tick reads once.
struct CommittedView {
    nodes: Vec<RegisteredNode>,
    record: GroupRecord,
    placements: placement::Placements,
    /// Memory per instance of each function, by name.
    memory_of: HashMap<String, u32>,
}

/// A newer leader refused the decision: this loop must stop.
struct Fenced;

impl GroupTick<'_> {
    /// One group, one tick: finish what earlier decisions left undone, decide, report, and
    /// commit then act on the decision. `Err(Fenced)` when a newer leader exists.
    async fn run(&self, state: &mut GroupLoop) -> Result<(), Fenced> {
        let committed = self.read_committed();
        self.finish_terminations(&committed).await;
        let now = now_millis();
        let (size, unfinished) = self.finish_scale_out(&committed.record, now).await;
        let nodes = self.group_nodes(&committed);
        let input = GroupInput {
            policy: self.group,
            provider: size,
            nodes: &nodes,
            pending: self.pending,
            last_scale_out_ms: committed.record.last_scale_out_ms,
            last_scale_in_ms: committed.record.last_scale_in_ms,
        };
        let decision = state.autoscaler.decide(now, &input);
        let effective_max = self.group.max_nodes.min(size.max);
        let unplaceable_memory_mib = match decision.reason() {
            Some(NodeReason::AtMax { .. }) => self.pending.memory_mib,
            _ => 0,
        };
        warn_on_unplaceable_change(
            self.group,
            &decision,
            self.pending,
            effective_max,
            unplaceable_memory_mib,
            state,
        );
        let mut report = GroupReport {
            provider: self.provider.kind().to_string(),
            desired: size.desired,
            min: size.min,
            max: size.max,
            effective_max,
            unplaceable_memory_mib,
            instances: self.snapshot.instances.len() as u32,
            nodes: nodes.iter().map(|n| n.id.clone()).collect(),
            status: match &unfinished {
                Some(failed) => format!("{decision}; {failed}"),
                None => decision.to_string(),
            },
            updated_at_ms: now,
        };
        if let Some(status) = self.commit_and_act(&decision, &committed.nodes, now).await? {
            report.status = status;
        }
        self.member.node_groups.set(&self.group.name, report);
        Ok(())
    }

    fn read_committed(&self) -> CommittedView {
        self.member.state.read(|a| {
            let c = &a.cluster;
            CommittedView {
                nodes: c.nodes.values().cloned().collect(),
                record: c.node_groups.get(&self.group.name).cloned().unwrap_or_default(),
                placements: c.placements.clone(),
                memory_of: c
                    .functions
                    .iter()
                    .map(|(name, r)| (name.clone(), r.spec.memory_mib))
                    .collect(),
            }
        })
    }

    /// The provider's state of each machine it lists, by machine id.
    fn listed(&self) -> HashMap<&str, &InstanceState> {
        self.snapshot
            .instances
            .iter()
            .map(|i| (i.instance_id.as_str(), &i.state))
            .collect()
    }

    /// A committed termination whose machine is still there: terminate it again.
    async fn finish_terminations(&self, committed: &CommittedView) {
        let listed = self.listed();
        for node in committed
            .nodes
            .iter()
            .filter(|n| committed.record.terminated.contains(&n.info.id))
        {
            let id = machine_id(node);
            if matches!(listed.get(id), Some(InstanceState::InService | InstanceState::Pending)) {
                tracing::info!(group = %self.group.name, node = %node.info.id, "finishing a committed termination");
                if let Err(e) = self.provider.terminate(id).await {
                    report_error(
                        self.member,
                        self.group,
                        &format!("terminating {id} (committed earlier): {e}"),
                    );
                }
            }
        }
    }

    /// A committed scale-out the provider did not get (the leader that committed it died before
    /// asking, or the call failed): ask again, for the same absolute size. The provider's sizes
    /// after that, and why finishing failed, if it did.
    async fn finish_scale_out(&self, record: &GroupRecord, now: u64) -> (ProviderSize, Option<String>) {
        let mut size = ProviderSize {
            desired: self.snapshot.desired,
            min: self.snapshot.min,
            max: self.snapshot.max,
        };
        let (Some(to), Some(at_ms)) = (record.scale_out_to, record.last_scale_out_ms) else {
            return (size, None);
        };
        let committed = CommittedScaleOut { to, at_ms };
        let Some(to) = unfinished_scale_out(self.group, size, committed, record.last_scale_in_ms, now) else {
            return (size, None);
        };
        tracing::info!(
            group = %self.group.name,
            "finishing a committed scale-out: the provider is at {} nodes, asking for {to}",
            size.desired
        );
        match self.provider.set_desired(to).await {
            Ok(()) => {
                size.desired = to;
                (size, None)
            }
            Err(e) => (
                size,
                Some(format!("finishing the committed scale-out to {to} nodes failed: {e}")),
            ),
        }
    }

    /// The group's registered nodes, leaving out those whose termination is committed.
    fn group_nodes(&self, committed: &CommittedView) -> Vec<GroupNode> {
        let listed = self.listed();
        let in_group = |node: &RegisteredNode| match self.group.provider {
            ProviderKind::Static => self.group.nodes.contains(&node.info.id),
            _ => listed.contains_key(machine_id(node)),
        };
        committed
            .nodes
            .iter()
            .filter(|n| in_group(n) && !committed.record.terminated.contains(&n.info.id))
            .map(|n| group_node(self.member, n, committed))
            .collect()
    }

    /// Commits the decision (fenced by term) and only then asks the provider for it. A status
    /// replacing the decision's own when it could not be committed or carried out.
    async fn commit_and_act(
        &self,
        decision: &NodeDecision,
        nodes: &[RegisteredNode],
        now: u64,
    ) -> Result<Option<String>, Fenced> {
        let action = match decision {
            NodeDecision::ScaleOut { to, .. } => GroupAction::ScaleOut { to: *to },
            NodeDecision::Drain { node, .. } => GroupAction::Drain { node: node.clone() },
            NodeDecision::Terminate { node, .. } => GroupAction::Terminate { node: node.clone() },
            NodeDecision::Restore { node, .. } => GroupAction::Restore { node: node.clone() },
            NodeDecision::Hold { .. } | NodeDecision::Nothing => return Ok(None),
        };
        let group = &self.group.name;
        let reason = decision.reason().map(|r| r.to_string()).unwrap_or_default();
        tracing::info!(%group, action = %action, %reason, "node autoscaler decision");
        let command = Command::NodeGroupAction {
            group: group.clone(),
            action: action.clone(),
            reason,
            at_ms: now,
            term: self.term,
        };
        match self.member.write(command).await {
            Ok(CommandResult::Fenced { .. }) => Err(Fenced),
            Ok(CommandResult::NotFound { name }) if &name == group => {
                Ok(Some(format!("{decision}: the group is no longer in the policy")))
            }
            Ok(CommandResult::NotFound { name }) => {
                Ok(Some(format!("{decision}: node {name} is no longer registered")))
            }
            Ok(_)
                if self.config.crash_after_commit == Some(CrashPoint::NodeScaleOut)
                    && matches!(action, GroupAction::ScaleOut { .. }) =>
            {
                tracing::warn!(
                    %group,
                    action = %action,
                    "exiting after committing a scale-out, before asking the provider (--test-crash-after-commit node-scale-out)"
                );
                std::process::exit(CRASH_EXIT_STATUS);
            }
            Ok(_) => Ok(self.act(&action, nodes).await.err().map(|e| {
                tracing::warn!(%group, error = %e, "acting on a node decision");
                format!("{decision}: committed, but the provider refused: {e}")
            })),
            Err(e) => Ok(Some(format!("{decision}: could not commit it: {e}"))),
        }
    }

    /// Carries out a committed action. The provider retries what is worth retrying.
    async fn act(&self, action: &GroupAction, nodes: &[RegisteredNode]) -> Result<(), ProviderError> {
        match action {
            GroupAction::ScaleOut { to } => self.provider.set_desired(*to).await,
            GroupAction::Terminate { node } => {
                let id = nodes
                    .iter()
                    .find(|n| &n.info.id == node)
                    .map_or(node.as_str(), machine_id);
                self.provider.terminate(id).await
            }
            GroupAction::Drain { .. } | GroupAction::Restore { .. } => Ok(()),
        }
    }
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

fn group_node(member: &Member, node: &RegisteredNode, committed: &CommittedView) -> GroupNode {
    let CommittedView {
        record,
        placements,
        memory_of,
        ..
    } = committed;
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
