//! Raft-level properties: at most one leader per term in every group (as the nodes' own metrics
//! report leadership), and every replica's committed log is a prefix of the final log.

use super::{Anomaly, Model, Property, Source};

pub fn check(model: &Model, anomalies: &mut Vec<Anomaly>) {
    for ((group, term), nodes) in &model.leaders {
        if nodes.len() > 1 {
            anomalies.push(Anomaly {
                property: Property::TwoLeadersInTerm,
                detail: format!("group {group} term {term} was led by nodes {nodes:?}"),
            });
        }
    }
    for read in &model.reads {
        let Source::Replica { node } = read.source else { continue };
        let Some((final_records, _)) = model.finals.get(&read.partition) else { continue };
        let diverged =
            read.records.len() > final_records.len() || read.records.iter().zip(final_records).any(|(a, b)| a != b);
        if diverged {
            anomalies.push(Anomaly {
                property: Property::ReplicaLogDiverged,
                detail: format!(
                    "n{node}'s committed log of partition {} ({} records) is not a prefix of the leader's ({} records)",
                    read.partition,
                    read.records.len(),
                    final_records.len()
                ),
            });
        }
    }
}
