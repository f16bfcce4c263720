use super::*;
use crate::placement::NodeState;
use crate::schedule::tests::TestRng;
use crate::schedule::{active_min, format_utc_minute, Cron, Window};

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
