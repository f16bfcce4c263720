//! The leader's scheduler and function autoscaler, run at every leadership tick.
//!
//! 1. **Autoscale.** Each function's concurrency (requests in flight plus waiting, summed over
//!    the live nodes' last heartbeats) feeds its [`FunctionAutoscaler`], which decides the
//!    desired instance count (stable and panic windows, rates, min/max, scale to zero).
//!    Observations come from heartbeats only, never from the log.
//! 2. **Place.** [`placement::plan`] turns desired counts into placements over the nodes
//!    (capacity, hashing order, spread over nodes and zones), starting from the committed ones.
//! 3. **Commit.** When the plan differs from the committed placements it is written whole as one
//!    fenced [`Command::SetPlacements`]: a deposed leader's plan is refused everywhere, and a new
//!    leader starts from what was committed, so failover neither loses nor duplicates a
//!    placement.
//! 4. **Drain.** An instance leaving a draining node stays placed there until the node it moves
//!    to reports it ready (new before old: [`keep_until_replaced`]). A draining node with nothing
//!    placed and nothing running or in flight is committed drained ([`drain_complete`]); one
//!    silent past the heartbeat timeout runs nothing the cluster can reach, whatever its last
//!    report said, so it is drained once its placements have moved.
//!
//! Asynchronous calls waiting in the queue count as concurrency too, up to `async.concurrency`
//! (the leader's last read of the queue, [`crate::queue_watch`]).
//!
//! Activity for scale to zero and keep-alive comes from each node's call counter, counted per
//! node ([`CallCounts`]), so a node going down or an agent restarting is not taken for calls.
//!
//! What the scheduler decided and could not do (desired counts, pending instances and why,
//! recent scaling decisions) is kept in [`SchedulingReport`](crate::reports::SchedulingReport) for `fjord describe`: soft state,
//! rebuilt by the next leader within a tick.

use crate::member::Member;
use crate::raft_types::{Command, CommandResult, NodeState};
use crate::reports::{PendingReport, ScalingDecision, DECISIONS_KEPT};
use crate::state::ClusterState;
use crate::state_machine::now_millis;
use fjord_core::{FunctionRecord, NodeLoad};
use fjord_decisions::autoscale::{AutoscalerConfig, FunctionAutoscaler, ScaleReason};
use fjord_decisions::placement::{self, FunctionDemand, PlacementNode, PlacementPlan, Placements};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The leader's per-term scheduling state: one autoscaler per function. Dropped when the
/// leadership ends; the next leader starts from the committed placements.
pub(crate) struct Scheduler {
    started: Instant,
    /// No decision before every live agent has had time to heartbeat to this leader.
    warm_up: Duration,
    /// Per function: the settings its autoscaler was made with, and the autoscaler.
    autoscalers: HashMap<String, (AutoscalerConfig, FunctionAutoscaler)>,
    calls: CallCounts,
}

/// What one tick read from the replicated and soft state.
struct Inputs {
    functions: Vec<FunctionRecord>,
    nodes: Vec<PlacementNode>,
    committed_states: BTreeMap<String, NodeState>,
    current: Placements,
    autoscaler: AutoscalerConfig,
    load_bound_c: f64,
    loads: BTreeMap<String, NodeLoad>,
}

impl Scheduler {
    pub(crate) fn new(heartbeat_interval: Duration) -> Self {
        Scheduler {
            started: Instant::now(),
            warm_up: heartbeat_interval * 2,
            autoscalers: HashMap::new(),
            calls: CallCounts::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One round: autoscale, plan, commit, finish drains. Returns false when the leader was
    /// fenced (a newer term exists) and should stop leading.
    pub(crate) async fn tick(&mut self, member: &Member, term: u64) -> bool {
        if self.started.elapsed() < self.warm_up {
            return true;
        }
        let inputs = read_inputs(member);
        let now = self.now_ms();
        let mut demands_desired = BTreeMap::new();
        for record in &inputs.functions {
            let desired = self.autoscale(member, record, &inputs, now);
            demands_desired.insert(record.spec.name.clone(), desired);
        }
        self.autoscalers
            .retain(|name, _| demands_desired.contains_key(name.as_str()));
        self.calls.retain(|name| demands_desired.contains_key(name));
        member.scheduling.retain(|name| demands_desired.contains_key(name));

        let demands: Vec<FunctionDemand<'_>> = inputs
            .functions
            .iter()
            .map(|record| FunctionDemand {
                spec: &record.spec,
                desired: demands_desired[&record.spec.name],
            })
            .collect();
        let plan = placement::plan(&inputs.nodes, &inputs.current, &demands, inputs.load_bound_c);
        let placements = keep_until_replaced(&plan, &inputs.committed_states, |node, function| {
            ready_of(&inputs.loads, node, function, &inputs.functions)
        });
        for record in &inputs.functions {
            let name = &record.spec.name;
            let memory = u64::from(record.spec.memory_mib);
            let mut pending: Vec<PendingReport> = plan
                .pending
                .iter()
                .filter(|p| &p.function == name)
                .map(|p| PendingReport {
                    instances: p.instances,
                    reason: p.reason.to_string(),
                    memory_mib: u64::from(p.instances) * memory,
                    for_room: !matches!(p.reason, placement::PendingReason::LargerThanAnyNode { .. }),
                    held: false,
                })
                .collect();
            pending.extend(plan.held.iter().filter(|h| &h.function == name).map(|h| PendingReport {
                instances: h.instances,
                reason: format!("held on draining node {}: {}", h.node, h.reason),
                memory_mib: u64::from(h.instances) * memory,
                for_room: false,
                held: true,
            }));
            member.scheduling.update(name, |r| r.pending = pending);
        }
        if placements != inputs.current {
            match member.write(Command::SetPlacements { placements, term }).await {
                Ok(CommandResult::Fenced { .. }) => return false,
                Ok(_) => tracing::debug!(term, "placements committed"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not commit placements");
                    return true;
                }
            }
        }
        self.finish_drains(member, term, &inputs).await
    }

    /// Feeds the function's autoscaler and returns its desired instance count.
    fn autoscale(&mut self, member: &Member, record: &FunctionRecord, inputs: &Inputs, now: u64) -> u32 {
        let name = &record.spec.name;
        let entry = self
            .autoscalers
            .entry(name.clone())
            .or_insert_with(|| (inputs.autoscaler, FunctionAutoscaler::new(inputs.autoscaler)));
        if entry.0 != inputs.autoscaler {
            // The policy changed: start over with the new windows and rates.
            *entry = (inputs.autoscaler, FunctionAutoscaler::new(inputs.autoscaler));
        }
        let autoscaler = &mut entry.1;
        let (mut concurrency, mut ready) = (0u32, 0u32);
        let mut counters = Vec::new();
        for (node, load) in &inputs.loads {
            if inputs
                .nodes
                .iter()
                .any(|n| &n.info.id == node && n.state == placement::NodeState::Down)
            {
                continue;
            }
            if let Some(f) = load.functions.get(name) {
                concurrency += f.in_flight + f.waiting;
                counters.push((node.as_str(), f.calls));
                if f.revision == record.revision {
                    ready += f.ready + f.starting;
                }
            }
        }
        // Calls waiting in the queue are demand too, up to what the workers may deliver at once
        // (async.concurrency): a function at zero with a backlog scales up, and stays up until
        // the backlog is gone.
        if let Some(depth) = member.queue_depths.get(name) {
            let deliverable = (depth.queued + depth.in_flight).min(u64::from(record.spec.async_policy.concurrency));
            concurrency = concurrency.max(deliverable as u32);
        }
        let calls = self.calls.observe(name, counters);
        autoscaler.observe_calls(now, concurrency, calls);
        let decision = autoscaler.decide(now, &record.spec, ready);
        tracing::debug!(
            function = %name,
            concurrency,
            calls,
            ready,
            desired = decision.desired,
            reason = ?decision.reason,
            idle_times = autoscaler.idle_times().samples(),
            idle_state = ?autoscaler.idle_times().state(),
            "autoscaled"
        );
        let placed: u32 = inputs.current.get(name).map_or(0, |n| n.values().sum());
        // Without samples (a new leader), keep what the last leader placed.
        let desired = if decision.reason == ScaleReason::NoData {
            decision.desired.max(placed.min(record.spec.max))
        } else {
            decision.desired
        };
        member.scheduling.update(name, |report| {
            if report.desired != desired || report.decisions.is_empty() {
                report.decisions.push_back(ScalingDecision {
                    at_ms: now_millis(),
                    from: report.desired,
                    to: desired,
                    reason: decision_text(decision.reason, ready),
                    stable_concurrency: decision.stable_concurrency,
                    panic_concurrency: decision.panic_concurrency,
                });
                while report.decisions.len() > DECISIONS_KEPT {
                    report.decisions.pop_front();
                }
                tracing::info!(function = %name, from = report.desired, to = desired, reason = %decision.reason, "scaling decision");
            }
            report.desired = desired;
        });
        desired
    }

    /// Commits `drained` for draining nodes with nothing placed and nothing running.
    async fn finish_drains(&self, member: &Member, term: u64, inputs: &Inputs) -> bool {
        let committed = member.state.read(|a| a.cluster.placements.clone());
        for (id, state) in &inputs.committed_states {
            if *state != NodeState::Draining {
                continue;
            }
            let placed = committed.values().any(|by_node| by_node.contains_key(id));
            if !drain_complete(placed, member.liveness.is_alive(id), inputs.loads.get(id)) {
                continue;
            }
            let command = Command::SetNodeState {
                id: id.clone(),
                state: NodeState::Drained,
                term,
            };
            match member.write(command).await {
                Ok(CommandResult::Fenced { .. }) => return false,
                Ok(_) => tracing::info!(node = %id, "node drained"),
                Err(e) => tracing::warn!(node = %id, error = %e, "could not commit a drained node"),
            }
        }
        true
    }
}

fn read_inputs(member: &Member) -> Inputs {
    let (functions, nodes, committed_states, current, policy) = member.state.read(|a| {
        let cluster: &ClusterState = &a.cluster;
        (
            cluster.functions.values().cloned().collect::<Vec<_>>(),
            cluster.nodes.values().cloned().collect::<Vec<_>>(),
            cluster
                .nodes
                .values()
                .map(|n| (n.info.id.clone(), n.state))
                .collect::<BTreeMap<_, _>>(),
            cluster.placements.clone(),
            cluster.policy.clone(),
        )
    });
    let loads = nodes
        .iter()
        .filter_map(|n| {
            let (load, _) = member.liveness.last_report(&n.info.id)?;
            Some((n.info.id.clone(), load))
        })
        .collect();
    let nodes = nodes
        .into_iter()
        .map(|n| {
            let alive = member.liveness.is_alive(&n.info.id);
            let state = match n.state {
                _ if !alive => placement::NodeState::Down,
                NodeState::Down => placement::NodeState::Down,
                NodeState::Draining | NodeState::Drained => placement::NodeState::Draining,
                NodeState::Ready => placement::NodeState::Ready,
            };
            PlacementNode { info: n.info, state }
        })
        .collect();
    Inputs {
        functions,
        nodes,
        committed_states,
        current,
        autoscaler: policy.autoscaler,
        load_bound_c: policy.scheduler.load_bound_c,
        loads,
    }
}

/// Whether a draining node can be committed drained: nothing is placed there, and nothing the
/// cluster can reach runs there. A live node must report no instance and no request in flight
/// (none reported at all counts as none); a node silent past the heartbeat timeout runs nothing
/// reachable (it is out of the routing table, its instances are placed elsewhere), so its last,
/// stale report does not hold the drain back.
/// A scaling decision's reason as `fjord describe` shows it. The rate limits work from the
/// instances running now (placed or started on demand), not from the previous desired count, so
/// their sentence says how many that was: "0 -> 7" reads as a scale-down only beside "from the
/// 14 instances running now".
pub(crate) fn decision_text(reason: ScaleReason, running: u32) -> String {
    match reason {
        ScaleReason::RateLimitedUp | ScaleReason::RateLimitedDown => {
            let noun = if running == 1 { "instance" } else { "instances" };
            format!("{reason} (from the {running} {noun} running now)")
        }
        _ => reason.to_string(),
    }
}

pub(crate) fn drain_complete(placed: bool, alive: bool, load: Option<&NodeLoad>) -> bool {
    if placed {
        return false;
    }
    !alive
        || load.is_none_or(|load| {
            load.in_flight == 0
                && load
                    .functions
                    .values()
                    .all(|f| f.ready + f.starting + f.in_flight + f.waiting == 0)
        })
}

/// The plan's placements, with new before old on a drain: an instance the plan moves off a node
/// committed `draining` stays placed there as well until the node it moves to reports as many
/// ready instances of the function as the plan places there (`ready_on(node, function)`), so the
/// function never has fewer instances serving than before. Moves off other nodes (a spread or
/// capacity repair) are not held; the plan has no moves off down nodes (their instances are lost).
pub(crate) fn keep_until_replaced(
    plan: &PlacementPlan,
    committed_states: &BTreeMap<String, NodeState>,
    ready_on: impl Fn(&str, &str) -> u32,
) -> Placements {
    let mut placements = plan.placements.clone();
    for mv in &plan.moves {
        if committed_states.get(&mv.from).copied() != Some(NodeState::Draining) {
            continue;
        }
        let placed_on_target = plan
            .placements
            .get(&mv.function)
            .and_then(|n| n.get(&mv.to))
            .copied()
            .unwrap_or(0);
        if ready_on(&mv.to, &mv.function) < placed_on_target {
            *placements
                .entry(mv.function.clone())
                .or_default()
                .entry(mv.from.clone())
                .or_default() += mv.instances;
        }
    }
    placements
}

/// The calls of each function seen in heartbeats, counted per node.
///
/// Each agent reports, per function, a counter of requests it admitted since it started. Summing
/// the counters over nodes would not do: a node leaving the sum (down) or an agent restarting
/// (its counter back at 0) changes the sum, which would look like calls and keep an idle function
/// from scaling to zero. So each node's counter is followed on its own, and only its increases
/// since it was last seen count. A node seen for the first time counts no call (its counter is
/// a base); one not reported keeps its last counter; a counter lower than the last (the agent
/// restarted, or the function's pool on it was made anew) counts no call and becomes the base.
#[derive(Debug, Default)]
pub(crate) struct CallCounts {
    /// Function -> node -> the counter last reported.
    last: HashMap<String, HashMap<String, u64>>,
    /// Function -> the calls counted so far.
    totals: HashMap<String, u64>,
}

impl CallCounts {
    /// Takes one tick's `(node, counter)` pairs for `function` and returns the calls counted for
    /// it so far: a total that only grows, and grows exactly when a node reported calls.
    pub(crate) fn observe<'a>(&mut self, function: &str, counters: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
        let last = self.last.entry(function.to_string()).or_default();
        let total = self.totals.entry(function.to_string()).or_default();
        for (node, counter) in counters {
            match last.insert(node.to_string(), counter) {
                Some(previous) if counter > previous => *total = total.saturating_add(counter - previous),
                _ => {}
            }
        }
        *total
    }

    /// Forgets the functions `keep` refuses (removed ones).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.last.retain(|name, _| keep(name));
        self.totals.retain(|name, _| keep(name));
    }
}

/// Ready instances of the function's current revision on `node`, as last reported.
fn ready_of(loads: &BTreeMap<String, NodeLoad>, node: &str, function: &str, functions: &[FunctionRecord]) -> u32 {
    let revision = functions.iter().find(|r| r.spec.name == function).map(|r| r.revision);
    loads
        .get(node)
        .and_then(|l| l.functions.get(function))
        .filter(|f| Some(f.revision) == revision)
        .map_or(0, |f| f.ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_decisions_name_the_instances_they_start_from() {
        assert_eq!(
            decision_text(ScaleReason::RateLimitedDown, 14),
            "scaling down no faster than the maximum scale-down rate allows (from the 14 instances running now)"
        );
        assert_eq!(
            decision_text(ScaleReason::RateLimitedUp, 1),
            "scaling up no faster than the maximum scale-up rate allows (from the 1 instance running now)"
        );
        assert_eq!(decision_text(ScaleReason::Min, 3), ScaleReason::Min.to_string());
    }
    use fjord_core::node::FunctionLoad;
    use fjord_core::{FunctionSpec, NodeInfo};

    fn node(id: &str, state: placement::NodeState) -> PlacementNode {
        PlacementNode {
            info: NodeInfo {
                id: id.into(),
                invoke_addr: "127.0.0.1:1".into(),
                memory_mib: 4096,
                cpu_millis: 4000,
                zone: String::new(),
                runtime: "process".into(),
                instance_id: String::new(),
            },
            state,
        }
    }

    fn running(ready: u32, in_flight: u32) -> NodeLoad {
        let mut load = NodeLoad {
            in_flight,
            ..Default::default()
        };
        load.functions.insert(
            "f".into(),
            FunctionLoad {
                revision: 1,
                ready,
                in_flight,
                calls: 7,
                ..Default::default()
            },
        );
        load
    }

    #[test]
    fn a_draining_node_is_drained_once_nothing_reachable_is_placed_or_running_there() {
        let idle = NodeLoad::default();
        let busy = running(1, 1);
        // Alive: its own report decides.
        assert!(drain_complete(false, true, Some(&idle)));
        assert!(drain_complete(false, true, None), "never reported: nothing runs there");
        assert!(!drain_complete(false, true, Some(&busy)));
        assert!(
            !drain_complete(false, true, Some(&running(1, 0))),
            "an idle instance still runs"
        );
        // Something placed there holds the drain, alive or not.
        assert!(!drain_complete(true, true, Some(&idle)));
        assert!(!drain_complete(true, false, Some(&idle)));
        // Silent past the heartbeat timeout: the last report is stale and nothing there is
        // reachable, so it does not hold the drain back.
        assert!(drain_complete(false, false, Some(&busy)));
        assert!(drain_complete(false, false, None));
    }

    /// Function `f`, 2 instances wanted, both placed on `a`, which is draining; `b` is ready.
    fn draining_a(a_state: placement::NodeState) -> (PlacementPlan, BTreeMap<String, NodeState>) {
        let spec = FunctionSpec::with_command("f", vec!["x".into()]);
        let nodes = [node("a", a_state), node("b", placement::NodeState::Ready)];
        let current: Placements = [("f".to_string(), [("a".to_string(), 2)].into())].into();
        let demands = [FunctionDemand {
            spec: &spec,
            desired: 2,
        }];
        let plan = placement::plan(&nodes, &current, &demands, 1.25);
        let committed = [
            ("a".to_string(), NodeState::Draining),
            ("b".to_string(), NodeState::Ready),
        ]
        .into();
        (plan, committed)
    }

    fn on(pairs: &[(&str, u32)]) -> Placements {
        [(
            "f".to_string(),
            pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        )]
        .into()
    }

    #[test]
    fn an_instance_leaving_a_draining_node_stays_until_its_replacement_is_ready() {
        let (plan, committed) = draining_a(placement::NodeState::Draining);
        assert_eq!(plan.placements, on(&[("b", 2)]), "the plan moves both to b");
        assert_eq!(plan.moves.len(), 1, "{:?}", plan.moves);
        // Nothing ready on b yet: both stay placed on a as well.
        let ready = |ready_on_b: u32| {
            move |node: &str, function: &str| {
                assert_eq!(function, "f");
                if node == "b" {
                    ready_on_b
                } else {
                    0
                }
            }
        };
        assert_eq!(
            keep_until_replaced(&plan, &committed, ready(0)),
            on(&[("a", 2), ("b", 2)])
        );
        // One of the two ready: still held, the function keeps two serving.
        assert_eq!(
            keep_until_replaced(&plan, &committed, ready(1)),
            on(&[("a", 2), ("b", 2)])
        );
        // Both ready: the old ones go.
        assert_eq!(keep_until_replaced(&plan, &committed, ready(2)), on(&[("b", 2)]));
    }

    #[test]
    fn instances_are_held_only_on_a_node_committed_draining_and_alive() {
        // The same move off a node the cluster did not commit draining (a spread or capacity
        // repair): not held.
        let (plan, mut committed) = draining_a(placement::NodeState::Draining);
        committed.insert("a".into(), NodeState::Ready);
        assert_eq!(keep_until_replaced(&plan, &committed, |_, _| 0), on(&[("b", 2)]));
        // A draining node that went silent is down for the plan: its instances are lost, placed
        // again, and nothing is held on it.
        let (plan, committed) = draining_a(placement::NodeState::Down);
        assert!(plan.moves.is_empty(), "{:?}", plan.moves);
        assert_eq!(keep_until_replaced(&plan, &committed, |_, _| 0), on(&[("b", 2)]));
    }

    #[test]
    fn calls_count_only_increases_of_a_node_seen_before() {
        let mut calls = CallCounts::default();
        // First sight of each node: its counter is a base, not calls.
        assert_eq!(calls.observe("f", [("a", 100), ("b", 40)]), 0);
        assert_eq!(calls.observe("f", [("a", 100), ("b", 40)]), 0);
        // Increases on both nodes add up.
        assert_eq!(calls.observe("f", [("a", 103), ("b", 42)]), 5);
        // b goes down (not reported): no calls, where a sum over nodes would have dropped by 42.
        assert_eq!(calls.observe("f", [("a", 103)]), 5);
        // a's agent restarts (its counter starts again at 0): no calls either.
        assert_eq!(calls.observe("f", [("a", 0)]), 5);
        // b comes back with the calls it took while unheard of; a counts from its new base.
        assert_eq!(calls.observe("f", [("a", 2), ("b", 45)]), 10);
        // A node that joins with a counter already counting (this leader is new to it): a base.
        assert_eq!(calls.observe("f", [("a", 2), ("b", 45), ("c", 1000)]), 10);
        assert_eq!(calls.observe("f", [("a", 2), ("b", 45), ("c", 1001)]), 11);
        // Functions are counted apart, and forgotten when removed.
        assert_eq!(calls.observe("g", [("a", 9)]), 0);
        calls.retain(|name| name == "g");
        assert_eq!(calls.observe("f", [("a", 50)]), 0, "f starts over");
        assert_eq!(calls.observe("g", [("a", 10)]), 1);
    }

    #[test]
    fn a_node_going_down_or_restarting_does_not_keep_an_idle_function_active() {
        use fjord_decisions::autoscale::{AutoscalerConfig, FunctionAutoscaler};
        let config = AutoscalerConfig::default();
        let mut spec = FunctionSpec::with_command("f", vec!["x".into()]);
        spec.scale_to_zero_after = Duration::from_secs(10);
        let mut calls = CallCounts::default();
        let mut autoscaler = FunctionAutoscaler::new(config);
        // Two nodes that served calls earlier, idle now; every 500 ms a sample.
        let mut t = 0;
        let mut sample = |autoscaler: &mut FunctionAutoscaler, counters: &[(&str, u64)]| {
            let total = calls.observe("f", counters.iter().copied());
            autoscaler.observe_calls(t, 0, total);
            t += 500;
        };
        for _ in 0..4 {
            sample(&mut autoscaler, &[("a", 30), ("b", 12)]);
        }
        // b goes down, then a restarts: nothing was called all along.
        for _ in 0..12 {
            sample(&mut autoscaler, &[("a", 30)]);
        }
        for _ in 0..20 {
            sample(&mut autoscaler, &[("a", 0)]);
        }
        // Idle since the first sample, 18 s ago: past its 10 s, it goes to zero. (A sum over the
        // nodes would have changed at 2 s and at 8 s, looked like calls, and kept it warm.)
        let decision = autoscaler.decide(18_000, &spec, 1);
        assert_eq!(decision.desired, 0, "{decision:?}");
    }
}
