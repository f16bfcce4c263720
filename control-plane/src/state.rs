//! The replicated state and the pure function that applies a command to it. No I/O here, so the
//! rules are tested directly and every member applies them identically.

use crate::raft_types::{Command, CommandResult, GroupAction, MemberId, NodeState};
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
        }
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
        if let Some(existing) = self.functions.get(&spec.name) {
            if existing.spec == spec {
                return CommandResult::Deployed {
                    record: existing.clone(),
                    changed: false,
                };
            }
        }
        self.last_revision += 1;
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
mod tests {
    use super::*;
    use fjord_core::FunctionSpec;

    impl ClusterState {
        fn apply_now(&mut self, command: Command) -> CommandResult {
            self.apply(command, 1)
        }
    }

    #[test]
    fn node_state_changes_are_fenced_by_term() {
        let mut s = ClusterState::default();
        let info = fjord_core::NodeInfo {
            id: "n1".into(),
            invoke_addr: "127.0.0.1:1".into(),
            memory_mib: 1024,
            cpu_millis: 1000,
            zone: String::new(),
            runtime: "process".into(),
            instance_id: String::new(),
        };
        s.apply(Command::RegisterNode { info, now_ms: 1 }, 3);
        let down = Command::SetNodeState {
            id: "n1".into(),
            state: NodeState::Down,
            term: 3,
        };
        // Decided in term 3 but proposed in term 4: a deposed leader's decision, refused.
        assert_eq!(
            s.apply(down.clone(), 4),
            CommandResult::Fenced {
                proposed_in: 4,
                decided_in: 3
            }
        );
        assert_eq!(s.nodes["n1"].state, NodeState::Ready);
        assert_eq!(s.apply(down, 3), CommandResult::Noop);
        assert_eq!(s.nodes["n1"].state, NodeState::Down);
        let unknown = Command::SetNodeState {
            id: "n9".into(),
            state: NodeState::Down,
            term: 3,
        };
        assert!(matches!(s.apply(unknown, 3), CommandResult::NotFound { .. }));
    }

    #[test]
    fn placements_are_fenced_and_keep_only_known_functions_and_nodes() {
        let mut s = ClusterState::default();
        s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 1,
            image_ref: String::new(),
        });
        let info = fjord_core::NodeInfo {
            id: "n1".into(),
            invoke_addr: "127.0.0.1:1".into(),
            memory_mib: 1024,
            cpu_millis: 1000,
            zone: String::new(),
            runtime: "process".into(),
            instance_id: String::new(),
        };
        s.apply_now(Command::RegisterNode { info, now_ms: 1 });
        let plan: Placements = [
            ("a".to_string(), [("n1".to_string(), 2), ("gone".to_string(), 1)].into()),
            ("removed".to_string(), [("n1".to_string(), 1)].into()),
        ]
        .into();
        let stale = Command::SetPlacements {
            placements: plan.clone(),
            term: 1,
        };
        assert!(matches!(s.apply(stale, 2), CommandResult::Fenced { .. }));
        assert!(s.placements.is_empty());
        assert_eq!(
            s.apply(
                Command::SetPlacements {
                    placements: plan,
                    term: 2
                },
                2
            ),
            CommandResult::Noop
        );
        assert_eq!(s.placements, [("a".to_string(), [("n1".to_string(), 2)].into())].into());
        let version = s.placements_version;
        s.apply_now(Command::Remove { name: "a".into() });
        assert!(s.placements.is_empty());
        assert!(s.placements_version > version);
    }

    #[test]
    fn an_invalid_policy_is_refused_and_the_stored_one_kept() {
        let mut s = ClusterState::default();
        let mut policy = ClusterPolicy::default();
        policy.scheduler.load_bound_c = 2.0;
        assert_eq!(
            s.apply_now(Command::SetPolicy { policy: policy.clone() }),
            CommandResult::Noop
        );
        let mut bad = policy.clone();
        bad.autoscaler.panic_window_ms = 0;
        assert!(matches!(
            s.apply_now(Command::SetPolicy { policy: bad }),
            CommandResult::Invalid { ref field, .. } if field == "autoscaler.panic_window_ms"
        ));
        assert_eq!(s.policy, policy);
    }

    fn spec(name: &str) -> FunctionSpec {
        FunctionSpec::with_command(name, vec!["x".into()])
    }

    fn node_info(id: &str) -> fjord_core::NodeInfo {
        fjord_core::NodeInfo {
            id: id.into(),
            invoke_addr: "127.0.0.1:1".into(),
            memory_mib: 1024,
            cpu_millis: 1000,
            zone: String::new(),
            runtime: "process".into(),
            instance_id: format!("i-{id}"),
        }
    }

    /// A cluster whose policy has the node group `workers`, with nodes n1 and n2 registered.
    fn with_group() -> ClusterState {
        let mut s = ClusterState::default();
        let mut policy = ClusterPolicy::default();
        let mut group = fjord_decisions::node_autoscale::NodeGroupPolicy::new("workers", 1, 5);
        group.provider = fjord_decisions::node_autoscale::ProviderKind::AwsAsg;
        group.asg_name = "fjord-workers".into();
        policy.node_groups.push(group);
        assert_eq!(s.apply_now(Command::SetPolicy { policy }), CommandResult::Noop);
        for id in ["n1", "n2"] {
            s.apply_now(Command::RegisterNode {
                info: node_info(id),
                now_ms: 1,
            });
        }
        s
    }

    fn group_action(group: &str, action: GroupAction, at_ms: u64, term: u64) -> Command {
        Command::NodeGroupAction {
            group: group.into(),
            action,
            reason: format!("reason at {at_ms}"),
            at_ms,
            term,
        }
    }

    #[test]
    fn a_node_group_action_from_another_term_changes_nothing() {
        let mut s = with_group();
        let before = s.clone();
        for action in [
            GroupAction::ScaleOut { to: 3 },
            GroupAction::Drain { node: "n1".into() },
            GroupAction::Terminate { node: "n1".into() },
            GroupAction::Restore { node: "n1".into() },
        ] {
            // Decided in term 3, proposed in term 4: a deposed leader's decision.
            assert_eq!(
                s.apply(group_action("workers", action, 10, 3), 4),
                CommandResult::Fenced {
                    proposed_in: 4,
                    decided_in: 3
                }
            );
        }
        assert_eq!(s, before);
        // The same decision in its own term lands.
        assert_eq!(
            s.apply(
                group_action("workers", GroupAction::Drain { node: "n1".into() }, 10, 4),
                4
            ),
            CommandResult::Noop
        );
        assert_eq!(s.nodes["n1"].state, NodeState::Draining);
        assert_eq!(s.node_groups["workers"].draining.as_deref(), Some("n1"));
    }

    #[test]
    fn a_node_group_action_for_an_unknown_group_or_node_is_refused() {
        let mut s = with_group();
        let before = s.clone();
        assert_eq!(
            s.apply_now(group_action("gone", GroupAction::ScaleOut { to: 3 }, 10, 1)),
            CommandResult::NotFound { name: "gone".into() }
        );
        assert_eq!(
            s.apply_now(group_action("gone", GroupAction::Drain { node: "n1".into() }, 10, 1)),
            CommandResult::NotFound { name: "gone".into() }
        );
        assert_eq!(
            s.apply_now(group_action(
                "workers",
                GroupAction::Terminate { node: "n9".into() },
                10,
                1
            )),
            CommandResult::NotFound { name: "n9".into() }
        );
        assert_eq!(s, before, "nothing recorded, no node changed");
    }

    #[test]
    fn node_group_actions_record_scale_outs_drains_and_terminated_machines() {
        let mut s = with_group();
        s.apply_now(group_action("workers", GroupAction::ScaleOut { to: 4 }, 10, 1));
        let record = &s.node_groups["workers"];
        assert_eq!((record.last_scale_out_ms, record.scale_out_to), (Some(10), Some(4)));

        s.apply_now(group_action("workers", GroupAction::Drain { node: "n2".into() }, 20, 1));
        assert_eq!(s.nodes["n2"].state, NodeState::Draining);
        let version = s.nodes_version;
        assert_eq!(
            s.apply_now(group_action(
                "workers",
                GroupAction::Terminate { node: "n2".into() },
                30,
                1
            )),
            CommandResult::Noop
        );
        let record = &s.node_groups["workers"];
        assert_eq!(record.terminated, ["n2".to_string()].into());
        assert_eq!(record.draining, None);
        assert_eq!(record.last_scale_in_ms, Some(30));
        assert_eq!(
            record.scale_out_to,
            Some(4),
            "a scale-in keeps what the scale-out asked for"
        );
        assert_eq!(s.nodes["n2"].state, NodeState::Drained);
        assert!(s.nodes_version > version);

        s.apply_now(group_action("workers", GroupAction::Drain { node: "n1".into() }, 40, 1));
        s.apply_now(group_action(
            "workers",
            GroupAction::Restore { node: "n1".into() },
            50,
            1,
        ));
        assert_eq!(s.nodes["n1"].state, NodeState::Ready);
        assert_eq!(s.node_groups["workers"].draining, None);
        let actions: Vec<&str> = s.node_groups["workers"]
            .decisions
            .iter()
            .map(|(_, action, _)| action.as_str())
            .collect();
        assert_eq!(
            actions,
            [
                "scale out to 4 nodes",
                "drain node n2",
                "terminate node n2",
                "drain node n1",
                "restore node n1"
            ]
        );
    }

    #[test]
    fn a_node_group_keeps_only_its_latest_decisions() {
        let mut s = with_group();
        let total = GROUP_DECISIONS_KEPT as u64 + 5;
        for at_ms in 0..total {
            let to = 2 + (at_ms % 3) as u32;
            s.apply_now(group_action("workers", GroupAction::ScaleOut { to }, at_ms, 1));
        }
        let kept: Vec<u64> = s.node_groups["workers"]
            .decisions
            .iter()
            .map(|(at, _, _)| *at)
            .collect();
        assert_eq!(kept, (5..total).collect::<Vec<_>>(), "the oldest go first");
        let (_, _, reason) = s.node_groups["workers"].decisions.back().unwrap();
        assert_eq!(reason, &format!("reason at {}", total - 1));
    }

    #[test]
    fn deploy_assigns_increasing_revisions_and_is_idempotent() {
        let mut s = ClusterState::default();
        let CommandResult::Deployed {
            record: a,
            changed: true,
        } = s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 1,
            image_ref: String::new(),
        })
        else {
            panic!()
        };
        let CommandResult::Deployed {
            record: again,
            changed: false,
        } = s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 2,
            image_ref: String::new(),
        })
        else {
            panic!()
        };
        assert_eq!(a, again);
        let mut changed = spec("a");
        changed.memory_mib = 256;
        let CommandResult::Deployed { record: b, .. } = s.apply_now(Command::Deploy {
            spec: changed,
            now_ms: 3,
            image_ref: String::new(),
        }) else {
            panic!()
        };
        assert!(b.revision > a.revision);
        assert_eq!(b.created_at_ms, 1);
        assert_eq!(b.updated_at_ms, 3);
    }

    #[test]
    fn invalid_deploy_and_scale_leave_state_unchanged() {
        let mut s = ClusterState::default();
        s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 1,
            image_ref: String::new(),
        });
        let before = s.clone();
        let mut bad = spec("a");
        bad.memory_mib = 1;
        assert!(
            matches!(s.apply_now(Command::Deploy { spec: bad, now_ms: 2, image_ref: String::new() }), CommandResult::Invalid { ref field, .. } if field == "memory_mib")
        );
        assert!(
            matches!(s.apply_now(Command::Scale { name: "a".into(), min: Some(9), max: Some(2), now_ms: 2 }), CommandResult::Invalid { ref field, .. } if field == "min")
        );
        assert_eq!(s, before);
    }

    #[test]
    fn remove_then_redeploy_never_reuses_a_revision() {
        let mut s = ClusterState::default();
        let CommandResult::Deployed { record: first, .. } = s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 1,
            image_ref: String::new(),
        }) else {
            panic!()
        };
        assert_eq!(
            s.apply_now(Command::Remove { name: "a".into() }),
            CommandResult::Removed {
                revision: first.revision
            }
        );
        assert_eq!(
            s.apply_now(Command::Remove { name: "a".into() }),
            CommandResult::NotFound { name: "a".into() }
        );
        let CommandResult::Deployed { record: second, .. } = s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 2,
            image_ref: String::new(),
        }) else {
            panic!()
        };
        assert!(second.revision > first.revision);
    }

    #[test]
    fn scale_keeps_the_revision() {
        let mut s = ClusterState::default();
        let CommandResult::Deployed { record, .. } = s.apply_now(Command::Deploy {
            spec: spec("a"),
            now_ms: 1,
            image_ref: String::new(),
        }) else {
            panic!()
        };
        let CommandResult::Scaled { record: scaled } = s.apply_now(Command::Scale {
            name: "a".into(),
            min: Some(2),
            max: None,
            now_ms: 5,
        }) else {
            panic!()
        };
        assert_eq!(scaled.revision, record.revision);
        assert_eq!(scaled.spec.min, 2);
        assert_eq!(scaled.spec.max, record.spec.max);
    }
}
