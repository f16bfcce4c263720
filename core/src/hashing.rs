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
}
