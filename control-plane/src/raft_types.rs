//! The Raft type configuration: what a log entry carries (a [`Command`]) and what applying it
//! returns (a [`CommandResult`]).

use crate::secrets::Sealed;
use fjord_core::{FunctionRecord, FunctionSpec, NodeInfo};
use fjord_decisions::placement::Placements;
use fjord_decisions::policy::ClusterPolicy;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

pub type MemberId = u64;

openraft::declare_raft_types!(
    /// Fjord's Raft types.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = MemberId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<MemberId>;
pub(crate) type LogId = openraft::LogId<MemberId>;

/// A change to the replicated state. Every admin write is one entry; timestamps are taken by
/// the member that proposes it, so applying is deterministic on every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Deploy {
        spec: FunctionSpec,
        now_ms: u64,
        /// The reference as deployed when `spec.image` is its resolved digest.
        #[serde(default)]
        image_ref: String,
    },
    Remove {
        name: String,
    },
    Scale {
        name: String,
        min: Option<u32>,
        max: Option<u32>,
        now_ms: u64,
    },
    RegisterNode {
        info: NodeInfo,
        now_ms: u64,
    },
    /// A leader-only loop's decision that a node is down or back. `term` is the term of the
    /// leader that decided it: applied only if the entry was proposed in that same term, so a
    /// deposed leader's late decision is refused everywhere (fencing).
    SetNodeState {
        id: String,
        state: NodeState,
        term: u64,
    },
    /// Forgets a node that is down or drained, with its placements (an operator's cleanup of a
    /// machine that is gone). Refused for a node in any other state.
    RemoveNode {
        id: String,
    },
    /// Records a member id as used forever, before the member is removed.
    RetireMember {
        id: MemberId,
    },
    /// The scheduler's placements, whole (function -> node -> instances). Fenced by `term` like
    /// [`Command::SetNodeState`], so a deposed leader's plan never lands.
    SetPlacements {
        placements: Placements,
        term: u64,
    },
    /// Replaces the cluster policy (validated before it is proposed and again when applied).
    SetPolicy {
        policy: ClusterPolicy,
    },
    /// A node autoscaler decision, committed before it is acted on (fenced by `term`), so a new
    /// leader neither repeats nor forgets it.
    NodeGroupAction {
        group: String,
        action: GroupAction,
        reason: String,
        at_ms: u64,
        term: u64,
    },
    /// A scheduled function's tick, fired (enqueued) by the leader of `term` (fenced like the
    /// other leader decisions). `tick_ms` is on the schedule's clock.
    CronFired {
        function: String,
        tick_ms: u64,
        term: u64,
    },
    /// Stores a named secret's value, sealed by the proposing member (never plaintext here).
    PutSecret {
        name: String,
        sealed: Sealed,
        mode: PutMode,
        now_ms: u64,
    },
    /// Forgets a secret; refused while a function names it.
    RemoveSecret {
        name: String,
    },
}

/// Whether a [`Command::PutSecret`] creates, updates (rotates) or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutMode {
    Create,
    Update,
    Upsert,
}

/// What the node autoscaler does to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupAction {
    /// The provider's desired size is set to `to`.
    ScaleOut { to: u32 },
    /// The node is drained (scale-in, step one).
    Drain { node: String },
    /// The drained node's machine is terminated, lowering the desired size by one.
    Terminate { node: String },
    /// The node it drained goes back to service.
    Restore { node: String },
}

impl std::fmt::Display for GroupAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupAction::ScaleOut { to } => write!(f, "scale out to {to} nodes"),
            GroupAction::Drain { node } => write!(f, "drain node {node}"),
            GroupAction::Terminate { node } => write!(f, "terminate node {node}"),
            GroupAction::Restore { node } => write!(f, "restore node {node}"),
        }
    }
}

/// Whether the cluster agreed a node can take work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    #[default]
    Ready,
    /// An operator asked to drain it: no new placements, its instances move elsewhere.
    Draining,
    /// Drained: nothing placed or running there; safe to stop or terminate.
    Drained,
    Down,
}

impl NodeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
            NodeState::Drained => "drained",
            NodeState::Down => "down",
        }
    }

    /// Whether an operator took the node out of service (draining or drained).
    pub(crate) fn is_drain(self) -> bool {
        matches!(self, NodeState::Draining | NodeState::Drained)
    }
}

/// What applying a [`Command`] produced. Refusals are results, not errors: the entry is
/// committed and applied identically everywhere, and the state is left unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    Deployed {
        record: FunctionRecord,
        changed: bool,
    },
    Removed {
        revision: u64,
    },
    Scaled {
        record: FunctionRecord,
    },
    NodeRegistered,
    NodeRemoved,
    NotFound {
        name: String,
    },
    Invalid {
        field: String,
        reason: String,
    },
    /// A secret stored at `version` (1 when created).
    SecretStored {
        version: u64,
    },
    SecretRemoved,
    /// A create of a secret that exists.
    SecretExists {
        name: String,
    },
    /// An update or removal of a secret that does not exist.
    SecretNotFound {
        name: String,
    },
    /// A removal of a secret these functions still name.
    SecretInUse {
        name: String,
        by: Vec<String>,
    },
    /// For entries that carry no command (blank and membership entries).
    Noop,
    /// A fenced command proposed by a leader of an older term: refused, nothing changed.
    Fenced {
        proposed_in: u64,
        decided_in: u64,
    },
}
