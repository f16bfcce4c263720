//! The routing table the control plane streams to every lb: which functions exist and which
//! nodes can run them.

use crate::hashing::{preference_order, HashNode};
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
}

/// Ready nodes and deployed functions at one version of the cluster state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub version: u64,
    pub nodes: Vec<RouteNode>,
    pub functions: HashMap<String, RoutedFunction>,
}

impl RouteTable {
    /// Nodes to try for `function`, in order: its hashing order, with nodes that report a warm
    /// instance moved ahead of those that would cold-start (each group keeps hashing order).
    pub fn candidates(&self, function: &RoutedFunction) -> Vec<&RouteNode> {
        let order = preference_order(&function.name, &self.nodes);
        let (warm, cold): (Vec<&RouteNode>, Vec<&RouteNode>) = order
            .into_iter()
            .map(|i| &self.nodes[i])
            .partition(|n| function.warm_nodes.contains(&n.id));
        warm.into_iter().chain(cold).collect()
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
        let ids: Vec<&str> = t.candidates(&f).iter().map(|n| n.id.as_str()).collect();
        let expected: Vec<&str> = preference_order("echo", &t.nodes)
            .into_iter()
            .map(|i| t.nodes[i].id.as_str())
            .collect();
        assert_eq!(ids, expected);
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
        let ids: Vec<String> = t.candidates(&f).iter().map(|n| n.id.clone()).collect();
        assert_eq!(
            ids,
            vec![order[2].clone(), order[3].clone(), order[0].clone(), order[1].clone()]
        );
    }
}
