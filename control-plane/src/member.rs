//! One control-plane member: its Raft, state machine, soft state and routing table, and the
//! write path every service uses.

use crate::auth::Token;
use crate::error::ControlPlaneError;
use crate::liveness::Liveness;
use crate::log_store::LogStore;
use crate::network::forward_write;
use crate::raft_types::{Command, CommandResult, MemberId, Raft};
use crate::state_machine::StateMachineStore;
use fjord_core::RouteTable;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Member {
    pub id: MemberId,
    pub raft: Raft,
    pub state: StateMachineStore,
    pub log: LogStore,
    pub liveness: Arc<Liveness>,
    pub routes: watch::Receiver<Arc<RouteTable>>,
    pub token: Token,
    pub heartbeat_interval: Duration,
}

impl Member {
    /// Commits `command` through Raft and returns what applying it produced. On a follower the
    /// write goes to the leader; the caller never needs to know which member leads.
    pub async fn write(&self, command: Command) -> Result<CommandResult, ControlPlaneError> {
        match self.raft.client_write(command.clone()).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                let Some(leader) = forward.leader_node else {
                    return Err(ControlPlaneError::NoLeader);
                };
                forward_write(&leader.addr, &self.token, &command)
                    .await
                    .map_err(|s| ControlPlaneError::Unavailable(format!("forwarding to the leader: {}", s.message())))?
                    .map_err(ControlPlaneError::Unavailable)
            }
            Err(e) => Err(ControlPlaneError::Unavailable(e.to_string())),
        }
    }
}
