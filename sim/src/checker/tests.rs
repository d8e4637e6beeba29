//! Unit tests of the checker: a clean history passes, and a minimal deviation from it trips the
//! property it violates.

use super::*;
use crate::history::{Entry, Event, ReadRecord};

const PARTITIONS: u32 = 2;

fn rec(offset: u64, value: &str) -> ReadRecord {
    ReadRecord { offset, value: value.to_string() }
}

fn recs(records: &[(u64, &str)]) -> Vec<ReadRecord> {
    records.iter().map(|&(offset, value)| rec(offset, value)).collect()
}

fn properties(v: &Verdict) -> Vec<Property> {
    v.anomalies.iter().map(|a| a.property).collect()
}

fn assert_flags(builder: &Builder, property: Property) {
    let verdict = builder.verdict();
    assert!(properties(&verdict).contains(&property), "expected {property}, got {:?}", verdict.anomalies);
}

/// A history under construction: events in order, 10 simulated ms apart.
#[derive(Debug, Default, Clone)]
struct Builder {
    events: Vec<Event>,
}

impl Builder {
    fn push(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    fn invoke(self, value: &str, partition: u32) -> Self {
        self.push(Event::SendInvoke { process: "producer-0".to_string(), value: value.to_string(), partition })
    }

    fn ok(self, value: &str, partition: u32, offset: u64) -> Self {
        self.invoke(value, partition).push(Event::SendOk { value: value.to_string(), partition, offset })
    }

    fn leader_ok(self, value: &str, partition: u32, offset: u64) -> Self {
        self.invoke(value, partition).push(Event::SendLeaderOk { value: value.to_string(), partition, offset })
    }

    fn fail(self, value: &str, partition: u32) -> Self {
        let reason = "not leader".to_string();
        self.invoke(value, partition).push(Event::SendFail { value: value.to_string(), partition, reason })
    }

    fn unknown(self, value: &str, partition: u32) -> Self {
        let reason = "timeout".to_string();
        self.invoke(value, partition).push(Event::SendUnknown { value: value.to_string(), partition, reason })
    }

    fn poll(self, consumer: &str, partition: u32, position: u64, records: &[(u64, &str)]) -> Self {
        self.push(Event::Poll { consumer: consumer.to_string(), partition, position, records: recs(records) })
    }

    fn final_read(self, partition: u32, records: &[(u64, &str)], high_watermark: u64) -> Self {
        self.push(Event::FinalRead { partition, records: recs(records), high_watermark })
    }

    fn replica(self, node: u64, partition: u32, records: &[(u64, &str)]) -> Self {
        self.push(Event::ReplicaRead { node, partition, records: recs(records) })
    }

    fn leader(self, group: u64, term: u64, node: u64) -> Self {
        self.push(Event::Leader { group, term, node })
    }

    /// After the workload: heal, read every partition in full, and read each replica's log.
    fn heal(self) -> Self {
        self.push(Event::Fault { description: "heal all".to_string() })
            .push(Event::Note { text: "final reads".to_string() })
            .final_read(0, &[(0, "a0"), (1, "a1"), (2, "a2")], 3)
            .final_read(1, &[(0, "b0"), (1, "b1")], 2)
            .replica(2, 0, &[(0, "a0"), (1, "a1")])
            .replica(3, 1, &[(0, "b0"), (1, "b1")])
    }

    /// Applies `f` to every event.
    fn edit(mut self, mut f: impl FnMut(&mut Event)) -> Self {
        for event in &mut self.events {
            f(event);
        }
        self
    }

    /// Edits the records and high watermark of the final read of `partition`.
    fn edit_final(self, partition: u32, mut f: impl FnMut(&mut Vec<ReadRecord>, &mut u64)) -> Self {
        self.edit(|event| {
            if let Event::FinalRead { partition: p, records, high_watermark } = event
                && *p == partition
            {
                f(records, high_watermark);
            }
        })
    }

    /// Edits the records of `consumer`'s poll from `position`.
    fn edit_poll(self, consumer: &str, position: u64, mut f: impl FnMut(&mut Vec<ReadRecord>)) -> Self {
        self.edit(|event| {
            if let Event::Poll { consumer: c, position: p, records, .. } = event
                && c == consumer
                && *p == position
            {
                f(records);
            }
        })
    }

    /// Drops every event for which `drop` holds.
    fn without(mut self, mut drop: impl FnMut(&Event) -> bool) -> Self {
        self.events.retain(|event| !drop(event));
        self
    }

    fn entries(&self) -> Vec<Entry> {
        self.events.iter().enumerate().map(|(i, event)| Entry { at_ms: i as u64 * 10, event: event.clone() }).collect()
    }

    fn verdict(&self) -> Verdict {
        check(&self.entries(), PARTITIONS)
    }
}

/// The workload of a clean run: acknowledged sends at offsets 0..3 of partition 0 and 0..2 of
/// partition 1, an unknown, a failed and a pending send that no read returns, one consumer
/// polling partition 0 consecutively, and one leader per term (one of them observed twice).
fn workload() -> Builder {
    Builder::default()
        .push(Event::Note { text: "workload".to_string() })
        .leader(1, 1, 1)
        .leader(2, 1, 2)
        .ok("a0", 0, 0)
        .ok("b0", 1, 0)
        .ok("a1", 0, 1)
        .poll("c0", 0, 0, &[(0, "a0"), (1, "a1")])
        .push(Event::Fault { description: "isolate n1".to_string() })
        .leader(1, 2, 2)
        .ok("b1", 1, 1)
        .unknown("u", 0)
        .fail("f", 1)
        .invoke("w", 0)
        .ok("a2", 0, 2)
        .poll("c0", 0, 2, &[(2, "a2")])
        .poll("c0", 0, 3, &[])
        .leader(1, 2, 2)
}

fn clean() -> Builder {
    workload().heal()
}

#[test]
fn clean_history_has_no_anomalies() {
    let verdict = clean().verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
    assert_eq!(verdict.records_checked, 5);
}

#[test]
fn acknowledged_lost() {
    let history = clean().edit_final(0, |records, high_watermark| {
        records.pop();
        *high_watermark -= 1;
    });
    assert_flags(&history, Property::AcknowledgedLost);
}

#[test]
fn leader_acks_may_be_lost_but_never_moved() {
    // Acknowledged by the leader at 1@2, then lost with the leadership: allowed.
    let lost = workload().leader_ok("l0", 1, 2).heal();
    let verdict = lost.verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
    // In the log at the acknowledged offset: fine.
    let kept = workload().leader_ok("l0", 1, 2).heal().edit_final(1, |records, high_watermark| {
        records.push(rec(2, "l0"));
        *high_watermark = 3;
    });
    let verdict = kept.verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
    // In the log at another offset: the prediction was wrong.
    let moved = workload().leader_ok("l0", 1, 1).heal().edit_final(1, |records, high_watermark| {
        records.push(rec(2, "l0"));
        *high_watermark = 3;
    });
    assert_flags(&moved, Property::LeaderAckMoved);
    // Read by a consumer, so committed, then missing from the final log: lost.
    let read_then_lost = workload().leader_ok("l0", 1, 2).poll("c1", 1, 2, &[(2, "l0")]).heal();
    assert_flags(&read_then_lost, Property::CommittedLost);
}

#[test]
fn acknowledged_moved() {
    let history = clean().edit_final(1, |records, _| {
        records[0].value = "b1".to_string();
        records[1].value = "b0".to_string();
    });
    assert_flags(&history, Property::AcknowledgedMoved);
}

#[test]
fn committed_lost_unknown_send() {
    assert_flags(&workload().poll("c1", 0, 3, &[(3, "u")]).heal(), Property::CommittedLost);
}

#[test]
fn committed_lost_pending_send() {
    assert_flags(&workload().poll("c1", 0, 3, &[(3, "w")]).heal(), Property::CommittedLost);
}

#[test]
fn offset_two_values() {
    let history = clean().edit_poll("c0", 2, |records| records[0].value = "a1".to_string());
    assert_flags(&history, Property::OffsetTwoValues);
}

#[test]
fn duplicate() {
    let history = clean().edit_final(1, |records, high_watermark| {
        records.push(rec(2, "b0"));
        *high_watermark = 3;
    });
    assert_flags(&history, Property::Duplicate);
}

#[test]
fn offsets_not_dense_gap() {
    let history = clean().edit_final(0, |records, high_watermark| {
        records.push(rec(4, "u"));
        *high_watermark = 5;
    });
    assert_flags(&history, Property::OffsetsNotDense);
}

#[test]
fn offsets_not_dense_high_watermark() {
    assert_flags(&clean().edit_final(1, |_, high_watermark| *high_watermark = 3), Property::OffsetsNotDense);
}

#[test]
fn consumer_order_skip_between_polls() {
    let history = clean().edit_poll("c0", 0, |records| {
        records.pop();
    });
    assert_flags(&history, Property::ConsumerOrder);
}

#[test]
fn consumer_order_skip_within_poll() {
    let history = clean().edit_poll("c0", 0, |records| {
        records.remove(0);
    });
    assert_flags(&history, Property::ConsumerOrder);
}

#[test]
fn consumer_order_backwards() {
    assert_flags(&workload().poll("c0", 0, 1, &[(1, "a1"), (2, "a2")]).heal(), Property::ConsumerOrder);
}

#[test]
fn phantom_read_of_failed_send() {
    assert_flags(&workload().poll("c1", 1, 2, &[(2, "f")]).heal(), Property::PhantomRead);
}

#[test]
fn phantom_read_of_value_never_sent() {
    assert_flags(&workload().poll("c1", 0, 3, &[(3, "ghost")]).heal(), Property::PhantomRead);
}

#[test]
fn phantom_read_from_another_partition() {
    assert_flags(&workload().poll("c1", 1, 2, &[(2, "a0")]).heal(), Property::PhantomRead);
}

#[test]
fn two_leaders_in_term() {
    assert_flags(&workload().leader(1, 2, 3).heal(), Property::TwoLeadersInTerm);
}

#[test]
fn replica_log_diverged() {
    let history = clean().edit(|event| {
        if let Event::ReplicaRead { node: 2, records, .. } = event {
            records[1].value = "a2".to_string();
        }
    });
    assert_flags(&history, Property::ReplicaLogDiverged);
}

#[test]
fn replica_log_longer_than_final() {
    let history = clean().edit(|event| {
        if let Event::ReplicaRead { node: 3, records, .. } = event {
            records.push(rec(2, "f"));
        }
    });
    assert_flags(&history, Property::ReplicaLogDiverged);
}

#[test]
fn liveness_final_read_failed() {
    let history = clean().edit(|event| {
        if matches!(event, Event::FinalRead { partition: 1, .. }) {
            *event = Event::FinalReadFailed { partition: 1, reason: "no leader".to_string() };
        }
    });
    let verdict = history.verdict();
    // The partition's sends and replica reads are not checked against a final read it lacks.
    assert_eq!(properties(&verdict), [Property::Unavailable], "{:?}", verdict.anomalies);
    assert_eq!(verdict.records_checked, 3);
}

#[test]
fn liveness_no_final_read() {
    let history = clean().without(|event| matches!(event, Event::FinalRead { partition: 1, .. }));
    let verdict = history.verdict();
    assert_eq!(properties(&verdict), [Property::Unavailable], "{:?}", verdict.anomalies);
}

#[test]
fn anomaly_display() {
    let anomaly = Anomaly { property: Property::Duplicate, detail: "x is at 0@1 and again at 0@2".to_string() };
    assert_eq!(anomaly.to_string(), "duplicate: x is at 0@1 and again at 0@2");
}

/// A group over the clean workload: member m0 reads partition 0 whole and commits it; m1 reads
/// partition 1 at epoch 2 after m0 gave it up; the final offsets are the ends.
fn group() -> Builder {
    let delivered = |member: &str, epoch: i64, partition: u32, records: &[(u64, &str)]| Event::GroupDelivered {
        member: member.to_string(),
        epoch,
        partition,
        records: recs(records),
    };
    let started = |member: &str, partition: u32, offset: u64| Event::GroupStarted {
        member: member.to_string(),
        partition,
        offset,
    };
    let commit = |member: &str, offsets: &[(u32, u64)]| Event::GroupCommit {
        member: member.to_string(),
        invoked_ms: 0,
        offsets: offsets.to_vec(),
        error: None,
    };
    clean()
        .push(started("m0", 0, 0))
        .push(delivered("m0", 1, 0, &[(0, "a0"), (1, "a1")]))
        .push(started("m0", 1, 0))
        .push(delivered("m0", 1, 1, &[(0, "b0")]))
        .push(commit("m0", &[(0, 2), (1, 1)]))
        .push(started("m1", 1, 1))
        .push(delivered("m1", 2, 1, &[(1, "b1")]))
        .push(delivered("m0", 2, 0, &[(2, "a2")]))
        .push(commit("m0", &[(0, 3)]))
        .push(commit("m1", &[(1, 2)]))
        .push(Event::GroupFinal { offsets: vec![(0, 3), (1, 2)] })
}

/// Sets the `invoked_ms` of every commit to its own time (they were sent right before).
fn timed(builder: Builder) -> Builder {
    let mut at = 0u64;
    builder.edit(|event| {
        at += 10;
        if let Event::GroupCommit { invoked_ms, .. } = event {
            *invoked_ms = at - 10;
        }
    })
}

#[test]
fn clean_group_has_no_anomalies() {
    let verdict = timed(group()).verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
}

#[test]
fn group_two_owners_at_one_epoch() {
    let builder = timed(group()).push(Event::GroupDelivered {
        member: "m1".into(),
        epoch: 1,
        partition: 0,
        records: recs(&[(2, "a2")]),
    });
    assert_flags(&builder, Property::GroupTwoOwners);
}

#[test]
fn group_member_skips() {
    let builder = timed(group()).edit(|event| {
        if let Event::GroupStarted { member, partition: 1, offset } = event
            && member == "m1"
        {
            *offset = 0;
        }
    });
    assert_flags(&builder, Property::GroupSkipped);
}

#[test]
fn group_record_never_delivered() {
    let builder = timed(group())
        .without(|event| matches!(event, Event::GroupDelivered { member, partition: 1, .. } if member == "m1"));
    assert_flags(&builder, Property::GroupSkipped);
}

#[test]
fn group_commit_beyond_delivered() {
    let builder = timed(group()).edit(|event| {
        if let Event::GroupCommit { member, offsets, .. } = event
            && member == "m1"
        {
            offsets[0].1 = 5;
        }
    });
    assert_flags(&builder, Property::GroupCommitBeyondDelivered);
}

#[test]
fn group_commit_lost_at_the_end() {
    let builder = timed(group()).edit(|event| {
        if let Event::GroupFinal { offsets } = event {
            offsets[0].1 = 2;
        }
    });
    assert_flags(&builder, Property::GroupCommitLost);
}

#[test]
fn group_commit_moved_back() {
    let builder = timed(group()).push(Event::GroupCommit {
        member: "m0".into(),
        invoked_ms: 10_000,
        offsets: vec![(0, 2)],
        error: None,
    });
    assert_flags(&builder, Property::GroupCommitLost);
}

#[test]
fn group_behind() {
    let builder = timed(group()).edit(|event| {
        if let Event::GroupFinal { offsets } = event {
            offsets[1].1 = 1;
        }
    });
    assert_flags(&builder, Property::GroupBehind);
    let unread = timed(group()).without(|event| matches!(event, Event::GroupFinal { .. }));
    assert_flags(&unread, Property::GroupBehind);
}

/// A retained topic whose log starts at 200 of 300 records, each value 40 bytes: 100 records
/// kept, well above `retention.bytes`.
fn retained(start: u64) -> (Builder, Vec<ReadRecord>) {
    let value = |i: u64| format!("r-{i:038}");
    let mut builder = clean();
    for i in 0..300 {
        builder = builder.push(Event::RetainedAck { value: value(i), offset: i });
    }
    let records: Vec<ReadRecord> = (start..300).map(|i| rec(i, &value(i))).collect();
    (builder, records)
}

#[test]
fn retention_passes_a_log_trimmed_by_retention() {
    let (builder, records) = retained(200);
    let builder = builder
        .push(Event::RetainedFinal { log_start: 200, records: records.clone() })
        .push(Event::RetainedReplica { node: 2, records: records[..50].to_vec(), error: None });
    let verdict = builder.verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
}

#[test]
fn retention_flags_records_lost_otherwise() {
    // A record at or above the log start is missing.
    let (builder, mut records) = retained(200);
    records.remove(10);
    let gap = builder.push(Event::RetainedFinal { log_start: 200, records });
    assert_flags(&gap, Property::RetentionLost);
    // The log start went past what retention.bytes keeps.
    let (builder, records) = retained(290);
    assert_flags(&builder.push(Event::RetainedFinal { log_start: 290, records }), Property::RetentionLost);
    // A replica lost what the leader retains.
    let (builder, records) = retained(200);
    let replica = builder.push(Event::RetainedFinal { log_start: 200, records }).push(Event::RetainedReplica {
        node: 3,
        records: Vec::new(),
        error: Some("offset 200 is out of range".into()),
    });
    assert_flags(&replica, Property::RetentionLost);
    // A replica holds other records.
    let (builder, records) = retained(200);
    let mut other = records.clone();
    other[3].value = "r-x".into();
    let diverged = builder.push(Event::RetainedFinal { log_start: 200, records }).push(Event::RetainedReplica {
        node: 3,
        records: other,
        error: None,
    });
    assert_flags(&diverged, Property::RetentionLost);
}

fn schema_ack(process: &str, subject: &str, schema: &str, id: u32, version: u32) -> Event {
    Event::SchemaAck { process: process.into(), subject: subject.into(), schema: schema.into(), id, version }
}

/// Two registrars: one evolves its subject, both register the first schema under a shared one.
fn registry() -> Builder {
    clean()
        .push(schema_ack("registrar-0", "r0-value", "A", 1, 1))
        .push(schema_ack("registrar-0", "shared-value", "A", 1, 1))
        .push(schema_ack("registrar-1", "shared-value", "A", 1, 1))
        .push(schema_ack("registrar-0", "r0-value", "B", 2, 2))
        .push(Event::SchemaRefused {
            process: "registrar-0".into(),
            subject: "r0-value".into(),
            schema: "Incompatible".into(),
        })
}

fn registry_final(subjects: Vec<(&str, Vec<(u32, u32)>)>, schemas: Vec<(u32, &str)>) -> Event {
    Event::SchemaFinal {
        subjects: subjects.into_iter().map(|(s, v)| (s.to_string(), v)).collect(),
        schemas: schemas.into_iter().map(|(id, s)| (id, s.to_string())).collect(),
    }
}

#[test]
fn schemas_pass_a_registry_that_kept_everything() {
    let history = registry().push(registry_final(
        vec![("r0-value", vec![(1, 1), (2, 2)]), ("shared-value", vec![(1, 1)])],
        vec![(1, "A"), (2, "B")],
    ));
    let verdict = history.verdict();
    assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
}

#[test]
fn schemas_flag_lost_versions_changed_ids_and_accepted_incompatibilities() {
    let lost = registry()
        .push(registry_final(vec![("r0-value", vec![(1, 1)]), ("shared-value", vec![(1, 1)])], vec![(1, "A")]));
    assert_flags(&lost, Property::SchemaVersionLost);
    let renamed = registry().push(registry_final(
        vec![("r0-value", vec![(1, 1), (2, 2)]), ("shared-value", vec![(1, 1)])],
        vec![(1, "A"), (2, "C")],
    ));
    assert_flags(&renamed, Property::SchemaIdChanged);
    let reused = registry().push(schema_ack("registrar-1", "r1-value", "C", 2, 1));
    assert_flags(&reused, Property::SchemaIdChanged);
    let accepted = registry().push(schema_ack("registrar-0", "r0-value", "Incompatible", 3, 3));
    assert_flags(&accepted, Property::SchemaIncompatibleAccepted);
    assert_flags(&registry().push(Event::SchemaFinalFailed { reason: "no leader".into() }), Property::Unavailable);
}

fn security(target: &str, effect: Option<&str>, acked: bool) -> Event {
    Event::SecurityChange {
        process: "securer-0".into(),
        target: target.into(),
        effect: effect.map(str::to_string),
        acked,
    }
}

fn security_final(node: u64, state: &[(&str, &str)]) -> Event {
    Event::SecurityFinal { node, state: state.iter().map(|(t, e)| (t.to_string(), e.to_string())).collect() }
}

/// ACL a1 added then removed, a2 added, a3 added with an unknown outcome; the user set twice.
fn secured() -> Builder {
    clean()
        .push(security("acl:a1", Some("present"), true))
        .push(security("acl:a2", Some("present"), true))
        .push(security("acl:a1", None, true))
        .push(security("acl:a3", Some("present"), false))
        .push(security("user:u0", Some("iterations=4100"), true))
        .push(security("user:u0", Some("iterations=4104"), true))
}

#[test]
fn security_as_acknowledged_passes() {
    for a3 in [true, false] {
        let mut state = vec![("acl:a2", "present"), ("user:u0", "iterations=4104")];
        if a3 {
            state.push(("acl:a3", "present"));
        }
        let verdict = secured().push(security_final(1, &state)).push(security_final(2, &state)).verdict();
        assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
    }
}

#[test]
fn security_change_lost() {
    // The acknowledged removal of a1 undone; the acknowledged add of a2 lost; an older credential.
    for state in [
        vec![("acl:a1", "present"), ("acl:a2", "present"), ("user:u0", "iterations=4104")],
        vec![("user:u0", "iterations=4104")],
        vec![("acl:a2", "present"), ("user:u0", "iterations=4100")],
    ] {
        assert_flags(&secured().push(security_final(1, &state)), Property::SecurityChangeLost);
    }
}

#[test]
fn security_diverged() {
    let state = [("acl:a2", "present"), ("user:u0", "iterations=4104")];
    let other = [("acl:a2", "present"), ("acl:a3", "present"), ("user:u0", "iterations=4104")];
    assert_flags(
        &secured().push(security_final(1, &state)).push(security_final(2, &other)),
        Property::SecurityDiverged,
    );
    // A broker behind the others is a divergence, not a loss: another holds the change.
    let behind = [("user:u0", "iterations=4100")];
    let verdict = secured().push(security_final(1, &state)).push(security_final(2, &behind)).verdict();
    assert_eq!(properties(&verdict), vec![Property::SecurityDiverged], "{:?}", verdict.anomalies);
    let phantom = [("acl:a2", "present"), ("acl:zz", "present"), ("user:u0", "iterations=4104")];
    assert_flags(&secured().push(security_final(1, &phantom)), Property::SecurityChangeLost);
}
