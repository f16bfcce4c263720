//! Builds the routing table from the replicated state and the soft state, and publishes a new
//! version only when something the lb routes on has changed.

use crate::liveness::Liveness;
use crate::state_machine::StateMachineStore;
use fjord_core::{RouteNode, RouteTable, RoutedFunction};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The table for the current state; `version` is left 0 for the publisher to set.
pub fn build_route_table(state: &StateMachineStore, liveness: &Liveness) -> RouteTable {
    state.read(|applied| {
        let cluster = &applied.cluster;
        let nodes: Vec<RouteNode> = cluster
            .nodes
            .values()
            .filter(|n| liveness.is_alive(&n.info.id))
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

/// Keeps `tx` holding the current routing table: rebuilds on every applied entry, on every
/// heartbeat that changes routing, and on a tick (so nodes that stop heartbeating drop out).
pub async fn publish_routes(
    state: StateMachineStore,
    liveness: Arc<Liveness>,
    tx: watch::Sender<Arc<RouteTable>>,
    tick: Duration,
) {
    let mut applied = state.subscribe();
    let mut heartbeats = liveness.subscribe();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut version = 0u64;
    loop {
        let mut table = build_route_table(&state, &liveness);
        let current = tx.borrow().clone();
        table.version = current.version;
        if *current != table || version == 0 {
            version += 1;
            table.version = version;
            tx.send_replace(Arc::new(table));
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            r = heartbeats.changed() => if r.is_err() { return },
            _ = interval.tick() => {},
        }
    }
}
