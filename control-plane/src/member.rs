//! One control-plane member: its Raft, state machine, soft state and routing table, the write
//! path every service uses, and how it finds the leader.

use crate::auth::Token;
use crate::error::ControlPlaneError;
use crate::liveness::Liveness;
use crate::log_store::LogStore;
use crate::network::{forward_write, member_channel, Faults};
use crate::raft_types::{Command, CommandResult, MemberId, Raft};
use crate::reports::{NodeGroupsReport, QueueDepths, SchedulingReport};
use crate::state_machine::StateMachineStore;
use fjord_core::RouteTable;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

/// How long a write may wait to be committed before the caller is told it is unconfirmed.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Member {
    pub(crate) id: MemberId,
    pub(crate) raft: Raft,
    pub(crate) state: StateMachineStore,
    pub(crate) log: LogStore,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) routes: watch::Receiver<Arc<RouteTable>>,
    pub(crate) token: Token,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) faults: Faults,
    leader_channel: Mutex<Option<(String, Channel)>>,
    /// Held while a membership change runs: a second one is refused, not queued.
    pub(crate) membership_change: tokio::sync::Mutex<()>,
    /// What the scheduler concluded, while this member leads (for `fjord describe`).
    pub(crate) scheduling: SchedulingReport,
    /// What the node autoscaler last saw per node group, while this member leads.
    pub(crate) node_groups: NodeGroupsReport,
    /// The queue of asynchronous calls (scheduled functions, depth, `fjord calls`).
    pub(crate) queue: fjord_events::QueueHandle,
    /// The clock scheduled functions fire on.
    pub(crate) cron_clock: crate::cron::CronClock,
    /// The queue's depth per function, while this member leads.
    pub(crate) queue_depths: QueueDepths,
    /// Seals and opens named secrets (`--secrets-key-file`); none: secrets are refused.
    pub(crate) secrets_key: Option<Arc<crate::secrets::SecretsKey>>,
}

impl Member {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: MemberId,
        raft: Raft,
        state: StateMachineStore,
        log: LogStore,
        liveness: Arc<Liveness>,
        routes: watch::Receiver<Arc<RouteTable>>,
        token: Token,
        heartbeat_interval: Duration,
        faults: Faults,
        queue: fjord_events::QueueHandle,
        cron_clock: crate::cron::CronClock,
    ) -> Self {
        Member {
            id,
            raft,
            state,
            log,
            liveness,
            routes,
            token,
            heartbeat_interval,
            faults,
            leader_channel: Mutex::new(None),
            membership_change: tokio::sync::Mutex::new(()),
            scheduling: Default::default(),
            node_groups: Default::default(),
            queue,
            cron_clock,
            queue_depths: Default::default(),
            secrets_key: None,
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The current term.
    pub(crate) fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The leader's id and address, as this member last heard.
    pub(crate) fn leader(&self) -> Option<(MemberId, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// A channel to the leader when it is another member (`None` when this member leads).
    pub(crate) fn leader_channel(&self) -> Result<Option<Channel>, ControlPlaneError> {
        if self.is_leader() {
            return Ok(None);
        }
        let (leader, addr) = self.leader().ok_or(ControlPlaneError::NoLeader)?;
        if leader == self.id {
            return Ok(None);
        }
        if self.faults.is_cut(self.id, leader) {
            return Err(ControlPlaneError::Unavailable(format!(
                "cannot reach the leader (member {leader})"
            )));
        }
        let mut cached = self.leader_channel.lock().expect("leader channel lock poisoned");
        if let Some((cached_addr, channel)) = cached.as_ref() {
            if *cached_addr == addr {
                return Ok(Some(channel.clone()));
            }
        }
        let channel = member_channel(&addr)
            .map_err(|e| ControlPlaneError::Unavailable(format!("leader address {addr:?}: {e}")))?;
        *cached = Some((addr, channel.clone()));
        Ok(Some(channel))
    }

    /// Commits `command` through Raft and returns what applying it produced. On a follower the
    /// write goes to the leader; the caller never needs to know which member leads. A write not
    /// committed within [`WRITE_TIMEOUT`] (no quorum reachable) is reported as unconfirmed.
    pub(crate) async fn write(&self, command: Command) -> Result<CommandResult, ControlPlaneError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.write_unbounded(command)).await {
            Ok(result) => result,
            Err(_) => Err(ControlPlaneError::Unconfirmed(WRITE_TIMEOUT)),
        }
    }

    async fn write_unbounded(&self, command: Command) -> Result<CommandResult, ControlPlaneError> {
        match self.raft.client_write(command.clone()).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                let (Some(leader_id), Some(leader)) = (forward.leader_id, forward.leader_node) else {
                    return Err(ControlPlaneError::NoLeader);
                };
                if self.faults.is_cut(self.id, leader_id) {
                    return Err(ControlPlaneError::Unavailable(format!(
                        "cannot reach the leader (member {leader_id})"
                    )));
                }
                forward_write(&leader.addr, &self.token, &command)
                    .await
                    .map_err(|s| ControlPlaneError::Unavailable(format!("forwarding to the leader: {}", s.message())))?
                    .map_err(ControlPlaneError::Unavailable)
            }
            Err(e) => Err(ControlPlaneError::Unavailable(e.to_string())),
        }
    }

    /// Waits until this member may serve a read that reflects every write acknowledged before
    /// the read began (the leader confirms it still leads: ReadIndex).
    pub(crate) async fn linearizable(&self) -> Result<(), ControlPlaneError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ControlPlaneError::Unavailable(format!(
                "cannot confirm leadership for a fresh read: {e}"
            ))),
            Err(_) => Err(ControlPlaneError::Unavailable(
                "no quorum confirmed this member's leadership within 5s".into(),
            )),
        }
    }
}
