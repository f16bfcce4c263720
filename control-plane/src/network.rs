//! Raft between members over gRPC: the client side openraft calls ([`PeerNetwork`]) and the
//! server side that hands incoming messages to the local Raft ([`RaftRpc`]).
//!
//! openraft's messages travel as JSON inside a `RaftPayload`: every member of a cluster runs the
//! same build, and this keeps the wire format exactly openraft's own types.

use crate::auth::Token;
use crate::raft_types::{Command, CommandResult, MemberId, Raft, TypeConfig};
use fjord_proto::v1 as pb;
use fjord_proto::v1::raft_client::RaftClient;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// A gRPC channel to a member's address. Connects lazily, so an unreachable peer costs nothing
/// until it is called, and reconnects by itself.
pub(crate) fn member_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}

fn encode<T: Serialize>(value: &T) -> Result<pb::RaftPayload, Status> {
    serde_json::to_vec(value)
        .map(|json| pb::RaftPayload { json })
        .map_err(|e| Status::internal(format!("encoding a raft message: {e}")))
}

fn decode<T: DeserializeOwned>(payload: &pb::RaftPayload) -> Result<T, Status> {
    serde_json::from_slice(&payload.json).map_err(|e| Status::invalid_argument(format!("decoding a raft message: {e}")))
}

/// Cut links between members, for partition tests run in one process: a message from a member
/// to a member it is cut from fails as if the peer were unreachable. Always empty in production.
#[derive(Clone, Default)]
pub struct Faults(Arc<RwLock<HashSet<(MemberId, MemberId)>>>);

impl Faults {
    /// Cuts every link between the members of `side` and the members of `other`, both ways.
    pub fn partition(&self, side: &[MemberId], other: &[MemberId]) {
        let mut cut = self.0.write().expect("faults lock poisoned");
        for a in side {
            for b in other {
                cut.insert((*a, *b));
                cut.insert((*b, *a));
            }
        }
    }

    pub fn heal(&self) {
        self.0.write().expect("faults lock poisoned").clear();
    }

    pub(crate) fn is_cut(&self, from: MemberId, to: MemberId) -> bool {
        let cut = self.0.read().expect("faults lock poisoned");
        !cut.is_empty() && cut.contains(&(from, to))
    }
}

/// Creates a [`PeerClient`] per peer for openraft.
pub(crate) struct PeerNetwork {
    pub(crate) id: MemberId,
    pub(crate) token: Token,
    pub(crate) faults: Faults,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> PeerClient {
        PeerClient {
            from: self.id,
            target,
            channel: member_channel(&node.addr).ok(),
            addr: node.addr.clone(),
            token: self.token.clone(),
            faults: self.faults.clone(),
        }
    }
}

pub(crate) struct PeerClient {
    from: MemberId,
    target: MemberId,
    faults: Faults,
    addr: String,
    channel: Option<Channel>,
    token: Token,
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<MemberId, BasicNode, RaftError<MemberId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.faults.is_cut(self.from, self.target) {
            let cut = std::io::Error::other(format!("link {} -> {} is cut", self.from, self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&cut)));
        }
        let channel = self.channel.clone().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
                "bad member address {:?}",
                self.addr
            ))))
        })?;
        let payload = encode(req).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        let mut request = Request::new(payload);
        request.set_timeout(timeout);
        self.token.attach(&mut request);
        let mut client = RaftClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
        let result = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let response = result.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let decoded: Result<Resp, RaftError<MemberId, E>> =
            decode(response.get_ref()).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>> {
        self.call(Rpc::Append, &req, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, BasicNode, RaftError<MemberId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &req, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>> {
        self.call(Rpc::Vote, &req, option.hard_ttl()).await
    }
}

/// Sends a write to the leader at `addr` on a client's behalf.
pub(crate) async fn forward_write(
    addr: &str,
    token: &Token,
    command: &Command,
) -> Result<Result<CommandResult, String>, Status> {
    let channel = member_channel(addr).map_err(|e| Status::unavailable(format!("leader address {addr:?}: {e}")))?;
    let mut request = Request::new(encode(command)?);
    request.set_timeout(Duration::from_secs(10));
    token.attach(&mut request);
    let response = RaftClient::new(channel).forward_write(request).await?;
    decode(response.get_ref())
}

/// The Raft gRPC service: hands peers' messages to the local Raft.
pub(crate) struct RaftRpc {
    pub(crate) raft: Raft,
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftRpc {
    async fn append_entries(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        Ok(Response::new(encode(&self.raft.append_entries(req).await)?))
    }

    async fn vote(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let req: VoteRequest<MemberId> = decode(request.get_ref())?;
        Ok(Response::new(encode(&self.raft.vote(req).await)?))
    }

    async fn install_snapshot(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        Ok(Response::new(encode(&self.raft.install_snapshot(req).await)?))
    }

    async fn forward_write(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let command: Command = decode(request.get_ref())?;
        let result: Result<CommandResult, String> = self
            .raft
            .client_write(command)
            .await
            .map(|r| r.data)
            .map_err(|e| e.to_string());
        Ok(Response::new(encode(&result)?))
    }
}
