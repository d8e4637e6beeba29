//! A consumer never goes backwards and never skips: each poll returns consecutive offsets that
//! start exactly at the position asked for, and the next poll asks for the offset after the last
//! one returned. (Consumer groups, and with them reassignments and committed offsets, are not in
//! the workload yet; the property then also covers offsets committed by groups.)

use std::collections::BTreeMap;

use super::{Anomaly, Model, Property, Source};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for read in &model.reads {
        let Source::Poll { consumer, position } = &read.source else { continue };
        if let Some(&expected) = next.get(consumer.as_str())
            && *position != expected
        {
            anomalies.push(Anomaly {
                property: Property::ConsumerOrder,
                detail: format!("{consumer} polled from {position} after reading up to {}", expected.wrapping_sub(1)),
            });
        }
        for (want, record) in (*position..).zip(&read.records) {
            if record.offset != want {
                anomalies.push(Anomaly {
                    property: Property::ConsumerOrder,
                    detail: format!(
                        "{consumer} at {} ms expected offset {want} but got {} ({})",
                        read.at_ms, record.offset, record.value
                    ),
                });
                break;
            }
        }
        next.insert(consumer.as_str(), read.records.last().map_or(*position, |r| r.offset + 1));
    }
}
