//! openraft's own storage test suite (`openraft::testing::log::Suite`, in the pinned version) run
//! against the controller group's storage: [`LogStore`] and the controller state machine.

use std::sync::Arc;

use eddy_controller::{ControllerStateMachine, ControllerTypes};
use eddy_storage::{KvStore, LogStore, MemKv};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<ControllerTypes, LogStore<ControllerTypes>, ControllerStateMachine> for Builder {
    async fn build(
        &self,
    ) -> Result<((), LogStore<ControllerTypes>, ControllerStateMachine), StorageError<ControllerTypes>> {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let (state_machine, _) = ControllerStateMachine::open(kv.clone()).expect("a fresh controller opens");
        Ok(((), LogStore::new(kv, eddy_controller::CONTROLLER_GROUP), state_machine))
    }
}

#[test]
fn controller_storage_passes_the_openraft_suite() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(eddy_raft::seeded(1, async { Suite::test_all(Builder).await })).expect("the openraft suite");
}
