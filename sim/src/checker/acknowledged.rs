//! No acknowledged record is lost: every `ok` send is in the final read of its partition, at the
//! offset it was acknowledged with; and every `unknown` send that any read returned (so it was
//! committed) is in the final read too. An ACKS_LEADER send may be lost with the leadership, but
//! when it is in the final read it is at the offset it was acknowledged with, and once any read
//! returned it, it is not lost.

use std::collections::BTreeMap;

use super::{Anomaly, Model, Outcome, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    // value -> (partition, offset) in the final reads.
    let mut in_final: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for (partition, (records, _)) in &model.finals {
        for record in records {
            in_final.insert(record.value.as_str(), (*partition, record.offset));
        }
    }
    let mut seen_anywhere: BTreeMap<&str, u64> = BTreeMap::new();
    for read in &model.reads {
        for record in &read.records {
            seen_anywhere.entry(record.value.as_str()).or_insert(read.at_ms);
        }
    }
    for (value, send) in &model.sends {
        if !model.finals.contains_key(&send.partition) {
            continue; // reported as unavailable (liveness.rs)
        }
        match send.outcome {
            Outcome::Ok { offset } => match in_final.get(value.as_str()) {
                None => anomalies.push(Anomaly {
                    property: Property::AcknowledgedLost,
                    detail: format!(
                        "{value} was acknowledged at {}@{offset} but is not in the final read",
                        send.partition
                    ),
                }),
                Some(&(partition, found)) if partition != send.partition || found != offset => {
                    anomalies.push(Anomaly {
                        property: Property::AcknowledgedMoved,
                        detail: format!(
                            "{value} was acknowledged at {}@{offset} but the final read has it at {partition}@{found}",
                            send.partition
                        ),
                    })
                }
                Some(_) => {}
            },
            Outcome::LeaderOk { offset } => match in_final.get(value.as_str()) {
                Some(&(partition, found)) if partition != send.partition || found != offset => {
                    anomalies.push(Anomaly {
                        property: Property::LeaderAckMoved,
                        detail: format!(
                            "{value} was acknowledged by the leader at {}@{offset} but the final read has it at \
                             {partition}@{found}",
                            send.partition
                        ),
                    })
                }
                Some(_) => {}
                None => {
                    if let Some(at_ms) = seen_anywhere.get(value.as_str()) {
                        anomalies.push(Anomaly {
                            property: Property::CommittedLost,
                            detail: format!(
                                "{value} (acknowledged by the leader) was read at {at_ms} ms, so it was committed, \
                                 but the final read lacks it"
                            ),
                        });
                    }
                }
            },
            Outcome::Unknown | Outcome::Pending => {
                if let Some(at_ms) = seen_anywhere.get(value.as_str())
                    && !in_final.contains_key(value.as_str())
                {
                    anomalies.push(Anomaly {
                        property: Property::CommittedLost,
                        detail: format!(
                            "{value} (outcome unknown) was read at {at_ms} ms, so it was committed, but the final read lacks it"
                        ),
                    });
                }
            }
            Outcome::Fail => {}
        }
    }
}
