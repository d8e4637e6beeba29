//! The assignor: which member of a group should own which partition.
//!
//! It is sticky and balanced. A member keeps every partition of its previous target that it
//! still may own (it subscribes to the topic and the partition exists); the partitions nobody
//! keeps go to the eligible member with the fewest, most constrained topics first; then single
//! partitions move from the most loaded member to a less loaded one that may own them while
//! that narrows the gap by two or more. So a partition moves only when balance needs it, and
//! with identical subscriptions no member has more than one partition more than another.
//!
//! The result never gives one partition to two members: every partition is placed once.

use std::collections::{BTreeMap, BTreeSet};

use crate::TopicPartition;

/// What the assignor works from.
#[derive(Debug, Clone, Copy)]
pub struct AssignmentSpec<'a> {
    /// Each member's subscribed topic names.
    pub subscriptions: &'a BTreeMap<String, BTreeSet<String>>,
    /// Partition count of every topic that exists; subscribed topics missing here get nothing.
    pub partition_counts: &'a BTreeMap<String, u32>,
    /// The previous target assignment, which the new one keeps as far as balance allows.
    pub previous: &'a BTreeMap<String, BTreeSet<TopicPartition>>,
}

/// A target assignment: the partitions of every member (members with none included).
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Computes the target assignment.
pub fn assign(spec: AssignmentSpec<'_>) -> Assignment {
    let AssignmentSpec { subscriptions, partition_counts, previous } = spec;
    let may_own = |member: &str, tp: &TopicPartition| {
        subscriptions.get(member).is_some_and(|topics| topics.contains(&tp.topic))
            && partition_counts.get(&tp.topic).is_some_and(|count| tp.partition < *count)
    };

    // 1. Keep what may be kept, each partition once.
    let mut placed: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut result: Assignment = subscriptions.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (member, owned) in result.iter_mut() {
        for tp in previous.get(member).into_iter().flatten() {
            if may_own(member, tp) && placed.insert(tp.clone()) {
                owned.insert(tp.clone());
            }
        }
    }

    // 2. Place the rest, the partitions of the topics with the fewest eligible members first.
    let mut eligible: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for topic in topics.iter().filter(|t| partition_counts.contains_key(*t)) {
            eligible.entry(topic.as_str()).or_default().push(member.as_str());
        }
    }
    let mut topics: Vec<(&str, &Vec<&str>)> = eligible.iter().map(|(t, m)| (*t, m)).collect();
    topics.sort_by_key(|(topic, members)| (members.len(), *topic));
    for (topic, members) in topics {
        for partition in 0..partition_counts[topic] {
            let tp = TopicPartition::new(topic, partition);
            if placed.contains(&tp) {
                continue;
            }
            let fewest =
                members.iter().min_by_key(|m| (result[**m].len(), **m)).expect("a topic in `eligible` has a member");
            result.get_mut(*fewest).expect("every subscriber has an entry").insert(tp.clone());
            placed.insert(tp);
        }
    }

    // 3. Narrow the gaps: each move lowers the sum of squared counts by at least two, so this ends.
    while let Some((from, to, tp)) = next_move(&result, subscriptions) {
        result.get_mut(&from).expect("member").remove(&tp);
        result.get_mut(&to).expect("member").insert(tp);
    }
    result
}

/// One partition that may move from a member to another with at least two fewer.
fn next_move(
    result: &Assignment,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
) -> Option<(String, String, TopicPartition)> {
    let mut by_load: Vec<(&String, usize)> = result.iter().map(|(m, tps)| (m, tps.len())).collect();
    // Most loaded first; ties by member id, so the outcome is a function of the input.
    by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (from, from_len) in &by_load {
        for (to, to_len) in by_load.iter().rev() {
            if *to_len + 2 > *from_len {
                break;
            }
            let topics = &subscriptions[*to];
            if let Some(tp) = result[*from].iter().rev().find(|tp| topics.contains(&tp.topic)) {
                return Some(((*from).clone(), (*to).clone(), tp.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members.iter().map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect())).collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn a_joining_member_takes_only_its_share() {
        let counts = counts(&[("orders", 6)]);
        let two = subs(&[("a", &["orders"]), ("b", &["orders"])]);
        let first =
            assign(AssignmentSpec { subscriptions: &two, partition_counts: &counts, previous: &Assignment::new() });
        assert_eq!(first["a"].len(), 3);
        assert_eq!(first["b"].len(), 3);
        let three = subs(&[("a", &["orders"]), ("b", &["orders"]), ("c", &["orders"])]);
        let second = assign(AssignmentSpec { subscriptions: &three, partition_counts: &counts, previous: &first });
        assert_eq!(second["c"].len(), 2);
        assert!(second["a"].is_subset(&first["a"]) && second["b"].is_subset(&first["b"]), "{second:?}");
    }

    #[test]
    fn unknown_topics_and_vanished_partitions_are_not_assigned() {
        let members = subs(&[("a", &["orders", "missing"])]);
        let previous = Assignment::from([("a".into(), BTreeSet::from([TopicPartition::new("orders", 5)]))]);
        let result = assign(AssignmentSpec {
            subscriptions: &members,
            partition_counts: &counts(&[("orders", 2)]),
            previous: &previous,
        });
        assert_eq!(result["a"], BTreeSet::from([TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]));
    }

    #[test]
    fn heterogeneous_subscriptions_are_respected() {
        let members = subs(&[("a", &["x"]), ("b", &["x", "y"])]);
        let result = assign(AssignmentSpec {
            subscriptions: &members,
            partition_counts: &counts(&[("x", 4), ("y", 4)]),
            previous: &Assignment::new(),
        });
        assert!(result["a"].iter().all(|tp| tp.topic == "x"));
        assert_eq!(result["a"].len(), 4, "a can take only x, b keeps y: {result:?}");
        assert_eq!(result["b"].len(), 4);
    }

    /// Arbitrary groups: up to 6 members over up to 4 topics, and a previous assignment that may
    /// be stale (members gone, partitions beyond the count, one partition under two members).
    fn group() -> impl Strategy<Value = (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, u32>, Assignment)> {
        let topics = proptest::collection::btree_map("t[0-3]", 1u32..12, 1..4);
        topics.prop_flat_map(|counts| {
            let names: Vec<String> = counts.keys().cloned().collect();
            let members = proptest::collection::btree_map(
                "m[0-5]",
                proptest::sample::subsequence(names.clone(), 1..=names.len())
                    .prop_map(|ts| ts.into_iter().collect::<BTreeSet<_>>()),
                1..6,
            );
            let previous = proptest::collection::btree_map(
                "m[0-7]",
                proptest::collection::btree_set(
                    (proptest::sample::select(names), 0u32..14).prop_map(|(t, p)| TopicPartition::new(&t, p)),
                    0..10,
                ),
                0..6,
            );
            (members, Just(counts), previous)
        })
    }

    fn owners(assignment: &Assignment) -> BTreeMap<TopicPartition, Vec<String>> {
        let mut owners: BTreeMap<TopicPartition, Vec<String>> = BTreeMap::new();
        for (member, tps) in assignment {
            for tp in tps {
                owners.entry(tp.clone()).or_default().push(member.clone());
            }
        }
        owners
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every subscribed partition has exactly one owner, who subscribes to its topic.
        #[test]
        fn every_partition_has_one_eligible_owner((members, counts, previous) in group()) {
            let result = assign(AssignmentSpec { subscriptions: &members, partition_counts: &counts, previous: &previous });
            prop_assert_eq!(result.keys().collect::<Vec<_>>(), members.keys().collect::<Vec<_>>());
            let owners = owners(&result);
            for (topic, count) in &counts {
                let subscribed = members.values().any(|ts| ts.contains(topic));
                for p in 0..*count {
                    let found = owners.get(&TopicPartition::new(topic, p)).map_or(0, Vec::len);
                    prop_assert_eq!(found, usize::from(subscribed), "{}-{}", topic, p);
                }
            }
            for (member, tps) in &result {
                for tp in tps {
                    prop_assert!(members[member].contains(&tp.topic) && tp.partition < counts[&tp.topic]);
                }
            }
        }

        /// No partition could move to narrow a gap of two or more; with identical subscriptions,
        /// counts differ by at most one.
        #[test]
        fn balanced((members, counts, previous) in group()) {
            let result = assign(AssignmentSpec { subscriptions: &members, partition_counts: &counts, previous: &previous });
            prop_assert!(next_move(&result, &members).is_none());
            if members.values().all(|ts| Some(ts) == members.values().next()) {
                let lens: Vec<usize> = result.values().map(BTreeSet::len).collect();
                prop_assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{:?}", result);
            }
        }

        /// Assigning again from the result changes nothing. With identical subscriptions, a
        /// member loses a partition it could keep only when it ends with fewer than it kept.
        /// (With different ones a member may have to trade a partition others can take for one
        /// only it can.)
        #[test]
        fn sticky((members, counts, previous) in group()) {
            let spec = AssignmentSpec { subscriptions: &members, partition_counts: &counts, previous: &previous };
            let result = assign(spec);
            let again = assign(AssignmentSpec { previous: &result, ..spec });
            prop_assert_eq!(&again, &result);
            if members.values().any(|ts| Some(ts) != members.values().next()) {
                return Ok(());
            }
            let mut kept_before = BTreeSet::new();
            for (member, tps) in &previous {
                let Some(topics) = members.get(member) else { continue };
                let keepable: BTreeSet<&TopicPartition> = tps
                    .iter()
                    .filter(|tp| topics.contains(&tp.topic) && counts.get(&tp.topic).is_some_and(|c| tp.partition < *c))
                    .filter(|tp| kept_before.insert((*tp).clone()))
                    .collect();
                let now = &result[member];
                let lost = keepable.iter().filter(|tp| !now.contains(**tp)).count();
                if lost > 0 {
                    prop_assert!(now.len() < keepable.len(), "{} lost {} but holds {} of {}", member, lost, now.len(), keepable.len());
                }
            }
        }
    }
}
