//! The agent's link to the control plane: register, heartbeat, and watch assignments, against
//! whichever member of the list answers. When a member fails the agent moves to the next one and
//! keeps serving from what it already knows (static stability).

use crate::pool::InstancePool;
use fjord_core::{FunctionRecord, NodeInfo};
use fjord_proto::v1 as pb;
use fjord_proto::v1::agent_client::AgentClient;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

pub struct ControlLink {
    pub endpoints: Vec<String>,
    pub token: String,
    pub node: NodeInfo,
    pub pool: Arc<InstancePool>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connecting: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("the assignment stream ended")]
    StreamEnded,
}

impl ControlLink {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", self.token)) {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Runs forever, cycling through the endpoints with backoff.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        let mut index = 0usize;
        loop {
            let endpoint = &self.endpoints[index % self.endpoints.len()];
            let started = std::time::Instant::now();
            match self.session(endpoint).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(control_plane = %endpoint, error = %e, "control-plane session ended"),
            }
            // A session that lasted was a working member: after it ends (a failover), try the
            // others quickly, so a new leader hears this node well within its grace period.
            if started.elapsed() > Duration::from_secs(5) {
                backoff = Duration::from_millis(100);
            }
            index += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn session(&self, endpoint: &str) -> Result<(), SessionError> {
        let channel: Channel = Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client = AgentClient::new(channel);
        self.pool.secrets().set_client(client.clone(), &self.token);
        let registered = client
            .register(self.request(pb::RegisterRequest {
                node: Some((&self.node).into()),
            }))
            .await?
            .into_inner();
        let interval = Duration::from_millis(registered.heartbeat_interval_ms.clamp(50, 10_000));
        tracing::info!(control_plane = %endpoint, node = %self.node.id, "registered");
        let mut stream = client
            .watch_assignments(self.request(pb::WatchAssignmentsRequest {
                node_id: self.node.id.clone(),
            }))
            .await?
            .into_inner();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.message() => {
                    let assignments = message?.ok_or(SessionError::StreamEnded)?;
                    let records: Vec<FunctionRecord> = assignments
                        .functions
                        .into_iter()
                        .filter_map(|r| match FunctionRecord::try_from(r) {
                            Ok(record) => Some(record),
                            Err(e) => {
                                tracing::warn!(error = %e, "ignoring an invalid function record");
                                None
                            }
                        })
                        .collect();
                    tracing::debug!(version = assignments.version, functions = records.len(), "assignments");
                    let placed = assignments.placed.into_iter().collect();
                    self.pool.secrets().set_versions(assignments.secret_versions.into_iter().collect());
                    self.pool.set_assignments(records, &placed, assignments.draining);
                    self.pool.reap_and_prewarm();
                }
                _ = ticker.tick() => {
                    self.pool.reap_and_prewarm();
                    let load = self.pool.load();
                    let heartbeat = pb::HeartbeatRequest {
                        node_id: self.node.id.clone(),
                        in_flight: load.in_flight,
                        reserved_memory_mib: load.reserved_memory_mib,
                        functions: load.functions.iter().map(|(name, f)| pb::FunctionLoad::from((name.as_str(), f))).collect(),
                    };
                    let known = client.heartbeat(self.request(heartbeat)).await?.into_inner().known;
                    if !known {
                        client.register(self.request(pb::RegisterRequest { node: Some((&self.node).into()) })).await?;
                    }
                }
            }
        }
    }
}
