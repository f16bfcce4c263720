//! The pure `apply`: every command and its refusals, fencing, snapshots of the state.

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

#[test]
fn only_a_down_or_drained_node_is_removed_and_its_placements_go_with_it() {
    let mut s = ClusterState::default();
    let info = |id: &str| fjord_core::NodeInfo {
        id: id.into(),
        invoke_addr: "127.0.0.1:1".into(),
        memory_mib: 1024,
        cpu_millis: 1000,
        zone: String::new(),
        runtime: "process".into(),
        instance_id: String::new(),
    };
    s.apply_now(Command::RegisterNode {
        info: info("a"),
        now_ms: 1,
    });
    s.apply_now(Command::RegisterNode {
        info: info("b"),
        now_ms: 1,
    });
    s.apply_now(Command::Deploy {
        spec: FunctionSpec::with_command("f", vec!["/bin/true".into()]),
        now_ms: 1,
        image_ref: String::new(),
    });
    let plan: Placements = [("f".to_string(), [("a".to_string(), 1), ("b".to_string(), 1)].into())].into();
    s.apply_now(Command::SetPlacements {
        placements: plan,
        term: 1,
    });
    let refused = s.apply_now(Command::RemoveNode { id: "a".into() });
    assert!(
        matches!(&refused, CommandResult::Invalid { field, reason } if field == "id" && reason.contains("is ready")),
        "{refused:?}"
    );
    assert!(s.nodes.contains_key("a"), "a refused removal changes nothing");
    assert_eq!(
        s.apply_now(Command::RemoveNode { id: "nope".into() }),
        CommandResult::NotFound { name: "nope".into() }
    );
    s.apply_now(Command::SetNodeState {
        id: "a".into(),
        state: NodeState::Down,
        term: 1,
    });
    let (nodes_before, placements_before) = (s.nodes_version, s.placements_version);
    assert_eq!(
        s.apply_now(Command::RemoveNode { id: "a".into() }),
        CommandResult::NodeRemoved
    );
    assert!(!s.nodes.contains_key("a"));
    assert_eq!(s.placements["f"], [("b".to_string(), 1)].into());
    assert!(s.nodes_version > nodes_before && s.placements_version > placements_before);
}

fn scheduled(name: &str, schedule: &[&str]) -> Command {
    let mut spec = spec(name);
    spec.schedule = schedule.iter().map(|s| s.to_string()).collect();
    Command::Deploy {
        spec,
        now_ms: 1_000,
        image_ref: String::new(),
    }
}

#[test]
fn a_bad_cron_expression_is_refused_naming_its_entry_and_nothing_is_stored() {
    let mut s = ClusterState::default();
    let result = s.apply_now(scheduled("a", &["@daily", "61 * * * *"]));
    match result {
        CommandResult::Invalid { field, reason } => {
            assert_eq!(field, "schedule[1]");
            assert!(reason.contains("minute"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(s.functions.is_empty() && s.schedules.is_empty());
}

#[test]
fn fired_ticks_are_fenced_only_move_forward_and_go_with_the_schedule() {
    let mut s = ClusterState::default();
    assert!(matches!(
        s.apply(scheduled("a", &["* * * * *"]), 2),
        CommandResult::Deployed { .. }
    ));
    assert_eq!(s.schedules["a"].since_ms, 1_000);
    assert_eq!(s.schedules["a"].last_fired_ms, None);
    let fired = |tick_ms, term| Command::CronFired {
        function: "a".into(),
        tick_ms,
        term,
    };
    // A deposed leader's tick is refused.
    assert!(matches!(s.apply(fired(60_000, 2), 3), CommandResult::Fenced { .. }));
    assert_eq!(s.schedules["a"].last_fired_ms, None);
    assert_eq!(s.apply(fired(120_000, 3), 3), CommandResult::Noop);
    assert_eq!(s.apply(fired(60_000, 3), 3), CommandResult::Noop);
    assert_eq!(s.schedules["a"].last_fired_ms, Some(120_000), "never moves back");
    // Redeploying the same schedule (another memory size) keeps its history; a new one restarts
    // its floor but keeps the last tick.
    let mut bigger = spec("a");
    bigger.schedule = vec!["* * * * *".into()];
    bigger.memory_mib += 1;
    s.apply(
        Command::Deploy {
            spec: bigger,
            now_ms: 5_000,
            image_ref: String::new(),
        },
        3,
    );
    assert_eq!(s.schedules["a"].since_ms, 1_000);
    s.apply(
        Command::Deploy {
            spec: match scheduled("a", &["*/2 * * * *"]) {
                Command::Deploy { spec, .. } => spec,
                _ => unreachable!(),
            },
            now_ms: 9_000,
            image_ref: String::new(),
        },
        3,
    );
    assert_eq!(s.schedules["a"].since_ms, 9_000);
    assert_eq!(s.schedules["a"].last_fired_ms, Some(120_000));
    // Unscheduled, then removed: nothing left.
    s.apply_now(Command::Deploy {
        spec: spec("a"),
        now_ms: 10_000,
        image_ref: String::new(),
    });
    assert!(s.schedules.is_empty());
    s.apply(scheduled("b", &["@hourly"]), 3);
    s.apply_now(Command::Remove { name: "b".into() });
    assert!(s.schedules.is_empty());
    assert!(matches!(s.apply(fired(1, 3), 3), CommandResult::NotFound { .. }));
}

fn put_secret(name: &str, sealed: &str, mode: PutMode, now_ms: u64) -> Command {
    Command::PutSecret {
        name: name.into(),
        sealed: Sealed {
            sealed: sealed.into(),
            key_id: "k".into(),
        },
        mode,
        now_ms,
    }
}

#[test]
fn secrets_are_created_rotated_and_removed_with_their_refusals() {
    let mut s = ClusterState::default();
    assert_eq!(
        s.apply_now(put_secret("db", "v1", PutMode::Update, 1)),
        CommandResult::SecretNotFound { name: "db".into() }
    );
    assert_eq!(
        s.apply_now(put_secret("db", "v1", PutMode::Create, 1)),
        CommandResult::SecretStored { version: 1 }
    );
    assert_eq!(
        s.apply_now(put_secret("db", "v2", PutMode::Create, 2)),
        CommandResult::SecretExists { name: "db".into() }
    );
    assert_eq!(s.secrets["db"].sealed, "v1", "a refused create changes nothing");
    assert_eq!(
        s.apply_now(put_secret("db", "v2", PutMode::Update, 3)),
        CommandResult::SecretStored { version: 2 }
    );
    let db = &s.secrets["db"];
    assert_eq!((db.sealed.as_str(), db.created_at_ms, db.updated_at_ms), ("v2", 1, 3));
    assert!(matches!(
        s.apply_now(put_secret("../x", "v", PutMode::Upsert, 4)),
        CommandResult::Invalid { .. }
    ));

    // A spec naming a missing secret is refused, naming the entry; one naming a stored one deploys.
    let mut app = spec("app");
    app.secrets = fjord_core::secret::Secrets::Named(vec!["db".into(), "api".into()]);
    let deploy = |spec: FunctionSpec| Command::Deploy {
        spec,
        now_ms: 5,
        image_ref: String::new(),
    };
    match s.apply_now(deploy(app.clone())) {
        CommandResult::Invalid { field, reason } => {
            assert_eq!(field, "secrets[1]");
            assert!(reason.contains("fjord secret create api"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(s.functions.is_empty());
    s.apply_now(put_secret("api", "a", PutMode::Upsert, 6));
    assert!(matches!(s.apply_now(deploy(app)), CommandResult::Deployed { .. }));

    // Removal is refused while a function names the secret.
    assert_eq!(
        s.apply_now(Command::RemoveSecret { name: "db".into() }),
        CommandResult::SecretInUse {
            name: "db".into(),
            by: vec!["app".into()]
        }
    );
    s.apply_now(Command::Remove { name: "app".into() });
    let version = s.secrets_version;
    assert_eq!(
        s.apply_now(Command::RemoveSecret { name: "db".into() }),
        CommandResult::SecretRemoved
    );
    assert!(s.secrets_version > version);
    assert_eq!(
        s.apply_now(Command::RemoveSecret { name: "db".into() }),
        CommandResult::SecretNotFound { name: "db".into() }
    );
}
