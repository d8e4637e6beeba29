//! No value appears twice in the log. Idempotent producers retry, and their duplicates must be
//! dropped by the broker; one-shot sends are never retried at all.

use std::collections::BTreeMap;

use super::{Anomaly, Model, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    let mut first: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for (partition, (records, _)) in &model.finals {
        for record in records {
            if let Some(&(p, o)) = first.get(record.value.as_str()) {
                anomalies.push(Anomaly {
                    property: Property::Duplicate,
                    detail: format!("{} is at {p}@{o} and again at {partition}@{}", record.value, record.offset),
                });
            } else {
                first.insert(record.value.as_str(), (*partition, record.offset));
            }
        }
    }
}
