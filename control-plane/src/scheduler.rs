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
//!    to reports it ready (new before old). A draining node with nothing placed and nothing
//!    running or in flight is committed drained.
//!
//! What the scheduler decided and could not do (desired counts, pending instances and why,
//! recent scaling decisions) is kept in [`SchedulingReport`] for `fjord describe`: soft state,
//! rebuilt by the next leader within a tick.

use crate::member::Member;
use crate::raft_types::{Command, CommandResult, NodeState};
use crate::state::ClusterState;
use crate::state_machine::now_millis;
use fjord_core::autoscale::{AutoscalerConfig, FunctionAutoscaler, ScaleReason};
use fjord_core::placement::{self, FunctionDemand, PlacementNode, Placements};
use fjord_core::{FunctionRecord, NodeLoad};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Scaling decisions kept per function for `fjord describe`.
pub const DECISIONS_KEPT: usize = 20;

/// One change of a function's desired count.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingDecision {
    pub at_ms: u64,
    pub from: u32,
    pub to: u32,
    pub reason: String,
    pub stable_concurrency: f64,
    pub panic_concurrency: f64,
}

/// Desired instances not placed (or held on a draining node), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingReport {
    pub instances: u32,
    pub reason: String,
    /// Memory the instances need in all.
    pub memory_mib: u64,
    /// Pending for lack of room: more nodes would place them (not so when an instance is
    /// larger than any node, or when it is held on a draining node).
    pub for_room: bool,
}

/// What the leader's scheduler last concluded about one function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionReport {
    pub desired: u32,
    pub pending: Vec<PendingReport>,
    pub decisions: VecDeque<ScalingDecision>,
}

/// The scheduler's conclusions, readable by the Admin service on the leader.
#[derive(Default)]
pub struct SchedulingReport {
    functions: Mutex<BTreeMap<String, FunctionReport>>,
}

impl SchedulingReport {
    pub fn function(&self, name: &str) -> Option<FunctionReport> {
        self.functions.lock().expect("report lock poisoned").get(name).cloned()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut FunctionReport)) {
        f(self
            .functions
            .lock()
            .expect("report lock poisoned")
            .entry(name.to_string())
            .or_default());
    }

    /// Instances pending for lack of room, over every function: (instances, memory MiB).
    pub fn pending_for_room(&self) -> (u32, u64) {
        let functions = self.functions.lock().expect("report lock poisoned");
        functions
            .values()
            .flat_map(|f| f.pending.iter())
            .filter(|p| p.for_room)
            .fold((0, 0), |(n, mib), p| (n + p.instances, mib + p.memory_mib))
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.functions
            .lock()
            .expect("report lock poisoned")
            .retain(|name, _| keep(name));
    }
}

/// The leader's per-term scheduling state: one autoscaler per function. Dropped when the
/// leadership ends; the next leader starts from the committed placements.
pub struct Scheduler {
    started: Instant,
    /// No decision before every live agent has had time to heartbeat to this leader.
    warm_up: Duration,
    /// Per function: the settings its autoscaler was made with, and the autoscaler.
    autoscalers: HashMap<String, (AutoscalerConfig, FunctionAutoscaler)>,
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
    pub fn new(heartbeat_interval: Duration) -> Self {
        Scheduler {
            started: Instant::now(),
            warm_up: heartbeat_interval * 2,
            autoscalers: HashMap::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One round: autoscale, plan, commit, finish drains. Returns false when the leader was
    /// fenced (a newer term exists) and should stop leading.
    pub async fn tick(&mut self, member: &Member, term: u64) -> bool {
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
        let mut placements = plan.placements.clone();
        // New before old: an instance leaving a draining node stays placed there until its
        // replacement reports ready.
        for mv in &plan.moves {
            if inputs.committed_states.get(&mv.from).copied() != Some(NodeState::Draining) {
                continue;
            }
            let placed_on_target = plan.placements.get(&mv.function).and_then(|n| n.get(&mv.to)).copied();
            let ready_on_target = ready_of(&inputs.loads, &mv.to, &mv.function, &inputs.functions);
            if ready_on_target < placed_on_target.unwrap_or(0) {
                *placements
                    .entry(mv.function.clone())
                    .or_default()
                    .entry(mv.from.clone())
                    .or_default() += mv.instances;
            }
        }
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
                })
                .collect();
            pending.extend(plan.held.iter().filter(|h| &h.function == name).map(|h| PendingReport {
                instances: h.instances,
                reason: format!("held on draining node {}: {}", h.node, h.reason),
                memory_mib: u64::from(h.instances) * memory,
                for_room: false,
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
        let (mut concurrency, mut ready, mut calls) = (0u32, 0u32, 0u64);
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
                calls = calls.wrapping_add(f.calls);
                if f.revision == record.revision {
                    ready += f.ready + f.starting;
                }
            }
        }
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
                    reason: decision.reason.to_string(),
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
            let idle = inputs.loads.get(id).is_none_or(|load| {
                load.in_flight == 0
                    && load
                        .functions
                        .values()
                        .all(|f| f.ready + f.starting + f.in_flight + f.waiting == 0)
            });
            if placed || !idle {
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

/// Ready instances of the function's current revision on `node`, as last reported.
fn ready_of(loads: &BTreeMap<String, NodeLoad>, node: &str, function: &str, functions: &[FunctionRecord]) -> u32 {
    let revision = functions.iter().find(|r| r.spec.name == function).map(|r| r.revision);
    loads
        .get(node)
        .and_then(|l| l.functions.get(function))
        .filter(|f| Some(f.revision) == revision)
        .map_or(0, |f| f.ready)
}
