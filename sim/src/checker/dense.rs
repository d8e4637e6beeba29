//! Offsets are dense: the final read of a partition holds exactly offsets 0, 1, ... up to its
//! high watermark, with no gap.

use super::{Anomaly, Model, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    for (partition, (records, high_watermark)) in &model.finals {
        if let Some((i, record)) = records.iter().enumerate().find(|(i, r)| r.offset != *i as u64) {
            anomalies.push(Anomaly {
                property: Property::OffsetsNotDense,
                detail: format!("partition {partition}: position {i} of the final read holds offset {}", record.offset),
            });
        } else if records.len() as u64 != *high_watermark {
            anomalies.push(Anomaly {
                property: Property::OffsetsNotDense,
                detail: format!(
                    "partition {partition}: the final read has {} records but the high watermark is {high_watermark}",
                    records.len()
                ),
            });
        }
    }
}
