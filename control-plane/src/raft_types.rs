//! The Raft type configuration: what a log entry carries (a [`Command`]) and what applying it
//! returns (a [`CommandResult`]).

use fjord_core::{FunctionRecord, FunctionSpec, NodeInfo};
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

pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<MemberId>;
pub type LogId = openraft::LogId<MemberId>;

/// A change to the replicated state. Every admin write is one entry; timestamps are taken by
/// the member that proposes it, so applying is deterministic on every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Deploy {
        spec: FunctionSpec,
        now_ms: u64,
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
    NotFound {
        name: String,
    },
    Invalid {
        field: String,
        reason: String,
    },
    /// For entries that carry no command (blank and membership entries).
    Noop,
}
