//! Keeps the lb's copy of the routing table: streams `WatchRoutes` from whichever control-plane
//! member answers, moving to the next on failure. The last table received stays in force while
//! no member answers, so invocations of known functions go on (static stability).
//!
//! A table that takes every node away is not believed at once: it is what a control plane that
//! has lost sight of its agents would send (a new leader before they reconnect), not only what a
//! cluster whose nodes all left would. The lb keeps routing to the nodes it had for
//! [`EMPTY_TABLE_GRACE`]; a table with nodes ends the wait, and one still without nodes after it
//! is taken.

use fjord_core::RouteTable;
use fjord_proto::v1 as pb;
use fjord_proto::v1::routes_client::RoutesClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a table with no nodes waits before it replaces one with nodes.
pub const EMPTY_TABLE_GRACE: Duration = Duration::from_secs(5);
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

pub struct RouteWatch {
    pub endpoints: Vec<String>,
    pub token: String,
    pub table: watch::Sender<Arc<RouteTable>>,
}

impl RouteWatch {
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        for endpoint in self.endpoints.iter().cycle() {
            match self.stream_from(endpoint).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(control_plane = %endpoint, error = %e, "route stream ended; keeping the last table")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn stream_from(&self, endpoint: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let channel = Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        let mut request = tonic::Request::new(pb::WatchRoutesRequest {});
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {}", self.token))?,
        );
        let mut stream = RoutesClient::new(channel).watch_routes(request).await?.into_inner();
        tracing::info!(control_plane = %endpoint, "watching routes");
        let mut gate = EmptyTableGate::default();
        loop {
            let due = gate.due();
            let message = tokio::select! {
                message = stream.message() => message?,
                _ = sleep_until_some(due) => {
                    if let Some(table) = gate.expire(Instant::now()) {
                        tracing::warn!(version = table.version, "routing to no node: the control plane has reported none for {EMPTY_TABLE_GRACE:?}");
                        self.table.send_replace(table);
                    }
                    continue;
                }
            };
            let Some(table) = message else { return Ok(()) };
            let table = Arc::new(RouteTable::from(table));
            tracing::debug!(
                version = table.version,
                nodes = table.nodes.len(),
                functions = table.functions.len(),
                "routes"
            );
            let current = self.table.borrow().clone();
            match gate.offer(&current, table, Instant::now()) {
                Some(table) => {
                    self.table.send_replace(table);
                }
                None => tracing::warn!(
                    nodes = current.nodes.len(),
                    "the control plane reports no node; routing to the last known nodes for up to {EMPTY_TABLE_GRACE:?}"
                ),
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Holds back a table without nodes that would replace one with nodes, for [`EMPTY_TABLE_GRACE`].
#[derive(Default)]
struct EmptyTableGate {
    /// The held table and when it may be taken.
    held: Option<(Arc<RouteTable>, Instant)>,
}

impl EmptyTableGate {
    /// The table to put in force now, if any. The held table is replaced by each newer one; the
    /// wait runs from the first table without nodes.
    fn offer(&mut self, current: &RouteTable, table: Arc<RouteTable>, now: Instant) -> Option<Arc<RouteTable>> {
        if !table.nodes.is_empty() || current.nodes.is_empty() {
            self.held = None;
            return Some(table);
        }
        let until = self.held.as_ref().map_or(now + EMPTY_TABLE_GRACE, |(_, until)| *until);
        if now >= until {
            self.held = None;
            return Some(table);
        }
        self.held = Some((table, until));
        None
    }

    fn due(&self) -> Option<Instant> {
        self.held.as_ref().map(|(_, until)| *until)
    }

    fn expire(&mut self, now: Instant) -> Option<Arc<RouteTable>> {
        match &self.held {
            Some((_, until)) if now >= *until => self.held.take().map(|(table, _)| table),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::RouteNode;

    fn table(version: u64, nodes: usize) -> Arc<RouteTable> {
        Arc::new(RouteTable {
            version,
            nodes: (0..nodes)
                .map(|i| RouteNode {
                    id: format!("node-{i}"),
                    invoke_addr: format!("127.0.0.1:{}", 7500 + i),
                    weight: 1,
                    in_flight: 0,
                })
                .collect(),
            functions: Default::default(),
        })
    }

    #[test]
    fn a_table_without_nodes_replaces_one_with_nodes_only_after_the_grace() {
        let mut gate = EmptyTableGate::default();
        let now = Instant::now();
        let current = table(1, 2);
        assert!(gate.offer(&current, table(2, 0), now).is_none(), "held at first");
        assert_eq!(gate.due(), Some(now + EMPTY_TABLE_GRACE));
        let later = now + EMPTY_TABLE_GRACE / 2;
        assert!(
            gate.offer(&current, table(3, 0), later).is_none(),
            "a newer empty table keeps the first deadline"
        );
        assert!(gate.expire(later).is_none());
        let taken = gate.expire(now + EMPTY_TABLE_GRACE).expect("taken after the grace");
        assert_eq!(taken.version, 3, "the newest held table is the one taken");
        assert!(gate.due().is_none());
    }

    #[test]
    fn a_table_with_nodes_ends_the_wait_and_an_empty_lb_takes_anything() {
        let mut gate = EmptyTableGate::default();
        let now = Instant::now();
        assert!(gate.offer(&table(1, 2), table(2, 0), now).is_none());
        assert_eq!(gate.offer(&table(1, 2), table(3, 1), now).map(|t| t.version), Some(3));
        assert!(gate.due().is_none(), "nothing held any more");
        assert_eq!(gate.offer(&table(0, 0), table(4, 0), now).map(|t| t.version), Some(4));
    }
}
