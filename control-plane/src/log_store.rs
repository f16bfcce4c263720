//! The Raft log and vote, in redb. Every append, vote and truncation is committed with redb's
//! immediate durability (fsync) before openraft is told it happened.

use crate::raft_types::{LogId, MemberId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableTable, TableDefinition};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// The log store. Cloning shares the same database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Latest committed index openraft told us, for status reports (`u64::MAX` = none).
    committed_index: Arc<AtomicU64>,
}

impl LogStore {
    pub fn open(path: &Path) -> Result<Self, Box<redb::Error>> {
        let db = Database::create(path).map_err(|e| Box::new(e.into()))?;
        let txn = db.begin_write().map_err(|e| Box::new(e.into()))?;
        txn.open_table(LOGS).map_err(|e| Box::new(e.into()))?;
        txn.open_table(META).map_err(|e| Box::new(e.into()))?;
        txn.commit().map_err(|e| Box::new(e.into()))?;
        Ok(LogStore {
            db: Arc::new(db),
            committed_index: Arc::new(AtomicU64::new(u64::MAX)),
        })
    }

    /// The committed index last saved, if any.
    pub(crate) fn committed_index(&self) -> Option<u64> {
        match self.committed_index.load(Ordering::Relaxed) {
            u64::MAX => None,
            i => Some(i),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AnyError> {
        let txn = self.db.begin_read().map_err(|e| AnyError::new(&e))?;
        let table = txn.open_table(META).map_err(|e| AnyError::new(&e))?;
        let value = table.get(key).map_err(|e| AnyError::new(&e))?;
        match value {
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(|e| AnyError::new(&e)),
            None => Ok(None),
        }
    }

    /// Runs a write transaction on the blocking pool and commits it durably.
    async fn write<F>(&self, f: F) -> Result<(), AnyError>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), AnyError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(|e| AnyError::new(&e))?;
            f(&txn)?;
            txn.commit().map_err(|e| AnyError::new(&e))
        })
        .await
        .map_err(|e| AnyError::new(&e))?
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &'static str, value: &T) -> Result<(), AnyError> {
        let bytes = serde_json::to_vec(value).map_err(|e| AnyError::new(&e))?;
        self.write(move |txn| {
            let mut table = txn.open_table(META).map_err(|e| AnyError::new(&e))?;
            table.insert(key, bytes.as_slice()).map_err(|e| AnyError::new(&e))?;
            Ok(())
        })
        .await
    }
}

fn to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let read = || -> Result<Vec<Entry<TypeConfig>>, AnyError> {
            let txn = self.db.begin_read().map_err(|e| AnyError::new(&e))?;
            let table = txn.open_table(LOGS).map_err(|e| AnyError::new(&e))?;
            let mut entries = Vec::new();
            for item in table.range::<u64>(to_bounds(&range)).map_err(|e| AnyError::new(&e))? {
                let (_, value) = item.map_err(|e| AnyError::new(&e))?;
                entries.push(serde_json::from_slice(value.value()).map_err(|e| AnyError::new(&e))?);
            }
            Ok(entries)
        };
        read().map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let state = || -> Result<LogState<TypeConfig>, AnyError> {
            let last_purged: Option<LogId> = self.read_meta(KEY_PURGED)?;
            let txn = self.db.begin_read().map_err(|e| AnyError::new(&e))?;
            let table = txn.open_table(LOGS).map_err(|e| AnyError::new(&e))?;
            let last = match table.last().map_err(|e| AnyError::new(&e))? {
                Some((_, value)) => {
                    let entry: Entry<TypeConfig> =
                        serde_json::from_slice(value.value()).map_err(|e| AnyError::new(&e))?;
                    Some(entry.log_id)
                }
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        };
        state().map_err(|e| StorageIOError::read_logs(e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<MemberId>>, StorageError> {
        self.read_meta(KEY_VOTE)
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed_index
            .store(committed.map_or(u64::MAX, |c| c.index), Ordering::Relaxed);
        self.write_meta(KEY_COMMITTED, &committed)
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self.read_meta(KEY_COMMITTED).map_err(StorageIOError::read_logs)?;
        let committed = committed.flatten();
        self.committed_index
            .store(committed.map_or(u64::MAX, |c| c.index), Ordering::Relaxed);
        Ok(committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
            encoded.push((entry.log_id.index, bytes));
        }
        let result = self
            .write(move |txn| {
                let mut table = txn.open_table(LOGS).map_err(|e| AnyError::new(&e))?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice()).map_err(|e| AnyError::new(&e))?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |txn| {
            let mut table = txn.open_table(LOGS).map_err(|e| AnyError::new(&e))?;
            table
                .retain_in(log_id.index.., |_, _| false)
                .map_err(|e| AnyError::new(&e))?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&log_id).map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        self.write(move |txn| {
            let mut meta = txn.open_table(META).map_err(|e| AnyError::new(&e))?;
            meta.insert(KEY_PURGED, bytes.as_slice())
                .map_err(|e| AnyError::new(&e))?;
            let mut table = txn.open_table(LOGS).map_err(|e| AnyError::new(&e))?;
            table
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(|e| AnyError::new(&e))?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(e).into())
    }
}
