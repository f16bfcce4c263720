//! Builds the routing table from the replicated state and the soft state, and publishes a new
//! version only when something the lb routes on has changed.

use crate::liveness::Liveness;
use crate::raft_types::NodeState;
use crate::state_machine::StateMachineStore;
use fjord_core::{RouteNode, RouteTable, RoutedFunction};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::watch;

/// The table for the current state; `version` is left 0 for the publisher to set.
pub(crate) fn build_route_table(state: &StateMachineStore, liveness: &Liveness) -> RouteTable {
    state.read(|applied| {
        let cluster = &applied.cluster;
        let nodes: Vec<RouteNode> = cluster
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Ready && liveness.is_alive(&n.info.id))
            .map(|n| RouteNode {
                id: n.info.id.clone(),
                invoke_addr: n.info.invoke_addr.clone(),
                weight: n.info.weight(),
                in_flight: 0,
            })
            .collect();
        let reports: Vec<_> = nodes
            .iter()
            .map(|n| (n.id.clone(), liveness.last_report(&n.id)))
            .collect();
        let functions = cluster
            .functions
            .values()
            .map(|record| {
                let warm_nodes: BTreeSet<String> = reports
                    .iter()
                    .filter(|(_, report)| {
                        report.as_ref().is_some_and(|(load, _)| {
                            load.functions
                                .get(&record.spec.name)
                                .is_some_and(|f| f.ready > 0 && f.revision == record.revision)
                        })
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                let routed = RoutedFunction {
                    name: record.spec.name.clone(),
                    revision: record.revision,
                    timeout: record.spec.timeout,
                    concurrency: record.spec.concurrency,
                    warm_nodes,
                    async_policy: record.spec.async_policy,
                };
                (record.spec.name.clone(), routed)
            })
            .collect();
        RouteTable {
            version: 0,
            nodes,
            functions,
        }
    })
}

/// Publishes the table for the current state if it differs from the one in `tx`; versions keep
/// increasing across leaders because each continues from the last table it held.
pub(crate) fn publish_if_changed(state: &StateMachineStore, liveness: &Liveness, tx: &watch::Sender<Arc<RouteTable>>) {
    let mut table = build_route_table(state, liveness);
    let current = tx.borrow().clone();
    table.version = current.version;
    if *current != table || current.version == 0 {
        table.version = current.version + 1;
        tx.send_replace(Arc::new(table));
    }
}
