//! The replicated state and the pure function that applies a command to it. No I/O here, so the
//! rules are tested directly and every member applies them identically.

use crate::raft_types::{Command, CommandResult, GroupAction, MemberId, NodeState, PutMode};
use crate::secrets::{Sealed, SecretRecord};
use fjord_core::{FunctionRecord, FunctionSpec, NodeInfo, SpecError};
use fjord_decisions::placement::Placements;
use fjord_decisions::policy::{ClusterPolicy, PolicyError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RegisteredNode {
    pub(crate) info: NodeInfo,
    pub(crate) registered_at_ms: u64,
    #[serde(default)]
    pub(crate) state: NodeState,
}

/// Everything the control plane stores durably (through Raft).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterState {
    pub(crate) functions: BTreeMap<String, FunctionRecord>,
    pub(crate) nodes: BTreeMap<String, RegisteredNode>,
    /// Source of function revisions: strictly increasing over the cluster's life, so a function
    /// removed and deployed again never reuses a revision.
    pub(crate) last_revision: u64,
    /// Bumped whenever `functions` changes; watchers compare it to skip no-op wake-ups.
    pub(crate) functions_version: u64,
    /// Bumped whenever `nodes` changes.
    pub(crate) nodes_version: u64,
    /// Ids of members removed from the cluster: never given to a new member.
    #[serde(default)]
    pub(crate) retired_members: BTreeSet<MemberId>,
    /// The scheduler's placements: function -> node -> instances. Only known functions and
    /// nodes appear, with no zero counts.
    #[serde(default)]
    pub(crate) placements: Placements,
    /// Bumped whenever `placements` changes.
    #[serde(default)]
    pub(crate) placements_version: u64,
    #[serde(default)]
    pub(crate) policy: ClusterPolicy,
    /// What the node autoscaler decided for each node group.
    #[serde(default)]
    pub(crate) node_groups: BTreeMap<String, GroupRecord>,
    /// Scheduled functions: since when each schedule holds and the last tick fired.
    #[serde(default)]
    pub(crate) schedules: BTreeMap<String, ScheduleRecord>,
    /// Named secrets, each value sealed (`crate::secrets`): no plaintext in the log or a snapshot.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, SecretRecord>,
    /// Bumped whenever `secrets` changes.
    #[serde(default)]
    pub(crate) secrets_version: u64,
}

/// The committed history of one function's schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScheduleRecord {
    /// When the schedule was deployed as it stands (wall clock): no tick before it fires.
    pub(crate) since_ms: u64,
    /// The last tick fired, on the schedule's clock.
    pub(crate) last_fired_ms: Option<u64>,
}

/// Node-group decisions kept for `fjord nodes`.
pub(crate) const GROUP_DECISIONS_KEPT: usize = 10;

/// The committed history of one node group's autoscaling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub(crate) last_scale_out_ms: Option<u64>,
    /// The size the last scale-out asked for (committed with `last_scale_out_ms`), so a leader
    /// can finish one whose provider call never happened.
    #[serde(default)]
    pub(crate) scale_out_to: Option<u32>,
    pub(crate) last_scale_in_ms: Option<u64>,
    /// The node the autoscaler is draining to terminate.
    pub(crate) draining: Option<String>,
    /// Nodes whose machine the autoscaler terminated: no longer part of the group.
    pub(crate) terminated: BTreeSet<String>,
    /// (at_ms, what, why), newest last.
    pub(crate) decisions: std::collections::VecDeque<(u64, String, String)>,
}

impl ClusterState {
    /// Applies `command`, proposed in the Raft term `entry_term`. Leader-only decisions (node
    /// state, placements, node-group actions) carry the term they were decided in; one decided
    /// in another term than it was proposed in is refused and changes nothing ([`Self::fenced`]).
    pub(crate) fn apply(&mut self, command: Command, entry_term: u64) -> CommandResult {
        match command {
            Command::Deploy {
                spec,
                now_ms,
                image_ref,
            } => self.deploy(spec, now_ms, image_ref),
            Command::Remove { name } => self.remove(name),
            Command::Scale { name, min, max, now_ms } => self.scale(&name, min, max, now_ms),
            Command::RegisterNode { info, now_ms } => self.register_node(info, now_ms),
            Command::RemoveNode { id } => self.remove_node(id),
            Command::SetNodeState { id, state, term } => self.fenced(term, entry_term, |s| s.set_node_state(id, state)),
            Command::RetireMember { id } => {
                self.retired_members.insert(id);
                CommandResult::Noop
            }
            Command::SetPlacements { placements, term } => {
                self.fenced(term, entry_term, |s| s.set_placements(placements))
            }
            Command::NodeGroupAction {
                group,
                action,
                reason,
                at_ms,
                term,
            } => self.fenced(term, entry_term, |s| s.node_group_action(group, action, reason, at_ms)),
            Command::SetPolicy { policy } => self.set_policy(policy),
            Command::CronFired {
                function,
                tick_ms,
                term,
            } => self.fenced(term, entry_term, |s| s.cron_fired(function, tick_ms)),
            Command::PutSecret {
                name,
                sealed,
                mode,
                now_ms,
            } => self.put_secret(name, sealed, mode, now_ms),
            Command::RemoveSecret { name } => self.remove_secret(name),
        }
    }

    /// Functions whose spec names the secret `name`.
    pub(crate) fn secret_users(&self, name: &str) -> Vec<String> {
        self.functions
            .values()
            .filter(|r| r.spec.secrets.names().iter().any(|n| n == name))
            .map(|r| r.spec.name.clone())
            .collect()
    }

    fn put_secret(&mut self, name: String, sealed: Sealed, mode: PutMode, now_ms: u64) -> CommandResult {
        if let Err(reason) = fjord_core::secret::check_name(&name) {
            return CommandResult::Invalid {
                field: "name".into(),
                reason,
            };
        }
        let existing = self.secrets.get(&name);
        match (mode, existing) {
            (PutMode::Create, Some(_)) => return CommandResult::SecretExists { name },
            (PutMode::Update, None) => return CommandResult::SecretNotFound { name },
            _ => {}
        }
        let record = SecretRecord {
            sealed: sealed.sealed,
            key_id: sealed.key_id,
            version: existing.map_or(1, |r| r.version + 1),
            created_at_ms: existing.map_or(now_ms, |r| r.created_at_ms),
            updated_at_ms: now_ms,
        };
        let version = record.version;
        self.secrets.insert(name, record);
        self.secrets_version += 1;
        CommandResult::SecretStored { version }
    }

    fn remove_secret(&mut self, name: String) -> CommandResult {
        if !self.secrets.contains_key(&name) {
            return CommandResult::SecretNotFound { name };
        }
        let by = self.secret_users(&name);
        if !by.is_empty() {
            return CommandResult::SecretInUse { name, by };
        }
        self.secrets.remove(&name);
        self.secrets_version += 1;
        CommandResult::SecretRemoved
    }

    /// Term fencing: runs `apply` only when the decision was made in the term its entry was
    /// proposed in (`decided_in == proposed_in`), so a deposed leader's late decision is a
    /// committed no-op everywhere.
    fn fenced(
        &mut self,
        decided_in: u64,
        proposed_in: u64,
        apply: impl FnOnce(&mut Self) -> CommandResult,
    ) -> CommandResult {
        if decided_in == proposed_in {
            apply(self)
        } else {
            CommandResult::Fenced {
                proposed_in,
                decided_in,
            }
        }
    }

    fn deploy(&mut self, spec: FunctionSpec, now_ms: u64, image_ref: String) -> CommandResult {
        if let Err(e) = spec.validate() {
            return invalid(e);
        }
        if let Err(e) = check_schedule(&spec.schedule) {
            return invalid(e);
        }
        if let Some((i, name)) = spec
            .secrets
            .names()
            .iter()
            .enumerate()
            .find(|(_, name)| !self.secrets.contains_key(*name))
        {
            return CommandResult::Invalid {
                field: format!("secrets[{i}]"),
                reason: format!(
                    "names secret {name:?}, which does not exist: create it first with `fjord secret create {name}` (see `fjord secret ls`)"
                ),
            };
        }
        if let Some(existing) = self.functions.get(&spec.name) {
            if existing.spec == spec {
                return CommandResult::Deployed {
                    record: existing.clone(),
                    changed: false,
                };
            }
        }
        self.last_revision += 1;
        let previous_schedule = self.functions.get(&spec.name).map(|r| r.spec.schedule.as_slice());
        if spec.schedule.is_empty() {
            self.schedules.remove(&spec.name);
        } else if previous_schedule != Some(spec.schedule.as_slice()) {
            // A new or changed schedule counts from now; the last tick fired stays, so a tick
            // already fired never fires twice.
            let entry = self.schedules.entry(spec.name.clone()).or_default();
            entry.since_ms = now_ms;
        }
        let created_at_ms = self.functions.get(&spec.name).map_or(now_ms, |r| r.created_at_ms);
        let record = FunctionRecord {
            revision: self.last_revision,
            created_at_ms,
            updated_at_ms: now_ms,
            spec,
            image_ref,
        };
        self.functions.insert(record.spec.name.clone(), record.clone());
        self.functions_version += 1;
        CommandResult::Deployed { record, changed: true }
    }

    fn remove(&mut self, name: String) -> CommandResult {
        let Some(record) = self.functions.remove(&name) else {
            return CommandResult::NotFound { name };
        };
        self.functions_version += 1;
        self.schedules.remove(&name);
        if self.placements.remove(&name).is_some() {
            self.placements_version += 1;
        }
        CommandResult::Removed {
            revision: record.revision,
        }
    }

    fn scale(&mut self, name: &str, min: Option<u32>, max: Option<u32>, now_ms: u64) -> CommandResult {
        let Some(record) = self.functions.get(name) else {
            return CommandResult::NotFound { name: name.to_string() };
        };
        let mut spec = record.spec.clone();
        spec.min = min.unwrap_or(spec.min);
        spec.max = max.unwrap_or(spec.max);
        if let Err(e) = spec.validate() {
            return invalid(e);
        }
        // Scaling changes how many instances run, not what they run: same revision.
        let record = FunctionRecord {
            spec,
            updated_at_ms: now_ms,
            ..record.clone()
        };
        self.functions.insert(name.to_string(), record.clone());
        self.functions_version += 1;
        CommandResult::Scaled { record }
    }

    fn register_node(&mut self, info: NodeInfo, now_ms: u64) -> CommandResult {
        let unchanged = self.nodes.get(&info.id).is_some_and(|n| n.info == info);
        if !unchanged {
            let registered_at_ms = self.nodes.get(&info.id).map_or(now_ms, |n| n.registered_at_ms);
            let state = self.nodes.get(&info.id).map_or(NodeState::Ready, |n| n.state);
            self.nodes.insert(
                info.id.clone(),
                RegisteredNode {
                    info,
                    registered_at_ms,
                    state,
                },
            );
            self.nodes_version += 1;
        }
        CommandResult::NodeRegistered
    }

    fn remove_node(&mut self, id: String) -> CommandResult {
        let Some(node) = self.nodes.get(&id) else {
            return CommandResult::NotFound { name: id };
        };
        if !matches!(node.state, NodeState::Down | NodeState::Drained) {
            return CommandResult::Invalid {
                field: "id".into(),
                reason: format!(
                    "node {id:?} is {}: only a down or drained node can be removed (drain it first, or stop its agent)",
                    node.state.as_str()
                ),
            };
        }
        self.nodes.remove(&id);
        self.nodes_version += 1;
        let mut placements_changed = false;
        for by_node in self.placements.values_mut() {
            placements_changed |= by_node.remove(&id).is_some();
        }
        self.placements.retain(|_, by_node| !by_node.is_empty());
        if placements_changed {
            self.placements_version += 1;
        }
        CommandResult::NodeRemoved
    }

    fn set_node_state(&mut self, id: String, state: NodeState) -> CommandResult {
        match self.nodes.get_mut(&id) {
            Some(node) => {
                if node.state != state {
                    node.state = state;
                    self.nodes_version += 1;
                }
                CommandResult::Noop
            }
            None => CommandResult::NotFound { name: id },
        }
    }

    fn set_placements(&mut self, mut placements: Placements) -> CommandResult {
        // A plan made before a function was removed or a node forgotten keeps nothing of them.
        placements.retain(|function, by_node| {
            by_node.retain(|node, count| *count > 0 && self.nodes.contains_key(node));
            !by_node.is_empty() && self.functions.contains_key(function)
        });
        if placements != self.placements {
            self.placements = placements;
            self.placements_version += 1;
        }
        CommandResult::Noop
    }

    fn node_group_action(&mut self, group: String, action: GroupAction, reason: String, at_ms: u64) -> CommandResult {
        // A decision made before its group left the policy is not acted on.
        if !self.policy.node_groups.iter().any(|g| g.name == group) {
            return CommandResult::NotFound { name: group };
        }
        let node_state = match &action {
            GroupAction::ScaleOut { .. } => None,
            GroupAction::Drain { node } => Some((node.clone(), NodeState::Draining)),
            GroupAction::Terminate { node } => Some((node.clone(), NodeState::Drained)),
            GroupAction::Restore { node } => Some((node.clone(), NodeState::Ready)),
        };
        if let Some((node, _)) = &node_state {
            if !self.nodes.contains_key(node) {
                return CommandResult::NotFound { name: node.clone() };
            }
        }
        self.node_groups.entry(group).or_default().record(action, reason, at_ms);
        if let Some((id, state)) = node_state {
            self.set_node_state(id, state);
        }
        CommandResult::Noop
    }

    fn cron_fired(&mut self, function: String, tick_ms: u64) -> CommandResult {
        // A tick decided before its function or schedule went is not recorded.
        let Some(schedule) = self.schedules.get_mut(&function) else {
            return CommandResult::NotFound { name: function };
        };
        if schedule.last_fired_ms.is_none_or(|last| tick_ms > last) {
            schedule.last_fired_ms = Some(tick_ms);
        }
        CommandResult::Noop
    }

    fn set_policy(&mut self, policy: ClusterPolicy) -> CommandResult {
        if let Err(e) = policy.validate() {
            let (field, reason) = match e {
                PolicyError::Field { field, reason } => (field, reason),
                PolicyError::Parse(reason) => ("policy".into(), reason),
            };
            return CommandResult::Invalid { field, reason };
        }
        self.policy = policy;
        CommandResult::Noop
    }
}

impl GroupRecord {
    /// Records a committed node-group action: its effect on the group's history, and the
    /// decision itself among the latest [`GROUP_DECISIONS_KEPT`].
    fn record(&mut self, action: GroupAction, reason: String, at_ms: u64) {
        match &action {
            GroupAction::ScaleOut { to } => {
                self.last_scale_out_ms = Some(at_ms);
                self.scale_out_to = Some(*to);
            }
            GroupAction::Drain { node } => self.draining = Some(node.clone()),
            GroupAction::Terminate { node } => {
                self.terminated.insert(node.clone());
                self.draining = None;
                self.last_scale_in_ms = Some(at_ms);
            }
            GroupAction::Restore { .. } => self.draining = None,
        }
        self.decisions.push_back((at_ms, action.to_string(), reason));
        while self.decisions.len() > GROUP_DECISIONS_KEPT {
            self.decisions.pop_front();
        }
    }
}

/// Every cron expression of a schedule parses; an error names the entry (`schedule[1]`).
pub(crate) fn check_schedule(schedule: &[String]) -> Result<(), SpecError> {
    for (i, text) in schedule.iter().enumerate() {
        if let Err(e) = fjord_decisions::schedule::Cron::parse(text) {
            return Err(SpecError::Field {
                field: format!("schedule[{i}]"),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

fn invalid(e: SpecError) -> CommandResult {
    match e {
        SpecError::Field { field, reason } => CommandResult::Invalid { field, reason },
        SpecError::Parse(reason) => CommandResult::Invalid {
            field: "spec".into(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests;
