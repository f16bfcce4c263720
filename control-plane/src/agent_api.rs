//! The Agent and Routes gRPC services: what node agents and load balancers call.

use crate::error::ControlPlaneError;
use crate::member::Member;
use crate::raft_types::Command;
use crate::state_machine::now_millis;
use fjord_core::node::FunctionLoad;
use fjord_core::{NodeInfo, NodeLoad};
use fjord_proto::v1 as pb;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct AgentService {
    pub(crate) member: Arc<Member>,
    /// Turns true when the member shuts down: open watch streams end.
    pub(crate) stopping: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let info: NodeInfo = request
            .into_inner()
            .node
            .ok_or_else(|| Status::invalid_argument("the register request has no node"))?
            .into();
        fjord_core::name::check_dns_label(&info.id).map_err(|r| Status::invalid_argument(format!("node id {r}")))?;
        if info.invoke_addr.parse::<std::net::SocketAddr>().is_err() && !info.invoke_addr.contains(':') {
            return Err(Status::invalid_argument(format!(
                "node {}: invoke address {:?} is not host:port",
                info.id, info.invoke_addr
            )));
        }
        let id = info.id.clone();
        self.member
            .write(Command::RegisterNode {
                info,
                now_ms: now_millis(),
            })
            .await?;
        self.member.liveness.heartbeat(&id, NodeLoad::default());
        Ok(Response::new(pb::RegisterResponse {
            heartbeat_interval_ms: self.member.heartbeat_interval.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        // Soft state lives on the leader: a follower passes heartbeats on.
        if let Ok(Some(channel)) = self.member.leader_channel() {
            let mut forwarded = Request::new(request.into_inner());
            self.member.token.attach(&mut forwarded);
            forwarded.set_timeout(std::time::Duration::from_secs(2));
            return pb::agent_client::AgentClient::new(channel).heartbeat(forwarded).await;
        }
        let hb = request.into_inner();
        let known = self.member.state.read(|a| a.cluster.nodes.contains_key(&hb.node_id));
        if known {
            let load = NodeLoad {
                in_flight: hb.in_flight,
                reserved_memory_mib: hb.reserved_memory_mib,
                functions: hb.functions.into_iter().map(<(String, FunctionLoad)>::from).collect(),
            };
            self.member.liveness.heartbeat(&hb.node_id, load);
        }
        Ok(Response::new(pb::HeartbeatResponse { known }))
    }

    /// The values of one function's secrets, opened for an agent about to start an instance of
    /// it: only a registered node gets them, and only a function's own.
    async fn function_secrets(
        &self,
        request: Request<pb::FunctionSecretsRequest>,
    ) -> Result<Response<pb::FunctionSecretsResponse>, Status> {
        let req = request.into_inner();
        let sealed = self.member.state.read(|a| {
            let c = &a.cluster;
            if !c.nodes.contains_key(&req.node_id) {
                return Err(ControlPlaneError::NodeNotFound(req.node_id.clone()));
            }
            let record = c
                .functions
                .get(&req.function)
                .ok_or_else(|| ControlPlaneError::FunctionNotFound(req.function.clone()))?;
            record
                .spec
                .secrets
                .names()
                .iter()
                .map(|name| {
                    let secret = c
                        .secrets
                        .get(name)
                        .ok_or_else(|| ControlPlaneError::SecretNotFound(name.clone()))?;
                    Ok((name.clone(), secret.clone()))
                })
                .collect::<Result<Vec<_>, ControlPlaneError>>()
        })?;
        if sealed.is_empty() {
            return Ok(Response::new(pb::FunctionSecretsResponse::default()));
        }
        let key = self.member.secrets_key.clone().ok_or(ControlPlaneError::NoSecretsKey)?;
        let secrets = sealed
            .into_iter()
            .map(|(name, record)| {
                let value = key.open(&name, &record).map_err(ControlPlaneError::SecretUnreadable)?;
                Ok(pb::SecretValue {
                    name,
                    version: record.version,
                    value,
                })
            })
            .collect::<Result<Vec<_>, ControlPlaneError>>()?;
        Ok(Response::new(pb::FunctionSecretsResponse { secrets }))
    }

    type WatchAssignmentsStream = ResponseStream<pb::Assignments>;

    async fn watch_assignments(
        &self,
        request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let node_id = request.into_inner().node_id;
        let (tx, rx) = mpsc::channel(4);
        let state = self.member.state.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let mut applied = state.subscribe();
            let mut sent = None;
            loop {
                let (versions, assignments) = state.read(|a| {
                    let c = &a.cluster;
                    let draining = c.nodes.get(&node_id).is_some_and(|n| n.state.is_drain());
                    let versions = (c.functions_version, c.placements_version, c.secrets_version, draining);
                    let placed = c
                        .placements
                        .iter()
                        .filter_map(|(function, by_node)| Some((function.clone(), *by_node.get(&node_id)?)))
                        .collect();
                    let secret_versions = c
                        .functions
                        .values()
                        .flat_map(|r| r.spec.secrets.names())
                        .filter_map(|name| Some((name.clone(), c.secrets.get(name)?.version)))
                        .collect();
                    let assignments = pb::Assignments {
                        version: c.functions_version + c.placements_version + c.secrets_version,
                        functions: c.functions.values().map(pb::FunctionRecord::from).collect(),
                        placed,
                        draining,
                        secret_versions,
                    };
                    (versions, assignments)
                });
                if sent != Some(versions) {
                    if tx.send(Ok(assignments)).await.is_err() {
                        return;
                    }
                    sent = Some(versions);
                }
                tokio::select! {
                    r = applied.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

pub(crate) struct RoutesService {
    pub(crate) member: Arc<Member>,
    pub(crate) stopping: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl pb::routes_server::Routes for RoutesService {
    type WatchRoutesStream = ResponseStream<pb::RouteTable>;

    async fn watch_routes(
        &self,
        _request: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut routes = self.member.routes.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let table = pb::RouteTable::from(routes.borrow_and_update().as_ref());
                if tx.send(Ok(table)).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = routes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
