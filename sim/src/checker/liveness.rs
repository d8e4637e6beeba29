//! Liveness: once every fault has healed, every partition can be read in full from its leader.

use super::{Anomaly, Model};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    for partition in 0..model.partitions {
        if let Some(reason) = model.final_failures.get(&partition) {
            anomalies.push(Anomaly {
                property: "liveness",
                detail: format!("partition {partition} could not be read after healing: {reason}"),
            });
        } else if !model.finals.contains_key(&partition) {
            anomalies.push(Anomaly {
                property: "liveness",
                detail: format!("partition {partition} was never read after healing"),
            });
        }
    }
}
