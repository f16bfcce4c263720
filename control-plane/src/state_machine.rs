//! The state machine: the [`ClusterState`] in memory, snapshots on disk.
//!
//! Applied state lives in memory and is rebuilt on start from the last snapshot plus the
//! committed log entries after it. A snapshot is written to a temporary file, fsynced and renamed
//! into place, so a crash leaves either the old snapshot or the new one, never half of one.

use crate::raft_types::{CommandResult, LogId, MemberId, StorageError, TypeConfig};
use crate::state::ClusterState;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// What the state machine holds: the cluster state and how far the log has been applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership<MemberId, BasicNode>,
    pub(crate) cluster: ClusterState,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<MemberId, BasicNode>,
    data: Vec<u8>,
}

/// The state machine. Cloning shares the same state; readers use [`StateMachineStore::read`].
#[derive(Clone)]
pub struct StateMachineStore {
    applied: Arc<RwLock<AppliedState>>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshot_path: PathBuf,
    /// Carries the last applied index; watchers wake on every apply.
    applied_tx: Arc<watch::Sender<u64>>,
}

impl StateMachineStore {
    /// Opens the state machine, loading the snapshot under `dir` if there is one.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let snapshot_path = dir.join("snapshot.bin");
        let mut applied = AppliedState::default();
        let mut snapshot = None;
        if snapshot_path.exists() {
            let bytes = std::fs::read(&snapshot_path)?;
            let (meta, data) = decode_snapshot_file(&bytes)?;
            applied = serde_json::from_slice(&data).map_err(std::io::Error::other)?;
            snapshot = Some(StoredSnapshot { meta, data });
        }
        let index = applied.last_applied.map_or(0, |l| l.index);
        Ok(StateMachineStore {
            applied: Arc::new(RwLock::new(applied)),
            snapshot: Arc::new(Mutex::new(snapshot)),
            snapshot_path,
            applied_tx: Arc::new(watch::channel(index).0),
        })
    }

    /// Runs `f` on the current state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&AppliedState) -> T) -> T {
        f(&self.applied.read().expect("state lock poisoned"))
    }

    /// A receiver that changes whenever an entry is applied.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn persist_snapshot(&self, stored: &StoredSnapshot) -> std::io::Result<()> {
        let tmp = self.snapshot_path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        let meta = serde_json::to_vec(&stored.meta).map_err(std::io::Error::other)?;
        file.write_all(&(meta.len() as u64).to_le_bytes())?;
        file.write_all(&meta)?;
        file.write_all(&stored.data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.snapshot_path)?;
        if let Some(dir) = self.snapshot_path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn decode_snapshot_file(bytes: &[u8]) -> std::io::Result<(SnapshotMeta<MemberId, BasicNode>, Vec<u8>)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "snapshot file is truncated");
    let len_bytes: [u8; 8] = bytes.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let len = u64::from_le_bytes(len_bytes) as usize;
    let meta_bytes = bytes.get(8..8 + len).ok_or_else(bad)?;
    let meta = serde_json::from_slice(meta_bytes).map_err(std::io::Error::other)?;
    Ok((meta, bytes[8 + len..].to_vec()))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, last_membership) = {
            let applied = self.applied.read().expect("state lock poisoned");
            let data =
                serde_json::to_vec(&*applied).map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)))?;
            (data, applied.last_applied, applied.last_membership.clone())
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, now_millis()),
            None => format!("empty-{}", now_millis()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let store = self.clone();
        let to_persist = stored.clone();
        tokio::task::spawn_blocking(move || store.persist_snapshot(&to_persist))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        *self.snapshot.lock().expect("snapshot lock poisoned") = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership<MemberId, BasicNode>), StorageError> {
        Ok(self.read(|a| (a.last_applied, a.last_membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let last_index = {
            let mut applied = self.applied.write().expect("state lock poisoned");
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let result = match entry.payload {
                    EntryPayload::Blank => CommandResult::Noop,
                    EntryPayload::Normal(command) => applied.cluster.apply(command, entry.log_id.leader_id.term),
                    EntryPayload::Membership(membership) => {
                        applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        CommandResult::Noop
                    }
                };
                results.push(result);
            }
            applied.last_applied.map_or(0, |l| l.index)
        };
        self.applied_tx.send_replace(last_index);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state: AppliedState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let store = self.clone();
        let to_persist = stored.clone();
        tokio::task::spawn_blocking(move || store.persist_snapshot(&to_persist))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        let index = state.last_applied.map_or(0, |l| l.index);
        *self.applied.write().expect("state lock poisoned") = state;
        *self.snapshot.lock().expect("snapshot lock poisoned") = Some(stored);
        self.applied_tx.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.snapshot.lock().expect("snapshot lock poisoned").clone();
        Ok(current.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
