//! No read returns a value whose send failed definitely, nor a value that was never sent.

use super::{Anomaly, Model, Outcome, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    let mut reported = std::collections::BTreeSet::new();
    for read in &model.reads {
        for record in &read.records {
            let problem = match model.sends.get(&record.value) {
                None => "was never sent",
                Some(send) if send.outcome == Outcome::Fail => "belongs to a send that failed",
                Some(send) if send.partition != read.partition => "was sent to another partition",
                Some(_) => continue,
            };
            if reported.insert(record.value.as_str()) {
                anomalies.push(Anomaly {
                    property: Property::PhantomRead,
                    detail: format!(
                        "{}@{} = {} {problem} ({:?} at {} ms)",
                        read.partition, record.offset, record.value, read.source, read.at_ms
                    ),
                });
            }
        }
    }
}
