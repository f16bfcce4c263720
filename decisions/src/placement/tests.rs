use super::*;
use fjord_core::hashing::{preference_order, DEFAULT_LOAD_BOUND_C};
use std::collections::BTreeSet;

fn node(id: &str, memory_mib: u32, cpu_millis: u32, zone: &str) -> PlacementNode {
    PlacementNode {
        info: NodeInfo {
            id: id.into(),
            invoke_addr: format!("{id}:7500"),
            memory_mib,
            cpu_millis,
            zone: zone.into(),
            runtime: "process".into(),
            instance_id: String::new(),
        },
        state: NodeState::Ready,
    }
}

fn spec(name: &str, memory_mib: u32, cpu_millis: u32) -> FunctionSpec {
    let mut spec = FunctionSpec::with_command(name, vec!["run".into()]);
    spec.memory_mib = memory_mib;
    spec.cpu_millis = cpu_millis;
    spec
}

fn demands(specs: &[(FunctionSpec, u32)]) -> Vec<FunctionDemand<'_>> {
    specs
        .iter()
        .map(|(spec, desired)| FunctionDemand {
            spec,
            desired: *desired,
        })
        .collect()
}

fn plan_of(nodes: &[PlacementNode], current: &Placements, specs: &[(FunctionSpec, u32)]) -> PlacementPlan {
    plan(nodes, current, &demands(specs), DEFAULT_LOAD_BOUND_C)
}

fn on(plan: &PlacementPlan, function: &str, node: &str) -> u32 {
    plan.placements
        .get(function)
        .and_then(|m| m.get(node))
        .copied()
        .unwrap_or(0)
}

/// A small seeded generator for the property tests (SplitMix64).
struct TestRng(u64);
impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random cluster: nodes of varied sizes, zones (or none), some draining or down;
/// functions of varied sizes and counts; current placements that may be stale or too big.
fn random_case(rng: &mut TestRng) -> (Vec<PlacementNode>, Placements, Vec<(FunctionSpec, u32)>) {
    let zoned = rng.below(3) > 0;
    let nodes: Vec<PlacementNode> = (0..1 + rng.below(8))
        .map(|i| {
            let zone = if zoned {
                ["a", "b", "c"][rng.below(3) as usize]
            } else {
                ""
            };
            let mut n = node(
                &format!("node-{i}"),
                512 * (1 + rng.below(16) as u32),
                500 * (1 + rng.below(16) as u32),
                zone,
            );
            n.state = match rng.below(10) {
                0 => NodeState::Draining,
                1 => NodeState::Down,
                _ => NodeState::Ready,
            };
            n
        })
        .collect();
    let specs: Vec<(FunctionSpec, u32)> = (0..1 + rng.below(12))
        .map(|f| {
            let s = spec(
                &format!("fn-{f}"),
                64 * (1 + rng.below(24) as u32),
                100 * (1 + rng.below(20) as u32),
            );
            (s, rng.below(9) as u32)
        })
        .collect();
    let mut current = Placements::new();
    for (s, _) in &specs {
        if rng.below(2) == 0 {
            continue;
        }
        let by_node = current.entry(s.name.clone()).or_default();
        for _ in 0..rng.below(5) {
            // Some placements name a node that no longer exists.
            let id = format!("node-{}", rng.below(nodes.len() as u64 + 1));
            *by_node.entry(id).or_default() += 1 + rng.below(3) as u32;
        }
    }
    (nodes, current, specs)
}

/// Free memory and CPU per ready node id after `plan`.
fn free_after(nodes: &[PlacementNode], specs: &[(FunctionSpec, u32)], plan: &PlacementPlan) -> Vec<(usize, i64, i64)> {
    nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let (mut memory, mut cpu) = (i64::from(n.info.memory_mib), i64::from(n.info.cpu_millis));
            for (s, _) in specs {
                let count = i64::from(on(plan, &s.name, &n.info.id));
                memory -= count * i64::from(s.memory_mib);
                cpu -= count * i64::from(s.cpu_millis);
            }
            (k, memory, cpu)
        })
        .collect()
}

/// The rules every plan keeps, checked from the outside.
fn check_plan(
    case: usize,
    nodes: &[PlacementNode],
    current: &Placements,
    specs: &[(FunctionSpec, u32)],
    plan: &PlacementPlan,
) {
    let state: BTreeMap<&str, NodeState> = nodes.iter().map(|n| (n.info.id.as_str(), n.state)).collect();
    // Capacity is never exceeded.
    let free = free_after(nodes, specs, plan);
    for &(k, memory, cpu) in &free {
        assert!(
            memory >= 0 && cpu >= 0,
            "case {case}: {} overcommitted: {plan:?}",
            nodes[k].info.id
        );
    }
    let fits = |s: &FunctionSpec, k: usize| {
        nodes[k].state == NodeState::Ready
            && free[k].1 >= i64::from(s.memory_mib)
            && free[k].2 >= i64::from(s.cpu_millis)
    };
    for (s, desired) in specs {
        let placed = plan.instances_of(&s.name);
        let pending: u32 = plan
            .pending
            .iter()
            .filter(|p| p.function == s.name)
            .map(|p| p.instances)
            .sum();
        // Every desired instance is placed or pending.
        assert_eq!(
            placed + pending,
            *desired,
            "case {case}: {} accounting: {plan:?}",
            s.name
        );
        // Pending only when no ready node has room for one more.
        if pending > 0 {
            assert!(
                !(0..nodes.len()).any(|k| fits(s, k)),
                "case {case}: {} pending with room left: {plan:?}",
                s.name
            );
        }
        for (id, &count) in plan.placements.get(&s.name).into_iter().flatten() {
            assert!(count > 0);
            match state.get(id.as_str()) {
                Some(NodeState::Ready) => {}
                // On a draining node only what was there, and only as held.
                Some(NodeState::Draining) => {
                    let before = current.get(&s.name).and_then(|m| m.get(id)).copied().unwrap_or(0);
                    assert!(count <= before, "case {case}: new instances on draining {id}");
                    let held: u32 = plan
                        .held
                        .iter()
                        .filter(|h| h.function == s.name && &h.node == id)
                        .map(|h| h.instances)
                        .sum();
                    assert_eq!(held, count, "case {case}: {plan:?}");
                }
                other => panic!("case {case}: {} placed on {id} in state {other:?}", s.name),
            }
        }
        // Spread: one node or one zone only when no other has room.
        if *desired >= 2 && placed > 0 {
            let used: Vec<usize> = (0..nodes.len())
                .filter(|&k| on(plan, &s.name, &nodes[k].info.id) > 0)
                .collect();
            if used.len() < 2 {
                assert!(
                    !(0..nodes.len()).any(|k| !used.contains(&k) && fits(s, k)),
                    "case {case}: {} on one node with room elsewhere: {plan:?}",
                    s.name
                );
            }
            let zones: BTreeSet<&str> = used
                .iter()
                .map(|&k| nodes[k].info.zone.as_str())
                .filter(|z| !z.is_empty())
                .collect();
            if zones.len() < 2 {
                assert!(
                    !(0..nodes.len()).any(|k| !nodes[k].info.zone.is_empty()
                        && !zones.contains(nodes[k].info.zone.as_str())
                        && fits(s, k)),
                    "case {case}: {} in one zone with room in another: {plan:?}",
                    s.name
                );
            }
        }
    }
    // Nothing else is placed.
    for function in plan.placements.keys() {
        assert!(
            specs.iter().any(|(s, _)| &s.name == function),
            "case {case}: stray {function}"
        );
    }
    // Moves leave live nodes for ready ones, and match the change in counts.
    for m in &plan.moves {
        assert_ne!(state.get(m.from.as_str()), Some(&NodeState::Down));
        assert_eq!(state.get(m.to.as_str()), Some(&NodeState::Ready), "case {case}: {m:?}");
        let before_to = current
            .get(&m.function)
            .and_then(|b| b.get(&m.to))
            .copied()
            .unwrap_or(0);
        assert!(
            on(plan, &m.function, &m.to) >= before_to + m.instances,
            "case {case}: {m:?}"
        );
        let before_from = current
            .get(&m.function)
            .and_then(|b| b.get(&m.from))
            .copied()
            .unwrap_or(0);
        assert!(
            on(plan, &m.function, &m.from) + m.instances <= before_from,
            "case {case}: {m:?}"
        );
    }
}

#[test]
fn random_clusters_keep_every_rule_and_replanning_changes_nothing() {
    let mut rng = TestRng(2024);
    let mut pending_cases = 0;
    for case in 0..1500 {
        let (nodes, current, specs) = random_case(&mut rng);
        let first = plan_of(&nodes, &current, &specs);
        check_plan(case, &nodes, &current, &specs, &first);
        pending_cases += usize::from(!first.pending.is_empty());
        // A fixpoint: the plan fed back gives itself, with nothing to move.
        let second = plan_of(&nodes, &first.placements, &specs);
        assert_eq!(second.placements, first.placements, "case {case}");
        assert!(second.moves.is_empty(), "case {case}: {:?}", second.moves);
        assert_eq!(second.pending, first.pending, "case {case}");
        // The order of the inputs does not matter.
        let mut shuffled_nodes = nodes.clone();
        shuffled_nodes.reverse();
        let mut shuffled_specs = specs.clone();
        shuffled_specs.reverse();
        assert_eq!(
            plan_of(&shuffled_nodes, &current, &shuffled_specs),
            first,
            "case {case}"
        );
    }
    assert!(pending_cases > 50, "the cases exercise full clusters ({pending_cases})");
}

#[test]
fn a_single_instance_goes_to_the_functions_home_node() {
    let nodes: Vec<PlacementNode> = (0..6).map(|i| node(&format!("n{i}"), 4096, 4000, "")).collect();
    let infos: Vec<NodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    for f in 0..50 {
        let name = format!("fn-{f}");
        let p = plan_of(&nodes, &Placements::new(), &[(spec(&name, 128, 100), 1)]);
        let home = &infos[preference_order(&name, &infos)[0]].id;
        assert_eq!(on(&p, &name, home), 1, "{name}: {p:?}");
    }
}

#[test]
fn two_instances_spread_over_two_nodes_and_two_zones() {
    // Two roomy nodes: without the spread rule both instances would fit on the home node.
    let nodes = vec![node("n0", 8192, 8000, ""), node("n1", 8192, 8000, "")];
    let p = plan_of(&nodes, &Placements::new(), &[(spec("echo", 128, 100), 2)]);
    assert_eq!((on(&p, "echo", "n0"), on(&p, "echo", "n1")), (1, 1), "{p:?}");

    // Three nodes, two in zone a: for every name the two instances land in both zones.
    let nodes = vec![
        node("a1", 8192, 8000, "a"),
        node("a2", 8192, 8000, "a"),
        node("b1", 8192, 8000, "b"),
    ];
    for f in 0..40 {
        let name = format!("fn-{f}");
        let p = plan_of(&nodes, &Placements::new(), &[(spec(&name, 128, 100), 2)]);
        let in_a = on(&p, &name, "a1") + on(&p, &name, "a2");
        assert_eq!((in_a, on(&p, &name, "b1")), (1, 1), "{name}: {p:?}");
    }

    // Zone b has no room: both go to zone a, still on two nodes.
    let nodes = vec![
        node("a1", 8192, 8000, "a"),
        node("a2", 8192, 8000, "a"),
        node("b1", 64, 8000, "b"),
    ];
    let p = plan_of(&nodes, &Placements::new(), &[(spec("echo", 128, 100), 2)]);
    assert_eq!((on(&p, "echo", "a1"), on(&p, "echo", "a2")), (1, 1), "{p:?}");
}

#[test]
fn many_instances_spread_within_the_bound_over_the_functions_order() {
    let nodes: Vec<PlacementNode> = (0..4).map(|i| node(&format!("n{i}"), 65_536, 64_000, "")).collect();
    let p = plan_of(&nodes, &Placements::new(), &[(spec("hot", 128, 100), 40)]);
    // Fair share 10 per node; c = 1.25 allows ceil(1.25 × 40 / 4) = 13.
    for n in &nodes {
        let count = on(&p, "hot", &n.info.id);
        assert!((1..=13).contains(&count), "{p:?}");
    }
}

#[test]
fn pending_when_full_names_the_missing_resource() {
    let one = vec![node("n0", 1024, 8000, "")];
    let p = plan_of(&one, &Placements::new(), &[(spec("echo", 256, 100), 6)]);
    assert_eq!(on(&p, "echo", "n0"), 4);
    assert_eq!(
        p.pending,
        vec![Pending {
            function: "echo".into(),
            instances: 2,
            reason: PendingReason::NoFreeMemory { memory_mib: 256 },
        }]
    );
    assert!(p.pending[0].reason.to_string().contains("256 MiB"));

    let p = plan_of(&one, &Placements::new(), &[(spec("echo", 128, 3000), 3)]);
    assert_eq!(on(&p, "echo", "n0"), 2);
    assert_eq!(p.pending[0].reason, PendingReason::NoFreeCpu { cpu_millis: 3000 });

    let p = plan_of(&one, &Placements::new(), &[(spec("big", 2048, 100), 1)]);
    assert!(p.placements.is_empty());
    assert_eq!(
        p.pending[0].reason,
        PendingReason::LargerThanAnyNode {
            memory_mib: 2048,
            cpu_millis: 100
        }
    );

    // One node short of memory, another short of CPU.
    let two = vec![node("m", 4096, 100, ""), node("c", 100, 8000, "")];
    let p = plan_of(&two, &Placements::new(), &[(spec("echo", 128, 200), 1)]);
    assert_eq!(
        p.pending[0].reason,
        PendingReason::LargerThanAnyNode {
            memory_mib: 128,
            cpu_millis: 200
        }
    );
    let two = vec![node("m", 4096, 300, ""), node("c", 300, 8000, "")];
    let current = Placements::from([("filler".to_string(), BTreeMap::from([("m".to_string(), 1)]))]);
    let p = plan_of(
        &two,
        &current,
        &[(spec("filler", 16, 200), 1), (spec("echo", 256, 200), 2)],
    );
    // filler keeps m's CPU; c has CPU but not the memory after echo's first instance.
    assert_eq!(on(&p, "filler", "m"), 1);
    assert_eq!(on(&p, "echo", "c"), 1);
    assert_eq!(
        p.pending,
        vec![Pending {
            function: "echo".into(),
            instances: 1,
            reason: PendingReason::NoNodeWithBoth {
                memory_mib: 256,
                cpu_millis: 200
            },
        }]
    );

    let mut draining = vec![node("n0", 4096, 4000, ""), node("n1", 4096, 4000, "")];
    draining[0].state = NodeState::Draining;
    draining[1].state = NodeState::Down;
    let p = plan_of(&draining, &Placements::new(), &[(spec("echo", 128, 100), 1)]);
    assert_eq!(p.pending[0].reason, PendingReason::NoReadyNode { draining: 1, down: 1 });
}

/// A stable plan for a few functions over `nodes`.
fn settled(nodes: &[PlacementNode], specs: &[(FunctionSpec, u32)]) -> PlacementPlan {
    let p = plan_of(nodes, &Placements::new(), specs);
    assert!(p.pending.is_empty(), "{p:?}");
    p
}

fn some_functions() -> Vec<(FunctionSpec, u32)> {
    (0..12)
        .map(|f| (spec(&format!("fn-{f}"), 128, 100), 1 + f % 4))
        .collect()
}

#[test]
fn instances_of_a_down_node_are_placed_again_and_nothing_else_moves() {
    let mut nodes: Vec<PlacementNode> = (0..4).map(|i| node(&format!("n{i}"), 8192, 8000, "")).collect();
    let specs = some_functions();
    let before = settled(&nodes, &specs);
    let lost: u32 = before.placements.values().filter_map(|m| m.get("n2")).sum();
    assert!(lost > 0, "the test needs instances on n2");
    nodes[2].state = NodeState::Down;
    let after = plan_of(&nodes, &before.placements, &specs);
    check_plan(0, &nodes, &before.placements, &specs, &after);
    assert!(after.pending.is_empty() && after.moves.is_empty(), "{after:?}");
    for (s, desired) in &specs {
        assert_eq!(after.instances_of(&s.name), *desired);
        assert_eq!(on(&after, &s.name, "n2"), 0);
        for id in ["n0", "n1", "n3"] {
            assert!(
                on(&after, &s.name, id) >= on(&before, &s.name, id),
                "survivors keep theirs"
            );
        }
    }
}

#[test]
fn a_drain_moves_everything_off_the_node_starting_new_ones_first() {
    let mut nodes: Vec<PlacementNode> = (0..4)
        .map(|i| node(&format!("n{i}"), 8192, 8000, ["a", "b"][i % 2]))
        .collect();
    let specs = some_functions();
    let before = settled(&nodes, &specs);
    let on_n1: BTreeMap<&str, u32> = before
        .placements
        .iter()
        .filter_map(|(f, m)| m.get("n1").map(|&c| (f.as_str(), c)))
        .collect();
    assert!(!on_n1.is_empty());
    nodes[1].state = NodeState::Draining;
    let after = plan_of(&nodes, &before.placements, &specs);
    check_plan(0, &nodes, &before.placements, &specs, &after);
    assert!(after.placements.values().all(|m| !m.contains_key("n1")), "{after:?}");
    assert!(after.held.is_empty() && after.pending.is_empty());
    // Each instance on n1 has a move to a ready node.
    let mut moved: BTreeMap<&str, u32> = BTreeMap::new();
    for m in &after.moves {
        assert_eq!(m.from, "n1", "{m:?}");
        *moved.entry(m.function.as_str()).or_default() += m.instances;
    }
    assert_eq!(moved, on_n1);
    // Once the moves are done, the plan stands.
    let again = plan_of(&nodes, &after.placements, &specs);
    assert_eq!(again.placements, after.placements);
    assert!(again.moves.is_empty());
}

#[test]
fn a_drain_without_room_elsewhere_holds_instances_in_place() {
    let mut nodes = vec![node("n0", 512, 8000, ""), node("n1", 512, 8000, "")];
    let specs = vec![(spec("echo", 256, 100), 3)];
    let before = settled(&nodes, &specs);
    let on_n0 = on(&before, "echo", "n0");
    nodes[0].state = NodeState::Draining;
    let after = plan_of(&nodes, &before.placements, &specs);
    check_plan(0, &nodes, &before.placements, &specs, &after);
    // n1 takes two; the rest stays on n0 until room appears.
    assert_eq!(on(&after, "echo", "n1"), 2);
    assert_eq!(on(&after, "echo", "n0"), 1);
    assert_eq!(after.held.len(), 1);
    assert_eq!((after.held[0].node.as_str(), after.held[0].instances), ("n0", 1));
    assert_eq!(after.held[0].reason, PendingReason::NoFreeMemory { memory_mib: 256 });
    let moved: u32 = after.moves.iter().map(|m| m.instances).sum();
    assert_eq!(moved, 2 - on(&before, "echo", "n1"));
    assert_eq!(moved + 1, on_n0);
}

#[test]
fn adding_a_node_moves_only_what_the_spread_rule_asks_for() {
    let mut rng = TestRng(99);
    for case in 0..300 {
        let n = 2 + rng.below(6) as usize;
        let mut nodes: Vec<PlacementNode> = (0..n)
            .map(|i| node(&format!("n{i}"), 2048 * (1 + rng.below(4) as u32), 16_000, ""))
            .collect();
        let specs: Vec<(FunctionSpec, u32)> = (0..1 + rng.below(20))
            .map(|f| {
                (
                    spec(&format!("fn-{case}-{f}"), 128 * (1 + rng.below(4) as u32), 100),
                    1 + rng.below(5) as u32,
                )
            })
            .collect();
        let before = plan_of(&nodes, &Placements::new(), &specs);
        // Functions that sit on a single node with desired ≥ 2: the new node may take one
        // instance of each, nothing else moves.
        let crowded = specs
            .iter()
            .filter(|(s, d)| *d >= 2 && before.placements.get(&s.name).is_some_and(|m| m.len() < 2))
            .count() as u32;
        nodes.push(node("joined", 8192, 16_000, ""));
        let after = plan_of(&nodes, &before.placements, &specs);
        check_plan(case, &nodes, &before.placements, &specs, &after);
        let mut stopped = 0;
        for (f, by_node) in &before.placements {
            for (id, &count) in by_node {
                stopped += count.saturating_sub(after.placements.get(f).and_then(|m| m.get(id)).copied().unwrap_or(0));
            }
        }
        assert!(stopped <= crowded, "case {case}: {stopped} moved, {crowded} crowded");
        let moved: u32 = after.moves.iter().map(|m| m.instances).sum();
        assert_eq!(moved, stopped, "case {case}");
        assert!(
            after.moves.iter().all(|m| m.to == "joined"),
            "case {case}: {:?}",
            after.moves
        );
    }
}

#[test]
fn a_function_crowded_on_one_node_moves_one_instance_when_a_node_joins() {
    let mut nodes = vec![node("n0", 8192, 8000, "")];
    let specs = vec![(spec("echo", 128, 100), 3)];
    let before = settled(&nodes, &specs);
    assert_eq!(on(&before, "echo", "n0"), 3);
    nodes.push(node("n1", 8192, 8000, ""));
    let after = plan_of(&nodes, &before.placements, &specs);
    assert_eq!((on(&after, "echo", "n0"), on(&after, "echo", "n1")), (2, 1));
    assert_eq!(
        after.moves,
        vec![Move {
            function: "echo".into(),
            from: "n0".into(),
            to: "n1".into(),
            instances: 1,
        }]
    );
}

#[test]
fn scaling_down_keeps_spread_and_stops_the_surplus_only() {
    let nodes = vec![
        node("a1", 8192, 8000, "a"),
        node("a2", 8192, 8000, "a"),
        node("b1", 8192, 8000, "b"),
    ];
    // Whatever the function's hashing order: a1 (most instances) gives up first, then zone a
    // (most instances), so b1 keeps its one and nothing has to move to restore the spread.
    for f in 0..30 {
        let name = format!("fn-{f}");
        let current = Placements::from([(
            name.clone(),
            BTreeMap::from([("a1".to_string(), 3), ("a2".to_string(), 1), ("b1".to_string(), 1)]),
        )]);
        let p = plan_of(&nodes, &current, &[(spec(&name, 128, 100), 2)]);
        assert_eq!(on(&p, &name, "b1"), 1, "{p:?}");
        assert_eq!(on(&p, &name, "a1") + on(&p, &name, "a2"), 1);
        assert!(p.moves.is_empty(), "{p:?}");
    }
    let current = Placements::from([("echo".to_string(), BTreeMap::from([("a1".to_string(), 2)]))]);
    // A function no longer wanted is not placed.
    let p = plan_of(&nodes, &current, &[]);
    assert_eq!(p, PlacementPlan::default());
}

#[test]
fn instances_that_no_longer_fit_are_placed_again() {
    // The spec grew: n0 holds 2 of the new size, not 4; the other 2 go to n1.
    let nodes = vec![node("n0", 1024, 8000, ""), node("n1", 4096, 8000, "")];
    let current = Placements::from([("echo".to_string(), BTreeMap::from([("n0".to_string(), 4)]))]);
    let specs = vec![(spec("echo", 512, 100), 4)];
    let p = plan_of(&nodes, &current, &specs);
    check_plan(0, &nodes, &current, &specs, &p);
    assert_eq!((on(&p, "echo", "n0"), on(&p, "echo", "n1")), (2, 2));
    assert_eq!(p.moves.iter().map(|m| m.instances).sum::<u32>(), 2);
}
