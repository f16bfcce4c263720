//! Routing policies: for one call, the order in which to try the nodes. A node that cannot take
//! the call (no memory even after evicting idle instances) passes it to the next in this order.

use fjord_core::hashing::{bounded_load_order, load_bound, stable_hash};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A way to choose nodes for a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoutingPolicy {
    /// Fjord's: rendezvous hashing with bounded loads over calls in flight (`fjord_core::hashing`).
    Fjord { c: f64 },
    /// Fjord's order with the nodes that have an idle instance of the function and room under
    /// their bound moved first (each group keeps its order), as the lb prefers nodes reporting
    /// warm instances. The simulator knows idle instances exactly: an upper bound on what
    /// heartbeats tell an lb.
    FjordWarm { c: f64 },
    /// The next node in turn for every call, whatever the function.
    RoundRobin,
    /// A random node (seeded), then the others in random order.
    Random,
    /// The node with the fewest calls in flight (ties: lowest index).
    LeastLoaded,
    /// Apache OpenWhisk's sharding balancer: home = hash(function) mod N, then steps of a stride
    /// co-prime to N chosen by the hash, so overflow from one home does not all land on one
    /// neighbour.
    OpenWhisk,
}

impl RoutingPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            RoutingPolicy::Fjord { .. } => "fjord",
            RoutingPolicy::FjordWarm { .. } => "fjord-warm",
            RoutingPolicy::RoundRobin => "round-robin",
            RoutingPolicy::Random => "random",
            RoutingPolicy::LeastLoaded => "least-loaded",
            RoutingPolicy::OpenWhisk => "openwhisk",
        }
    }
}

/// OpenWhisk's home node for a function hash: `hash mod nodes`.
pub fn openwhisk_home(function_hash: u64, nodes: usize) -> usize {
    (function_hash % nodes as u64) as usize
}

/// The hash OpenWhisk's scheme uses here for a function name (any fixed hash would do).
pub fn function_hash(name: &str) -> u64 {
    stable_hash(name, "")
}

/// Numbers in 1..=n co-prime to n and to each other, as OpenWhisk picks its step sizes.
pub fn pairwise_coprime_strides(n: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut strides: Vec<usize> = Vec::new();
    for s in 1..=n.max(1) {
        if gcd(s, n) == 1 && strides.iter().all(|&t| gcd(s, t) == 1) {
            strides.push(s);
        }
    }
    strides
}

/// Chooses node orders for calls, keeping whatever state its policy needs.
pub struct Router {
    policy: RoutingPolicy,
    node_ids: Vec<String>,
    next_in_turn: usize,
    rng: StdRng,
    strides: Vec<usize>,
}

impl Router {
    pub fn new(policy: RoutingPolicy, node_ids: Vec<String>, seed: u64) -> Self {
        let strides = pairwise_coprime_strides(node_ids.len());
        Self {
            policy,
            node_ids,
            next_in_turn: 0,
            rng: StdRng::seed_from_u64(seed),
            strides,
        }
    }

    /// Writes into `order` the nodes to try for a call of `function` (whose [`function_hash`] is
    /// `hash`), given the calls in flight on each node and which nodes hold an idle instance of
    /// the function.
    pub fn order(
        &mut self,
        function: &str,
        hash: u64,
        in_flight: &[u32],
        has_idle: impl Fn(usize) -> bool,
        order: &mut Vec<usize>,
    ) {
        let n = self.node_ids.len();
        order.clear();
        if n == 0 {
            return;
        }
        match self.policy {
            RoutingPolicy::Fjord { c } => {
                order.extend(bounded_load_order(function, &self.node_ids, in_flight, c));
            }
            RoutingPolicy::FjordWarm { c } => {
                let total_after = in_flight.iter().map(|&l| u64::from(l)).sum::<u64>() + 1;
                let bound = load_bound(c, total_after, 1, n as u64);
                let (warm, rest): (Vec<usize>, Vec<usize>) = bounded_load_order(function, &self.node_ids, in_flight, c)
                    .into_iter()
                    .partition(|&i| u64::from(in_flight[i]) < bound && has_idle(i));
                order.extend(warm);
                order.extend(rest);
            }
            RoutingPolicy::RoundRobin => {
                let start = self.next_in_turn % n;
                self.next_in_turn = self.next_in_turn.wrapping_add(1);
                order.extend((0..n).map(|k| (start + k) % n));
            }
            RoutingPolicy::Random => {
                order.extend(0..n);
                order.shuffle(&mut self.rng);
            }
            RoutingPolicy::LeastLoaded => {
                order.extend(0..n);
                order.sort_by_key(|&i| (in_flight[i], i));
            }
            RoutingPolicy::OpenWhisk => {
                let home = openwhisk_home(hash, n);
                let stride = self.strides[(hash % self.strides.len() as u64) as usize];
                order.extend((0..n).map(|k| (home + k * stride) % n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    fn order_of(router: &mut Router, f: &str, in_flight: &[u32]) -> Vec<usize> {
        let mut order = Vec::new();
        router.order(f, function_hash(f), in_flight, |_| false, &mut order);
        order
    }

    fn is_permutation(order: &[usize], n: usize) -> bool {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        sorted == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn strides_are_pairwise_coprime_with_n() {
        assert_eq!(pairwise_coprime_strides(8), vec![1, 3, 5, 7]);
        assert_eq!(pairwise_coprime_strides(10), vec![1, 3, 7]);
        assert_eq!(pairwise_coprime_strides(1), vec![1]);
    }

    #[test]
    fn every_policy_orders_every_node_once() {
        let policies = [
            RoutingPolicy::Fjord { c: 1.25 },
            RoutingPolicy::FjordWarm { c: 1.25 },
            RoutingPolicy::RoundRobin,
            RoutingPolicy::Random,
            RoutingPolicy::LeastLoaded,
            RoutingPolicy::OpenWhisk,
        ];
        for n in 1..10 {
            for policy in policies {
                let mut router = Router::new(policy, ids(n), 1);
                let load: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 5).collect();
                for f in ["a", "b", "hot", "x-1"] {
                    let order = order_of(&mut router, f, &load);
                    assert!(is_permutation(&order, n), "{policy:?} n={n}: {order:?}");
                }
            }
        }
    }

    #[test]
    fn round_robin_turns_and_least_loaded_picks_the_emptiest() {
        let mut rr = Router::new(RoutingPolicy::RoundRobin, ids(3), 1);
        let firsts: Vec<usize> = (0..4).map(|_| order_of(&mut rr, "f", &[0; 3])[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0]);
        let mut ll = Router::new(RoutingPolicy::LeastLoaded, ids(4), 1);
        assert_eq!(order_of(&mut ll, "f", &[3, 1, 2, 1]), vec![1, 3, 2, 0]);
    }

    #[test]
    fn openwhisk_starts_at_hash_mod_n_and_steps_by_its_stride() {
        let mut ow = Router::new(RoutingPolicy::OpenWhisk, ids(8), 1);
        for f in ["a", "b", "c", "hot"] {
            let h = function_hash(f);
            let order = order_of(&mut ow, f, &[0; 8]);
            assert_eq!(order[0], (h % 8) as usize);
            let stride = (order[1] + 8 - order[0]) % 8;
            assert!([1, 3, 5, 7].contains(&stride));
            assert!(order.windows(2).all(|w| (w[1] + 8 - w[0]) % 8 == stride));
        }
    }

    #[test]
    fn fjord_follows_the_hashing_module() {
        let nodes = ids(5);
        let mut router = Router::new(RoutingPolicy::Fjord { c: 1.25 }, nodes.clone(), 1);
        let loads = [4, 0, 1, 0, 2];
        assert_eq!(
            order_of(&mut router, "echo", &loads),
            bounded_load_order("echo", &nodes, &loads, 1.25)
        );
    }

    #[test]
    fn fjord_warm_moves_warm_nodes_with_room_ahead() {
        let nodes = ids(5);
        let mut router = Router::new(RoutingPolicy::FjordWarm { c: 1.25 }, nodes.clone(), 1);
        let plain = bounded_load_order("echo", &nodes, &[0; 5], 1.25);
        // Warm: the last two in hashing order. They lead, in hashing order.
        let warm = [plain[3], plain[4]];
        let mut order = Vec::new();
        router.order("echo", 0, &[0; 5], |i| warm.contains(&i), &mut order);
        assert_eq!(order, vec![plain[3], plain[4], plain[0], plain[1], plain[2]]);
        // A warm node over its bound does not jump ahead: 6 in flight on plain[4], bound
        // ceil(1.25 × 7 / 5) = 2.
        let mut loads = [0u32; 5];
        loads[plain[4]] = 6;
        router.order("echo", 0, &loads, |i| warm.contains(&i), &mut order);
        assert_eq!(order, vec![plain[3], plain[0], plain[1], plain[2], plain[4]]);
    }

    #[test]
    fn random_is_seeded() {
        let mut a = Router::new(RoutingPolicy::Random, ids(8), 9);
        let mut b = Router::new(RoutingPolicy::Random, ids(8), 9);
        let oa: Vec<Vec<usize>> = (0..20).map(|_| order_of(&mut a, "f", &[0; 8])).collect();
        let ob: Vec<Vec<usize>> = (0..20).map(|_| order_of(&mut b, "f", &[0; 8])).collect();
        assert_eq!(oa, ob);
        assert!(oa.iter().any(|o| o[0] != oa[0][0]), "the first node varies");
    }
}
