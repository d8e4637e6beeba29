//! Retention: each broker applies its topics' `retention.ms` and `retention.bytes` to the
//! partitions it leads. The leader works out where the log should start
//! ([`eddy_partition::PartitionReader::retention_point`]) and proposes a trim to that offset
//! through the partition's own log, so every replica moves its log start at the same entry and
//! deletes the same records; the Raft log is then purged behind it (see
//! `eddy_partition::state_machine`).
//!
//! `__consumer_offsets` is kept whole: its records are the groups' state, which retention must
//! not cut (that needs log compaction, which Eddy does not have yet).

use std::sync::Arc;
use std::time::Duration;

use eddy_controller::{TopicConfig, is_internal_topic};
use eddy_partition::{PartitionCommand, PartitionResponse, Proposal, Replica, Retention};

use crate::broker::Inner;

/// How long a trim may take to commit before the next round tries again.
const TRIM_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn retention_loop(inner: Arc<Inner>) {
    let interval = match inner.config.retention_check_interval_ms {
        0 => return,
        ms => Duration::from_millis(ms),
    };
    crate::broker::every(inner.stopping.subscribe(), interval, || enforce(&inner)).await;
}

/// One round over the partitions this broker leads.
async fn enforce(inner: &Inner) {
    let view = inner.view.borrow().clone();
    if !view.is_current() {
        return;
    }
    let now_ms = inner.clock.now_ms();
    for (topic, partition) in view.metadata.partitions_of(inner.node_id) {
        if is_internal_topic(&topic.name) {
            continue;
        }
        let config = TopicConfig::of(&topic.configs);
        let retention = Retention { ms: config.retention_ms, bytes: config.retention_bytes };
        if retention == Retention::default() {
            continue;
        }
        let Some(replica) = inner.replicas.get(partition.group_id) else { continue };
        let leadership = replica.leadership();
        if !(leadership.is_self && leadership.ready) {
            continue;
        }
        let reader = replica.reader.clone();
        let point =
            crate::replicas::storage_read(inner.kv.reads_block(), move || reader.retention_point(retention, now_ms))
                .await;
        match point {
            Ok(Ok(Some(log_start_offset))) => trim(&replica, log_start_offset).await,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(topic = %topic.name, partition = partition.partition, error = %e, "retention could not read the partition")
            }
            Err(e) => {
                tracing::warn!(topic = %topic.name, partition = partition.partition, error = %e, "retention could not read the partition")
            }
        }
    }
}

/// Proposes moving `replica`'s log start to `log_start_offset` and waits for it to apply.
async fn trim(replica: &Replica, log_start_offset: u64) {
    let from = replica.view.borrow().log_start_offset;
    let proposal = Proposal {
        command: PartitionCommand::Trim { log_start_offset },
        record_count: 0,
        idempotent: false,
        predict: false,
        settle_timeout: Duration::ZERO,
    };
    let outcome = match replica.propose(proposal).await {
        Ok(mut proposed) => tokio::time::timeout(TRIM_TIMEOUT, proposed.outcome()).await,
        Err(e) => {
            tracing::debug!(topic = %replica.topic, partition = replica.partition, error = ?e, "retention trim not proposed");
            return;
        }
    };
    match outcome {
        Ok(Ok(Ok(written))) => {
            if let PartitionResponse::Trimmed { log_start_offset } = written.data {
                metrics::counter!("eddy_retention_trims_total").increment(1);
                tracing::info!(
                    topic = %replica.topic,
                    partition = replica.partition,
                    from,
                    to = log_start_offset,
                    "retention moved the log start"
                );
            }
        }
        other => {
            tracing::debug!(topic = %replica.topic, partition = replica.partition, outcome = ?other.map(|o| o.map(|r| r.map(|w| w.data))), "retention trim did not commit");
        }
    }
}
