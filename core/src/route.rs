//! The routing table the control plane streams to every lb: which functions exist and which
//! nodes can run them.

use crate::hashing::{load_bound, preference_order, HashNode};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteNode {
    pub id: String,
    pub invoke_addr: String,
    pub weight: u32,
    pub in_flight: u32,
}

impl HashNode for RouteNode {
    fn hash_id(&self) -> &str {
        &self.id
    }
    fn hash_weight(&self) -> u32 {
        self.weight
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedFunction {
    pub name: String,
    pub revision: u64,
    pub timeout: Duration,
    pub concurrency: u32,
    pub warm_nodes: BTreeSet<String>,
    /// How the lbs' workers deliver this function's queued calls.
    pub async_policy: crate::spec::AsyncPolicy,
}

/// Ready nodes and deployed functions at one version of the cluster state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub version: u64,
    pub nodes: Vec<RouteNode>,
    pub functions: HashMap<String, RoutedFunction>,
}

impl RouteTable {
    /// Indexes into `nodes` to try for one more request of `function`, in order, given
    /// `loads[i]`, the requests in flight to `nodes[i]` as this lb counts them, and the bound
    /// factor `c`:
    ///
    /// 1. nodes that report a warm instance and are under their load bound,
    /// 2. the other nodes under their bound (they may start an instance),
    /// 3. the nodes over their bound,
    ///
    /// each group in the function's hashing order. So a function stays on its home node until
    /// that node carries more than its bounded share, then overflows to its own next choices
    /// (not one shared neighbour), and warm instances are used before cold starts.
    pub fn candidates(&self, function: &RoutedFunction, loads: &[u32], c: f64) -> Vec<usize> {
        assert_eq!(loads.len(), self.nodes.len(), "one load per node");
        let total_weight: u64 = self.nodes.iter().map(|n| u64::from(n.hash_weight().max(1))).sum();
        let total_after: u64 = loads.iter().map(|&l| u64::from(l)).sum::<u64>() + 1;
        let has_room = |i: usize| {
            u64::from(loads[i]) < load_bound(c, total_after, self.nodes[i].hash_weight().max(1), total_weight)
        };
        let mut warm = Vec::new();
        let mut room = Vec::new();
        let mut over = Vec::new();
        for i in preference_order(&function.name, &self.nodes) {
            match (has_room(i), function.warm_nodes.contains(&self.nodes[i].id)) {
                (true, true) => warm.push(i),
                (true, false) => room.push(i),
                (false, _) => over.push(i),
            }
        }
        warm.extend(room);
        warm.extend(over);
        warm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(warm: &[&str]) -> (RouteTable, RoutedFunction) {
        let nodes = (0..4)
            .map(|i| RouteNode {
                id: format!("n{i}"),
                invoke_addr: format!("127.0.0.1:{}", 7500 + i),
                weight: 1,
                in_flight: 0,
            })
            .collect();
        let f = RoutedFunction {
            name: "echo".into(),
            revision: 1,
            timeout: Duration::from_secs(1),
            concurrency: 1,
            warm_nodes: warm.iter().map(|s| s.to_string()).collect(),
            async_policy: Default::default(),
        };
        (
            RouteTable {
                version: 1,
                nodes,
                functions: HashMap::new(),
            },
            f,
        )
    }

    #[test]
    fn candidates_follow_hashing_order_when_nothing_is_warm() {
        let (t, f) = table(&[]);
        let ids: Vec<&str> = t
            .candidates(&f, &[0; 4], 1.25)
            .into_iter()
            .map(|i| t.nodes[i].id.as_str())
            .collect();
        let expected: Vec<&str> = preference_order("echo", &t.nodes)
            .into_iter()
            .map(|i| t.nodes[i].id.as_str())
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_loaded_home_node_overflows_to_the_next_node_in_the_functions_own_order() {
        let (t, f) = table(&[]);
        let order: Vec<usize> = preference_order("echo", &t.nodes);
        let mut loads = [0u32; 4];
        // 8 in flight, all at home: bound = ceil(1.25 * 9 / 4) = 3, home is over it.
        loads[order[0]] = 8;
        let candidates = t.candidates(&f, &loads, 1.25);
        assert_eq!(candidates[0], order[1]);
        assert_eq!(*candidates.last().unwrap(), order[0]);
        // Even a warm home node is passed over while above its bound.
        let (t, f) = table(&[t.nodes[order[0]].id.as_str()]);
        assert_eq!(t.candidates(&f, &loads, 1.25)[0], order[1]);
    }

    #[test]
    fn warm_nodes_come_first_in_hashing_order() {
        let (t, _) = table(&[]);
        let order: Vec<String> = preference_order("echo", &t.nodes)
            .into_iter()
            .map(|i| t.nodes[i].id.clone())
            .collect();
        // Mark the last two in hashing order warm: they must now lead, in the same relative order.
        let (t, f) = table(&[&order[3], &order[2]]);
        let ids: Vec<String> = t
            .candidates(&f, &[0; 4], 1.25)
            .into_iter()
            .map(|i| t.nodes[i].id.clone())
            .collect();
        assert_eq!(
            ids,
            vec![order[2].clone(), order[3].clone(), order[0].clone(), order[1].clone()]
        );
    }
}
