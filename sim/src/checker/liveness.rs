//! Availability: once every fault has healed, every partition can be read in full from its
//! leader. A partition that cannot is reported by name as `unavailable`, apart from data loss:
//! its acknowledged records are not counted as lost (nothing can tell whether they are), and the
//! anomaly says how many could not be checked.

use super::{Anomaly, Model, Outcome, Property};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    for partition in 0..model.partitions {
        if model.finals.contains_key(&partition) {
            continue;
        }
        let unchecked = model
            .sends
            .values()
            .filter(|s| s.partition == partition && matches!(s.outcome, Outcome::Ok { .. }))
            .count();
        let why = match model.final_failures.get(&partition) {
            Some(reason) => format!("could not be read after healing: {reason}"),
            None => "was never read after healing".to_string(),
        };
        anomalies.push(Anomaly {
            property: Property::Unavailable,
            detail: format!(
                "partition {partition} {why}; its {unchecked} acknowledged records could not be checked for loss"
            ),
        });
    }
}
