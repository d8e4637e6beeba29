//! Replica placement: which brokers get a new topic's partitions.

use std::collections::BTreeMap;

use crate::error::ControllerError;

/// Chooses `replication_factor` distinct live brokers for each of `partitions` partitions,
/// balancing both the replicas each broker holds and the preferred leaders (first replicas),
/// counting what the brokers already hold. Ties go to the lower broker id, so placement is
/// deterministic.
pub fn place(
    live_brokers: &[u64],
    partitions: u32,
    replication_factor: u32,
    existing_replicas: &BTreeMap<u64, u32>,
    existing_leaders: &BTreeMap<u64, u32>,
) -> Result<Vec<Vec<u64>>, ControllerError> {
    let rf = replication_factor as usize;
    if rf == 0 || rf > live_brokers.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            requested: replication_factor,
            live_brokers: live_brokers.len() as u32,
        });
    }
    let mut replicas: BTreeMap<u64, u32> =
        live_brokers.iter().map(|b| (*b, existing_replicas.get(b).copied().unwrap_or(0))).collect();
    let mut leaders: BTreeMap<u64, u32> =
        live_brokers.iter().map(|b| (*b, existing_leaders.get(b).copied().unwrap_or(0))).collect();
    let mut out = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        let leader = *leaders
            .iter()
            .min_by_key(|(id, n)| (**n, replicas[*id], **id))
            .map(|(id, _)| id)
            .expect("at least one live broker");
        let mut chosen = vec![leader];
        while chosen.len() < rf {
            let next = *replicas
                .iter()
                .filter(|(id, _)| !chosen.contains(id))
                .min_by_key(|(id, n)| (**n, **id))
                .map(|(id, _)| id)
                .expect("rf <= live brokers");
            chosen.push(next);
        }
        *leaders.get_mut(&leader).expect("leader is live") += 1;
        for id in &chosen {
            *replicas.get_mut(id).expect("replica is live") += 1;
        }
        out.push(chosen);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Starting from nothing, every broker ends within one replica and one leader of every other.
        #[test]
        fn balanced_and_distinct(brokers in 1usize..8, partitions in 1u32..64, rf_seed in 0usize..8) {
            let live: Vec<u64> = (1..=brokers as u64).collect();
            let rf = (rf_seed % brokers + 1) as u32;
            let placed = place(&live, partitions, rf, &BTreeMap::new(), &BTreeMap::new()).unwrap();
            prop_assert_eq!(placed.len(), partitions as usize);
            let mut replicas = BTreeMap::new();
            let mut leaders = BTreeMap::new();
            for set in &placed {
                prop_assert_eq!(set.len(), rf as usize);
                let mut sorted = set.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), rf as usize, "replicas are distinct");
                *leaders.entry(set[0]).or_insert(0) += 1;
                for b in set { *replicas.entry(*b).or_insert(0) += 1; }
            }
            let spread = |m: &BTreeMap<u64, i32>| {
                let counts: Vec<i32> = live.iter().map(|b| m.get(b).copied().unwrap_or(0)).collect();
                counts.iter().max().unwrap() - counts.iter().min().unwrap()
            };
            prop_assert!(spread(&replicas) <= 1);
            prop_assert!(spread(&leaders) <= 1);
        }
    }

    #[test]
    fn rejects_rf_above_live_brokers() {
        let err = place(&[1, 2], 1, 3, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err, ControllerError::InvalidReplicationFactor { requested: 3, live_brokers: 2 });
    }
}
