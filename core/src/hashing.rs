//! Consistent hashing: for a function name, a deterministic preference order over nodes.
//!
//! The order is weighted rendezvous hashing (highest random weight): each node scores
//! `-weight / ln(u)` where `u` in (0, 1) comes from a stable hash of (function, node), and nodes
//! are tried from the highest score down. Every process that sees the same node set computes the
//! same order, so the scheduler places a function's instances where every lb sends its requests,
//! and adding or removing one of N nodes moves only the names whose top choice it was, about 1/N.
//! A node of weight 2 is first for about twice as many names as a node of weight 1.
//!
//! The hash is FNV-1a over the bytes followed by a SplitMix64 finalizer: fixed, documented, and
//! the same on every platform and in every build (never `std`'s randomly keyed hasher).
//!
//! **Bounded loads** (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
//! Loads"): [`bounded_load_pick`] walks the same order but passes over every node that has no room
//! under its bound, `ceil(c × (total_load + 1) × weight / total_weight)`, where the `+ 1` is the
//! request (or instance) being placed. A node has room while its load is below its bound, so
//! after the placement no node exceeds it; with `c ≥ 1` some node always has room. Loads are
//! whatever the caller places: requests in flight for the lb, instances for the scheduler. A hot
//! function thus spills to its own second choice, and since every name's second choice is
//! independent of every other name's, the overflow of a busy node spreads over all the others
//! instead of cascading onto one neighbour as it would on a ring.

/// A node as the hashing sees it.
pub trait HashNode {
    fn hash_id(&self) -> &str;
    /// Relative capacity; 0 is treated as 1.
    fn hash_weight(&self) -> u32 {
        1
    }
}

impl HashNode for &str {
    fn hash_id(&self) -> &str {
        self
    }
}

impl HashNode for String {
    fn hash_id(&self) -> &str {
        self
    }
}

/// The stable 64-bit hash of `key` and `node`.
pub fn stable_hash(key: &str, node: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in key.as_bytes().iter().chain([0xffu8].iter()).chain(node.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finalizer: FNV alone mixes the last bytes poorly.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The score of `node` for `key`; higher is preferred.
pub fn rendezvous_score(key: &str, node: &str, weight: u32) -> f64 {
    let h = stable_hash(key, node);
    // 53 random bits as a float strictly inside (0, 1).
    let unit = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight.max(1)) / unit.ln()
}

/// Indexes into `nodes`, most preferred first, for the function `key`.
pub fn preference_order<N: HashNode>(key: &str, nodes: &[N]) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (rendezvous_score(key, n.hash_id(), n.hash_weight()), i))
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| nodes[a.1].hash_id().cmp(nodes[b.1].hash_id()))
    });
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The default load bound factor `c`: a node takes a new request while its load stays within 25%
/// above its weighted share of the total.
pub const DEFAULT_LOAD_BOUND_C: f64 = 1.25;

/// The most a node of `weight` may carry when `total_load` (counting the request or instance being
/// placed) is spread over nodes whose weights sum to `total_weight`:
/// `ceil(c × total_load × weight / total_weight)`. Weights of 0 count as 1, as in the hashing.
/// A `c` that is not a positive number gives a bound of 0 (no node has room).
pub fn load_bound(c: f64, total_load: u64, weight: u32, total_weight: u64) -> u64 {
    let share = c * total_load as f64 * f64::from(weight.max(1)) / total_weight.max(1) as f64;
    // `as` saturates: NaN and negatives become 0, infinity becomes u64::MAX.
    share.ceil() as u64
}

/// The bounds of one node set at one moment: which nodes may take one more.
struct LoadBounds<'a> {
    weights: Vec<u32>,
    loads: &'a [u32],
    total_load_after: u64,
    total_weight: u64,
    c: f64,
}

impl<'a> LoadBounds<'a> {
    fn new<N: HashNode>(nodes: &[N], loads: &'a [u32], c: f64) -> Self {
        assert_eq!(nodes.len(), loads.len(), "bounded loads need exactly one load per node");
        let weights: Vec<u32> = nodes.iter().map(|n| n.hash_weight().max(1)).collect();
        Self {
            total_weight: weights.iter().map(|&w| u64::from(w)).sum(),
            total_load_after: loads.iter().map(|&l| u64::from(l)).sum::<u64>() + 1,
            weights,
            loads,
            c,
        }
    }

    /// Whether node `i` stays within its bound after taking one more.
    fn has_room(&self, i: usize) -> bool {
        u64::from(self.loads[i]) < load_bound(self.c, self.total_load_after, self.weights[i], self.total_weight)
    }

    /// Whether node `a` carries less than node `b` relative to their weights (exact, in integers).
    fn relative_load_cmp(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let load_a = u64::from(self.loads[a]) * u64::from(self.weights[b]);
        let load_b = u64::from(self.loads[b]) * u64::from(self.weights[a]);
        load_a.cmp(&load_b)
    }
}

/// The node for one more request (or instance) of `key`: the first node in [`preference_order`]
/// that has room under its load bound, `loads[i]` being the current load of `nodes[i]` and `c`
/// the bound factor ([`DEFAULT_LOAD_BOUND_C`] unless configured). `None` only when `nodes` is
/// empty. If no node has room, which cannot happen when `c ≥ 1`, the node least loaded relative to
/// its weight (ties in hashing order). Always the first entry of [`bounded_load_order`].
///
/// Costs one score per node and no allocation in the usual case, so the lb can call it per
/// request.
///
/// # Panics
/// If `loads` and `nodes` differ in length.
pub fn bounded_load_pick<N: HashNode>(key: &str, nodes: &[N], loads: &[u32], c: f64) -> Option<usize> {
    let bounds = LoadBounds::new(nodes, loads, c);
    // The first node with room in preference order is the best-scored node with room.
    let mut best: Option<(f64, usize)> = None;
    for (i, node) in nodes.iter().enumerate() {
        if !bounds.has_room(i) {
            continue;
        }
        let score = rendezvous_score(key, node.hash_id(), node.hash_weight());
        let better = match best {
            None => true,
            Some((best_score, b)) => score
                .total_cmp(&best_score)
                .then_with(|| nodes[b].hash_id().cmp(node.hash_id()))
                .is_gt(),
        };
        if better {
            best = Some((score, i));
        }
    }
    match best {
        Some((_, i)) => Some(i),
        None => bounded_load_order(key, nodes, loads, c).first().copied(),
    }
}

/// Every node, in the order to try them for one more request (or instance) of `key`: the nodes
/// with room under their bound first, then those without, each group in [`preference_order`].
/// This is the order for retries and spill: a node that refuses (busy, no memory) is followed by
/// the next one here. If no node has room (only possible when `c < 1`), all nodes by load
/// relative to weight, least first, ties in hashing order.
///
/// # Panics
/// If `loads` and `nodes` differ in length.
pub fn bounded_load_order<N: HashNode>(key: &str, nodes: &[N], loads: &[u32], c: f64) -> Vec<usize> {
    let bounds = LoadBounds::new(nodes, loads, c);
    let (mut order, over): (Vec<usize>, Vec<usize>) = preference_order(key, nodes)
        .into_iter()
        .partition(|&i| bounds.has_room(i));
    if order.is_empty() {
        let mut all = over;
        // Stable: equal relative loads keep hashing order.
        all.sort_by(|&a, &b| bounds.relative_load_cmp(a, b));
        return all;
    }
    order.extend(over);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Weighted(String, u32);
    impl HashNode for Weighted {
        fn hash_id(&self) -> &str {
            &self.0
        }
        fn hash_weight(&self) -> u32 {
            self.1
        }
    }

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn hash_is_fixed_across_builds_and_processes() {
        // Golden values: a change here means lbs and schedulers of different builds disagree.
        // They were computed by an independent implementation of the same definition.
        assert_eq!(stable_hash("echo", "node-0"), 0x22ec_e375_4c96_8bed);
        assert_eq!(stable_hash("", ""), 0x4f2d_b50f_1240_40cd);
        assert_ne!(stable_hash("ab", "c"), stable_hash("a", "bc"));
    }

    #[test]
    fn order_is_a_permutation_and_independent_of_input_order() {
        let a = nodes(7);
        let mut b = a.clone();
        b.reverse();
        for key in ["echo", "sleep", "x", ""] {
            let oa: Vec<&str> = preference_order(key, &a).into_iter().map(|i| a[i].as_str()).collect();
            let ob: Vec<&str> = preference_order(key, &b).into_iter().map(|i| b[i].as_str()).collect();
            assert_eq!(oa, ob);
            let mut sorted = oa.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), a.len());
        }
    }

    #[test]
    fn removing_one_of_n_nodes_moves_about_one_nth_of_names() {
        let n = 10;
        let all = nodes(n);
        let fewer: Vec<String> = all[..n - 1].to_vec();
        let names: Vec<String> = (0..20_000).map(|i| format!("fn-{i}")).collect();
        let moved = names
            .iter()
            .filter(|name| {
                let before = &all[preference_order(name, &all)[0]];
                let after = &fewer[preference_order(name, &fewer)[0]];
                before != after
            })
            .count();
        let fraction = moved as f64 / names.len() as f64;
        // Exactly the names whose home was the removed node move: expected 1/10.
        assert!((0.08..0.12).contains(&fraction), "moved {fraction}");
        // And every moved name had the removed node as its home.
        for name in &names {
            let before = &all[preference_order(name, &all)[0]];
            let after = &fewer[preference_order(name, &fewer)[0]];
            if before != after {
                assert_eq!(before, &all[n - 1]);
            }
        }
    }

    #[test]
    fn homes_are_spread_evenly_and_follow_weights() {
        let even: Vec<Weighted> = (0..4).map(|i| Weighted(format!("n{i}"), 1)).collect();
        let mut counts = [0usize; 4];
        for i in 0..40_000 {
            counts[preference_order(&format!("f{i}"), &even)[0]] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        let weighted = vec![Weighted("big".into(), 2), Weighted("small".into(), 1)];
        let big = (0..30_000)
            .filter(|i| preference_order(&format!("f{i}"), &weighted)[0] == 0)
            .count();
        let share = big as f64 / 30_000.0;
        assert!((0.63..0.70).contains(&share), "big node share {share}");
    }

    #[test]
    fn empty_node_set_gives_empty_order() {
        assert!(preference_order::<String>("echo", &[]).is_empty());
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

    fn weighted_nodes(rng: &mut TestRng, n: usize, max_weight: u64) -> Vec<Weighted> {
        (0..n)
            .map(|i| Weighted(format!("node-{i}"), 1 + rng.below(max_weight) as u32))
            .collect()
    }

    fn bound_of(nodes: &[Weighted], loads: &[u32], i: usize, c: f64) -> u64 {
        let total_load: u64 = loads.iter().map(|&l| u64::from(l)).sum();
        let total_weight: u64 = nodes.iter().map(|n| u64::from(n.1.max(1))).sum();
        load_bound(c, total_load, nodes[i].1, total_weight)
    }

    #[test]
    fn load_bound_matches_the_formula_on_hand_values() {
        // ceil(1.25 × 8 × 1 / 4) = ceil(2.5) = 3
        assert_eq!(load_bound(1.25, 8, 1, 4), 3);
        // ceil(1.0 × 1000 × 3 / 10) = 300 exactly, no rounding up
        assert_eq!(load_bound(1.0, 1000, 3, 10), 300);
        // ceil(1.25 × 1 × 1 / 10) = 1: an idle cluster takes a first request anywhere
        assert_eq!(load_bound(1.25, 1, 1, 10), 1);
        // weight 0 counts as 1
        assert_eq!(load_bound(2.0, 10, 0, 5), 4);
        assert_eq!(load_bound(f64::NAN, 10, 1, 1), 0);
    }

    #[test]
    fn pick_skips_the_home_node_when_it_is_over_its_bound() {
        let nodes = nodes(3);
        let order = preference_order("echo", &nodes);
        let mut loads = vec![0u32; 3];
        assert_eq!(bounded_load_pick("echo", &nodes, &loads, 1.25), Some(order[0]));
        // Home carries 5 of 5: bound = ceil(1.25 × 6 / 3) = 3, so the second choice takes it.
        loads[order[0]] = 5;
        assert_eq!(bounded_load_pick("echo", &nodes, &loads, 1.25), Some(order[1]));
        assert_eq!(
            bounded_load_order("echo", &nodes, &loads, 1.25),
            vec![order[1], order[2], order[0]]
        );
        // Home at 2 of 2: bound = ceil(1.25 × 3 / 3) = 2, no room; at 1 of 1, ceil(1.25 × 2 / 3) = 1.
        loads[order[0]] = 2;
        assert_eq!(bounded_load_pick("echo", &nodes, &loads, 1.25), Some(order[1]));
        loads[order[0]] = 1;
        assert_eq!(bounded_load_pick("echo", &nodes, &loads, 1.25), Some(order[1]));
        // With more load elsewhere the home has room again: total 7, bound = ceil(1.25 × 8 / 3) = 4.
        loads[order[0]] = 3;
        loads[order[1]] = 2;
        loads[order[2]] = 2;
        assert_eq!(bounded_load_pick("echo", &nodes, &loads, 1.25), Some(order[0]));
    }

    #[test]
    fn empty_node_set_gives_no_pick() {
        assert_eq!(
            bounded_load_pick::<String>("echo", &[], &[], DEFAULT_LOAD_BOUND_C),
            None
        );
        assert!(bounded_load_order::<String>("echo", &[], &[], DEFAULT_LOAD_BOUND_C).is_empty());
    }

    #[test]
    #[should_panic(expected = "one load per node")]
    fn loads_must_match_nodes() {
        bounded_load_pick("echo", &nodes(3), &[0, 0], DEFAULT_LOAD_BOUND_C);
    }

    #[test]
    fn below_one_c_falls_back_to_least_loaded_relative_to_weight() {
        let nodes = vec![
            Weighted("a".into(), 1),
            Weighted("b".into(), 4),
            Weighted("c".into(), 2),
        ];
        // c = 0.1: every bound is ceil(0.1 × 8 × w / 7) = 1, and every node carries at least that.
        let loads = [2u32, 4, 1];
        for (node, &load) in nodes.iter().zip(&loads) {
            assert!(u64::from(load) >= load_bound(0.1, 8, node.1, 7), "no node has room");
        }
        // Relative loads: a 2/1, b 4/4 = 1, c 1/2: c, then b, then a.
        assert_eq!(bounded_load_order("k", &nodes, &loads, 0.1), vec![2, 1, 0]);
        assert_eq!(bounded_load_pick("k", &nodes, &loads, 0.1), Some(2));
        // Equal relative loads keep hashing order.
        let even = [1u32, 4, 2];
        let order = preference_order("k", &nodes);
        assert_eq!(bounded_load_order("k", &nodes, &even, 0.1), order);
        assert_eq!(bounded_load_pick("k", &nodes, &even, 0.1), Some(order[0]));
    }

    #[test]
    fn the_bound_holds_at_every_step_of_a_stream_of_arrivals() {
        let mut rng = TestRng(7);
        for case in 0..300 {
            let n = 1 + rng.below(12) as usize;
            let nodes = weighted_nodes(&mut rng, n, if case % 2 == 0 { 1 } else { 5 });
            let c = [1.0, 1.05, 1.25, 1.5, 2.0][case % 5];
            // A skewed key population: a few hot names take most requests.
            let keys: Vec<String> = (0..1 + rng.below(30)).map(|k| format!("f{case}-{k}")).collect();
            let mut loads = vec![0u32; n];
            for _ in 0..400 {
                let key =
                    &keys[(rng.below(keys.len() as u64) * rng.below(keys.len() as u64) / keys.len() as u64) as usize];
                let i = bounded_load_pick(key, &nodes, &loads, c).expect("nodes are not empty");
                loads[i] += 1;
                for j in 0..n {
                    let bound = bound_of(&nodes, &loads, j, c);
                    assert!(
                        u64::from(loads[j]) <= bound,
                        "case {case}: node {j} carries {} over its bound {bound} (loads {loads:?}, c {c})",
                        loads[j]
                    );
                }
            }
        }
    }

    #[test]
    fn with_arrivals_and_departures_every_pick_has_room() {
        let mut rng = TestRng(11);
        for case in 0..200 {
            let n = 1 + rng.below(10) as usize;
            let nodes = weighted_nodes(&mut rng, n, 4);
            let c = [1.0, 1.25, 1.5][case % 3];
            let mut loads = vec![0u32; n];
            for step in 0..500 {
                let busy: Vec<usize> = (0..n).filter(|&j| loads[j] > 0).collect();
                if !busy.is_empty() && rng.below(100) < 45 {
                    loads[busy[rng.below(busy.len() as u64) as usize]] -= 1;
                    continue;
                }
                let key = format!("f{}", rng.below(8));
                let i = bounded_load_pick(&key, &nodes, &loads, c).unwrap();
                let mut after = loads.clone();
                after[i] += 1;
                let bound = bound_of(&nodes, &after, i, c);
                assert!(
                    u64::from(after[i]) <= bound,
                    "case {case} step {step}: picked a node without room"
                );
                // The pick is the first node of the order, and the order skips no node with room.
                let order = bounded_load_order(&key, &nodes, &loads, c);
                assert_eq!(order[0], i);
                let preferred_with_room = preference_order(&key, &nodes).into_iter().find(|&j| {
                    let mut with = loads.clone();
                    with[j] += 1;
                    u64::from(with[j]) <= bound_of(&nodes, &with, j, c)
                });
                assert_eq!(preferred_with_room, Some(i));
                loads = after;
            }
        }
    }

    #[test]
    fn a_single_hot_name_fills_nodes_in_proportion_to_weight() {
        let nodes = vec![
            Weighted("w1".into(), 1),
            Weighted("w2".into(), 2),
            Weighted("w3".into(), 3),
            Weighted("w4".into(), 4),
        ];
        let mut loads = vec![0u32; 4];
        for _ in 0..1000 {
            let i = bounded_load_pick("hot", &nodes, &loads, 1.0).unwrap();
            loads[i] += 1;
        }
        // With c = 1 the bounds at a total of 1000 are exactly 100, 200, 300, 400 and sum to 1000.
        assert_eq!(loads, vec![100, 200, 300, 400]);
        // With c = 1.25 the home fills to its bound and the rest keep to theirs.
        let mut loads = vec![0u32; 4];
        for _ in 0..1000 {
            let i = bounded_load_pick("hot", &nodes, &loads, 1.25).unwrap();
            loads[i] += 1;
        }
        let home = preference_order("hot", &nodes)[0];
        assert_eq!(u64::from(loads[home]), load_bound(1.25, 1000, nodes[home].1, 10));
        for (i, &l) in loads.iter().enumerate() {
            assert!(u64::from(l) <= load_bound(1.25, 1000, nodes[i].1, 10), "{loads:?}");
        }
    }

    #[test]
    fn at_zero_load_the_pick_is_the_home_and_follows_weights() {
        let weighted = vec![Weighted("big".into(), 2), Weighted("small".into(), 1)];
        let mut big = 0u32;
        for i in 0..30_000 {
            let key = format!("f{i}");
            let pick = bounded_load_pick(&key, &weighted, &[0, 0], DEFAULT_LOAD_BOUND_C).unwrap();
            assert_eq!(pick, preference_order(&key, &weighted)[0]);
            big += u32::from(pick == 0);
        }
        let share = f64::from(big) / 30_000.0;
        assert!((0.63..0.70).contains(&share), "big node share {share}");
    }

    #[test]
    fn pick_and_order_do_not_depend_on_the_order_nodes_are_given_in() {
        let mut rng = TestRng(3);
        for case in 0..200 {
            let n = 1 + rng.below(9) as usize;
            let nodes = weighted_nodes(&mut rng, n, 3);
            let loads: Vec<u32> = (0..n).map(|_| rng.below(6) as u32).collect();
            // The same nodes, with their loads, in a shuffled order.
            let mut perm: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                perm.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let shuffled: Vec<Weighted> = perm.iter().map(|&i| Weighted(nodes[i].0.clone(), nodes[i].1)).collect();
            let shuffled_loads: Vec<u32> = perm.iter().map(|&i| loads[i]).collect();
            let key = format!("fn-{case}");
            for c in [0.5, 1.0, 1.25] {
                let a = bounded_load_pick(&key, &nodes, &loads, c).map(|i| nodes[i].0.clone());
                let b = bounded_load_pick(&key, &shuffled, &shuffled_loads, c).map(|i| shuffled[i].0.clone());
                assert_eq!(a, b);
                assert_eq!(
                    a,
                    bounded_load_pick(&key, &nodes, &loads, c).map(|i| nodes[i].0.clone())
                );
                let oa: Vec<&str> = bounded_load_order(&key, &nodes, &loads, c)
                    .into_iter()
                    .map(|i| nodes[i].0.as_str())
                    .collect();
                let ob: Vec<&str> = bounded_load_order(&key, &shuffled, &shuffled_loads, c)
                    .into_iter()
                    .map(|i| shuffled[i].0.as_str())
                    .collect();
                assert_eq!(oa, ob);
                assert_eq!(oa.len(), n);
            }
        }
    }

    #[test]
    fn order_puts_nodes_with_room_first_each_group_in_hashing_order() {
        let mut rng = TestRng(5);
        for case in 0..300 {
            let n = 2 + rng.below(8) as usize;
            let nodes = weighted_nodes(&mut rng, n, 3);
            let loads: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
            let key = format!("k{case}");
            let c = 1.25;
            let order = bounded_load_order(&key, &nodes, &loads, c);
            let has_room = |j: usize| {
                let mut with = loads.clone();
                with[j] += 1;
                u64::from(with[j]) <= bound_of(&nodes, &with, j, c)
            };
            let rank: Vec<usize> = {
                let pref = preference_order(&key, &nodes);
                let mut rank = vec![0; n];
                for (r, &i) in pref.iter().enumerate() {
                    rank[i] = r;
                }
                rank
            };
            let split = order.iter().position(|&i| !has_room(i)).unwrap_or(n);
            assert!(split > 0, "with c ≥ 1 some node has room");
            assert!(order[split..].iter().all(|&i| !has_room(i)));
            assert!(order[..split].windows(2).all(|w| rank[w[0]] < rank[w[1]]));
            assert!(order[split..].windows(2).all(|w| rank[w[0]] < rank[w[1]]));
            assert_eq!(bounded_load_pick(&key, &nodes, &loads, c), Some(order[0]));
        }
    }

    #[test]
    fn overflow_from_one_node_spreads_over_all_others() {
        // Node 0 is saturated; the names that live there must overflow to their own second
        // choices, which rendezvous hashing draws independently per name: every other node takes
        // a fair share, none takes it all (a ring would hand all of it to node 0's successor).
        let n = 10;
        let all = nodes(n);
        let hot: Vec<String> = (0..50_000)
            .map(|i| format!("hot-{i}"))
            .filter(|name| preference_order(name, &all)[0] == 0)
            .take(900)
            .collect();
        assert_eq!(hot.len(), 900);
        let mut loads = vec![0u32; n];
        loads[0] = 100;
        let mut overflow = vec![0usize; n];
        for name in &hot {
            let i = bounded_load_pick(name, &all, &loads, DEFAULT_LOAD_BOUND_C).unwrap();
            assert_ne!(i, 0, "node 0 is over its bound");
            overflow[i] += 1;
        }
        // Expected 100 per node (900 / 9): each within 60..140.
        for (i, &count) in overflow.iter().enumerate().skip(1) {
            assert!(
                (60..140).contains(&count),
                "node {i} took {count} of the overflow: {overflow:?}"
            );
        }

        // The same with loads updated as the hot names pile in: the bound holds, and the
        // overflow is shared by all nodes.
        let mut loads = vec![0u32; n];
        for name in hot.iter().cycle().take(3000) {
            let i = bounded_load_pick(name, &all, &loads, DEFAULT_LOAD_BOUND_C).unwrap();
            loads[i] += 1;
        }
        let bound = load_bound(DEFAULT_LOAD_BOUND_C, 3000, 1, 10);
        assert_eq!(u64::from(loads[0]), bound, "home fills to its bound: {loads:?}");
        let min_other = loads[1..].iter().min().unwrap();
        let max_other = loads[1..].iter().max().unwrap();
        assert!(*min_other > 200 && u64::from(*max_other) <= bound, "{loads:?}");
    }

    #[test]
    fn bounded_pick_at_zero_load_moves_about_one_nth_of_names() {
        let n = 10;
        let all = nodes(n);
        let fewer: Vec<String> = all[..n - 1].to_vec();
        let more: Vec<String> = nodes(n + 1);
        let names: Vec<String> = (0..20_000).map(|i| format!("fn-{i}")).collect();
        let home = |name: &str, set: &[String]| {
            let i = bounded_load_pick(name, set, &vec![0; set.len()], DEFAULT_LOAD_BOUND_C).unwrap();
            set[i].clone()
        };
        let (mut left, mut joined) = (0, 0);
        for name in &names {
            let before = home(name, &all);
            let after_leave = home(name, &fewer);
            if before != after_leave {
                assert_eq!(before, all[n - 1], "only names homed on the leaving node move");
                left += 1;
            }
            let after_join = home(name, &more);
            if before != after_join {
                assert_eq!(after_join, more[n], "names move only onto the joining node");
                joined += 1;
            }
        }
        let left = f64::from(left) / names.len() as f64;
        let joined = f64::from(joined) / names.len() as f64;
        assert!((0.08..0.12).contains(&left), "leave moved {left}");
        assert!((0.07..0.11).contains(&joined), "join moved {joined} (expected 1/11)");
    }
}
