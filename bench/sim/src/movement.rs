//! How many functions change home node when the node set changes by one: Fjord's rendezvous
//! hashing (home = bounded-load pick at zero load) against OpenWhisk's `hash mod N`.

use crate::routing::{function_hash, openwhisk_home};
use fjord_core::hashing::{bounded_load_pick, DEFAULT_LOAD_BOUND_C};

/// Fractions of functions whose home node changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HomeMovement {
    /// When node N joins nodes 0..N.
    pub fjord_join: f64,
    /// When node N−1 leaves nodes 0..N.
    pub fjord_leave: f64,
    pub openwhisk_join: f64,
    pub openwhisk_leave: f64,
}

fn node_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

fn fjord_home(function: &str, nodes: &[String]) -> Option<String> {
    bounded_load_pick(function, nodes, &vec![0; nodes.len()], DEFAULT_LOAD_BOUND_C).map(|i| nodes[i].clone())
}

/// Movement of `functions`' homes around a fleet of `nodes` (at least 2). Nodes are named by
/// index; the leaving node is the last, which keeps every other node's index under `mod N`.
pub fn home_movement(functions: &[String], nodes: usize) -> HomeMovement {
    let nodes = nodes.max(2);
    let (now, more, fewer) = (node_ids(nodes), node_ids(nodes + 1), node_ids(nodes - 1));
    let mut moved = [0usize; 4];
    for f in functions {
        let home = fjord_home(f, &now);
        moved[0] += usize::from(fjord_home(f, &more) != home);
        moved[1] += usize::from(fjord_home(f, &fewer) != home);
        let h = function_hash(f);
        let ow = openwhisk_home(h, nodes);
        moved[2] += usize::from(openwhisk_home(h, nodes + 1) != ow);
        moved[3] += usize::from(openwhisk_home(h, nodes - 1) != ow);
    }
    let fraction = |k: usize| {
        if functions.is_empty() {
            0.0
        } else {
            k as f64 / functions.len() as f64
        }
    };
    HomeMovement {
        fjord_join: fraction(moved[0]),
        fjord_leave: fraction(moved[1]),
        openwhisk_join: fraction(moved[2]),
        openwhisk_leave: fraction(moved[3]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_about_one_nth_and_mod_n_moves_most() {
        let functions: Vec<String> = (0..4000).map(|i| format!("fn-{i}")).collect();
        let m = home_movement(&functions, 8);
        // Expected: 1/9 on join, 1/8 on leave; mod N moves 8/9 and 7/8.
        assert!((0.08..0.15).contains(&m.fjord_join), "{m:?}");
        assert!((0.09..0.16).contains(&m.fjord_leave), "{m:?}");
        assert!((0.85..0.93).contains(&m.openwhisk_join), "{m:?}");
        assert!((0.83..0.92).contains(&m.openwhisk_leave), "{m:?}");
        assert_eq!(home_movement(&[], 8).fjord_join, 0.0);
    }
}
