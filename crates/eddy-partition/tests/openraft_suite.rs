//! openraft's own storage test suite (`openraft::testing::log::Suite`, in the pinned version) run
//! against a partition group's storage: [`LogStore`] over the node's key-value store, and the
//! partition state machine.

use std::sync::Arc;

use eddy_partition::{PartitionStateMachine, PartitionTypes, open_partition};
use eddy_storage::{KvStore, LogStore, MemKv};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<PartitionTypes, LogStore<PartitionTypes>, PartitionStateMachine> for Builder {
    async fn build(
        &self,
    ) -> Result<((), LogStore<PartitionTypes>, PartitionStateMachine), StorageError<PartitionTypes>> {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let (log, state_machine, _, _) = open_partition(kv, 7).expect("a fresh partition opens");
        Ok(((), log, state_machine))
    }
}

#[test]
fn partition_storage_passes_the_openraft_suite() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(eddy_raft::seeded(1, async { Suite::test_all(Builder).await })).expect("the openraft suite");
}
