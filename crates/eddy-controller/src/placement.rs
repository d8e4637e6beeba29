//! Replica placement: which brokers get a new topic's partitions, which broker takes the
//! replica of one that died or is drained, and which moves even out a cluster.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ControllerError;
use crate::metadata::ClusterMetadata;

/// The broker to take over the replica `leaving` holds of a partition whose replicas (and move
/// target, if any) are `hosts`: one of `eligible` that holds none of it, preferring a rack none of
/// the partition's other replicas is on, then the fewest replicas (`counts`), then the lowest id.
pub fn replacement(
    hosts: &[u64],
    leaving: u64,
    eligible: &[u64],
    counts: &BTreeMap<u64, u32>,
    racks: &BTreeMap<u64, Option<String>>,
) -> Option<u64> {
    let used_racks: BTreeSet<&String> =
        hosts.iter().filter(|b| **b != leaving).filter_map(|b| racks.get(b).and_then(Option::as_ref)).collect();
    eligible.iter().copied().filter(|b| !hosts.contains(b)).min_by_key(|b| {
        let rack_taken = racks.get(b).and_then(Option::as_ref).is_some_and(|r| used_racks.contains(r));
        (rack_taken, counts.get(b).copied().unwrap_or(0), *b)
    })
}

/// The broker holding the most and the one holding the fewest, when they differ by two or more
/// (ties: the lower id holds "the most" last and "the fewest" first).
fn uneven(counts: &BTreeMap<u64, u32>) -> Option<(u64, u64)> {
    let (&full, &most) = counts.iter().max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))?;
    let (&empty, &least) = counts.iter().min_by_key(|(b, n)| (**n, **b))?;
    (most >= least + 2).then_some((full, empty))
}

/// Moves that even out the replicas per broker over the `eligible` brokers: while the fullest
/// holds at least two more than the emptiest, one of its partitions that the emptiest does not
/// hold moves there (keeping the replica's position, so the preferred leader moves with it),
/// never onto a rack another replica of the partition is on when the racks allow. A partition
/// moves at most once per plan, and partitions already moving are left alone. Returns each moved
/// partition's group with its new replicas.
pub fn rebalance(
    metadata: &ClusterMetadata,
    eligible: &[u64],
    racks: &BTreeMap<u64, Option<String>>,
) -> BTreeMap<u64, Vec<u64>> {
    let mut counts: BTreeMap<u64, u32> = eligible.iter().map(|b| (*b, 0)).collect();
    let mut partitions: Vec<(u64, Vec<u64>)> = Vec::new();
    for topic in metadata.topics.values() {
        for partition in &topic.partitions {
            let hosts = partition.target.clone().unwrap_or_else(|| partition.replicas.clone());
            for b in &hosts {
                if let Some(n) = counts.get_mut(b) {
                    *n += 1;
                }
            }
            if partition.target.is_none() {
                partitions.push((partition.group_id, hosts));
            }
        }
    }
    let mut moves: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    while let Some((full, empty)) = uneven(&counts) {
        let rack_of = |b: &u64| racks.get(b).and_then(Option::as_ref);
        let candidate = partitions
            .iter()
            .filter(|(group, hosts)| !moves.contains_key(group) && hosts.contains(&full) && !hosts.contains(&empty));
        // Prefer a partition whose other replicas are not on the emptiest broker's rack.
        let chosen = candidate
            .min_by_key(|(group, hosts)| {
                let clash = rack_of(&empty)
                    .is_some_and(|r| hosts.iter().filter(|b| **b != full).any(|b| rack_of(b) == Some(r)));
                (clash, *group)
            })
            .cloned();
        let Some((group, hosts)) = chosen else {
            // Nothing on the fullest broker can move to the emptiest: stop rather than loop.
            break;
        };
        let target: Vec<u64> = hosts.iter().map(|b| if *b == full { empty } else { *b }).collect();
        *counts.get_mut(&full).expect("counted") -= 1;
        *counts.get_mut(&empty).expect("counted") += 1;
        moves.insert(group, target);
    }
    // Then the preferred leaders (first replicas): a partition whose first replica is on the
    // broker with the most swaps it with one of its replicas on the broker with the fewest.
    let mut firsts: BTreeMap<u64, u32> = eligible.iter().map(|b| (*b, 0)).collect();
    let mut lists: Vec<(u64, Vec<u64>)> = partitions
        .iter()
        .map(|(group, hosts)| (*group, moves.get(group).cloned().unwrap_or_else(|| hosts.clone())))
        .collect();
    for (_, hosts) in &lists {
        if let Some(n) = hosts.first().and_then(|b| firsts.get_mut(b)) {
            *n += 1;
        }
    }
    while let Some((full, empty)) = uneven(&firsts) {
        let Some((group, hosts)) =
            lists.iter_mut().find(|(_, hosts)| hosts.first() == Some(&full) && hosts.contains(&empty))
        else {
            break;
        };
        let at = hosts.iter().position(|b| *b == empty).expect("contains");
        hosts.swap(0, at);
        *firsts.get_mut(&full).expect("counted") -= 1;
        *firsts.get_mut(&empty).expect("counted") += 1;
        moves.insert(*group, hosts.clone());
    }
    moves
}

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
    use crate::metadata::{BrokerInfo, ControllerCommand};

    fn cluster(brokers: u64, assignments: Vec<Vec<u64>>) -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        for id in 1..=brokers {
            md.apply(
                id,
                &ControllerCommand::RegisterBroker(BrokerInfo::new(id, format!("n{id}:9092"), format!("n{id}:9093"))),
            );
        }
        md.apply(
            100,
            &ControllerCommand::CreateTopic {
                name: "t".into(),
                replication_factor: 3,
                assignments,
                configs: BTreeMap::new(),
            },
        );
        md
    }

    #[test]
    fn rebalance_fills_a_new_broker_with_replicas_and_leaders() {
        // Six partitions on brokers 1-5, then broker 6 joins.
        let assignments = (0..6u64).map(|i| (0..3).map(|j| (i + j) % 5 + 1).collect()).collect();
        let md = cluster(6, assignments);
        let eligible: Vec<u64> = (1..=6).collect();
        let moves = rebalance(&md, &eligible, &BTreeMap::new());
        let mut replicas: BTreeMap<u64, u32> = BTreeMap::new();
        let mut leaders: BTreeMap<u64, u32> = BTreeMap::new();
        for p in &md.topics["t"].partitions {
            let hosts = moves.get(&p.group_id).unwrap_or(&p.replicas);
            assert_eq!(hosts.iter().collect::<BTreeSet<_>>().len(), 3, "distinct replicas: {hosts:?}");
            for b in hosts {
                *replicas.entry(*b).or_default() += 1;
            }
            *leaders.entry(hosts[0]).or_default() += 1;
        }
        assert_eq!(replicas.values().max().unwrap() - replicas.values().min().unwrap(), 0, "{replicas:?}");
        assert!(leaders.get(&6).is_some_and(|n| *n >= 1), "the new broker leads: {leaders:?}");
        assert!(leaders.values().max().unwrap() - leaders.values().min().unwrap() <= 1, "{leaders:?}");
        // A balanced cluster plans nothing.
        let mut balanced = md.clone();
        for (group, target) in &moves {
            balanced.apply(200 + group, &ControllerCommand::Reassign { group: *group, target: target.clone() });
            balanced.apply(
                300 + group,
                &ControllerCommand::CompleteReassignment { group: *group, replicas: target.clone() },
            );
        }
        assert!(rebalance(&balanced, &eligible, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_replacement_avoids_the_racks_of_the_other_replicas() {
        let racks: BTreeMap<u64, Option<String>> =
            [(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "c")].map(|(id, r)| (id, Some(r.to_string()))).into();
        let counts = BTreeMap::from([(4, 0), (5, 3)]);
        // Broker 3 (rack c) dies: 5 (rack c) is preferred over 4 (rack a, taken by 1) despite its load.
        assert_eq!(replacement(&[1, 2, 3], 3, &[1, 2, 4, 5], &counts, &racks), Some(5));
        // Without racks, the least loaded.
        assert_eq!(replacement(&[1, 2, 3], 3, &[1, 2, 4, 5], &counts, &BTreeMap::new()), Some(4));
        assert_eq!(replacement(&[1, 2, 3], 3, &[1, 2], &counts, &racks), None);
    }

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
