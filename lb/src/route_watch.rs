//! Keeps the lb's copy of the routing table: streams `WatchRoutes` from whichever control-plane
//! member answers, moving to the next on failure. The last table received stays in force while
//! no member answers, so invocations of known functions go on (static stability).

use fjord_core::RouteTable;
use fjord_proto::v1 as pb;
use fjord_proto::v1::routes_client::RoutesClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
        while let Some(table) = stream.message().await? {
            let table = RouteTable::from(table);
            tracing::debug!(
                version = table.version,
                nodes = table.nodes.len(),
                functions = table.functions.len(),
                "routes"
            );
            self.table.send_replace(Arc::new(table));
        }
        Ok(())
    }
}
