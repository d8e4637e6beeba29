//! No (partition, offset) ever holds two values, across every read of every kind: consumer polls,
//! the final read and each replica's own log.

use std::collections::BTreeMap;

use super::{Anomaly, Model, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    let mut seen: BTreeMap<(u32, u64), &str> = BTreeMap::new();
    let mut reported = 0usize;
    for read in &model.reads {
        for record in &read.records {
            match seen.get(&(read.partition, record.offset)) {
                Some(&value) if value != record.value => {
                    reported += 1;
                    if reported <= 20 {
                        anomalies.push(Anomaly {
                            property: Property::OffsetTwoValues,
                            detail: format!(
                                "{}@{} held {value} and {} ({:?} at {} ms)",
                                read.partition, record.offset, record.value, read.source, read.at_ms
                            ),
                        });
                    }
                }
                Some(_) => {}
                None => {
                    seen.insert((read.partition, record.offset), record.value.as_str());
                }
            }
        }
    }
}
