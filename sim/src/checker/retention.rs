//! Records leave a topic only through its retention: in the retained topic's final read, the
//! offsets run densely from the log start to the end; every acknowledged record at or above the
//! log start is there, at its offset; the log start is no further than `retention.bytes` allows
//! (the records from it on hold at least that many bytes, as the rule keeps whole batches until
//! dropping one would go below the limit); and every replica read from the leader's log start
//! holds the same records (a prefix of them, when it trails), none having lost what the leader
//! retains, as a replica would that installed a snapshot standing for retained records.

use std::collections::BTreeMap;

use super::{Anomaly, Property};
use crate::history::{Entry, Event, ReadRecord};
use crate::workload::RETAINED_BYTES;

fn lost(detail: String) -> Anomaly {
    Anomaly { property: Property::RetentionLost, detail }
}

pub fn check(entries: &[Entry], anomalies: &mut Vec<Anomaly>) {
    let mut acked: BTreeMap<u64, &str> = BTreeMap::new();
    let mut last: Option<(u64, &[ReadRecord])> = None;
    for entry in entries {
        match &entry.event {
            Event::RetainedAck { value, offset } => {
                acked.insert(*offset, value);
            }
            Event::RetainedFinal { log_start, records } => last = Some((*log_start, records)),
            Event::RetainedFinalFailed { reason } => anomalies.push(Anomaly {
                property: Property::Unavailable,
                detail: format!("the retained topic could not be read after healing: {reason}"),
            }),
            _ => {}
        }
    }
    let Some((log_start, records)) = last else { return };
    if let Some((i, record)) = records.iter().enumerate().find(|(i, r)| r.offset != log_start + *i as u64) {
        anomalies.push(lost(format!(
            "retained: position {i} of the final read from log start {log_start} holds offset {}",
            record.offset
        )));
        return;
    }
    let end = log_start + records.len() as u64;
    for (offset, value) in acked.range(log_start..) {
        let found = records.get((offset - log_start) as usize).map(|r| r.value.as_str());
        if *offset >= end || found != Some(value) {
            anomalies.push(lost(format!(
                "retained: {value} was acknowledged at {offset} (log start {log_start}, end {end}) but the final read has {found:?}"
            )));
        }
    }
    let bytes: u64 = records.iter().map(|r| eddy_proto::record_size_bytes(0, r.value.len(), []) as u64).sum();
    if log_start > 0 && bytes < RETAINED_BYTES {
        anomalies.push(lost(format!(
            "retained: the log starts at {log_start} but keeps only {bytes} bytes, below retention.bytes={RETAINED_BYTES}"
        )));
    }
    for entry in entries {
        let Event::RetainedReplica { node, records: replica, error } = &entry.event else { continue };
        if let Some(error) = error {
            anomalies
                .push(lost(format!("retained: replica n{node} no longer holds the log start {log_start}: {error}")));
        } else if replica.len() > records.len() || replica[..] != records[..replica.len()] {
            anomalies
                .push(lost(format!("retained: replica n{node} differs from the leader from log start {log_start}")));
        }
    }
}
