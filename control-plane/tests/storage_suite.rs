//! openraft's own storage test suite, run against Fjord's redb log store and state machine.

use fjord_control_plane::log_store::LogStore;
use fjord_control_plane::raft_types::{StorageError, TypeConfig};
use fjord_control_plane::state_machine::StateMachineStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let log = LogStore::open(&dir.path().join("raft-log.redb"))
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let sm =
            StateMachineStore::open(dir.path()).map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(RedbStoreBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
