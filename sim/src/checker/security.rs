//! Users, ACLs and quotas are kept as acknowledged and enforced alike everywhere. After healing:
//! - no broker enforces a user, ACL or quota no one asked for, and for each of them some broker
//!   holds the state its last acknowledged change left (unless a later change of unknown outcome
//!   was attempted, which may or may not have taken effect): an acknowledged change that no
//!   broker holds was lost (`security_change_lost`, a safety property);
//! - every broker enforces the same users, ACLs and quotas (`security_diverged`): one that does not has
//!   not caught up with the controller's metadata, a failure to propagate rather than a loss.

use std::collections::BTreeMap;

use super::{Anomaly, Property};
use crate::history::{Entry, Event};

fn anomaly(property: Property, detail: String) -> Anomaly {
    Anomaly { property, detail }
}

pub fn check(entries: &[Entry], anomalies: &mut Vec<Anomaly>) {
    // Per target, the changes in the order they were made (each target has one writer).
    let mut changes: BTreeMap<&str, Vec<(&Option<String>, bool)>> = BTreeMap::new();
    let mut finals: BTreeMap<u64, BTreeMap<&str, &str>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::SecurityChange { target, effect, acked, .. } => {
                changes.entry(target.as_str()).or_default().push((effect, *acked));
            }
            Event::SecurityFinal { node, state } => {
                finals.insert(*node, state.iter().map(|(t, e)| (t.as_str(), e.as_str())).collect());
            }
            Event::SecurityFinalFailed { node, reason } => anomalies.push(anomaly(
                Property::Unavailable,
                format!("broker n{node}'s users, ACLs and quotas could not be read after healing: {reason}"),
            )),
            _ => {}
        }
    }
    let mut seen: Option<(u64, &BTreeMap<&str, &str>)> = None;
    for (node, state) in &finals {
        if let Some((first, first_state)) = seen
            && first_state != state
        {
            anomalies.push(anomaly(
                Property::SecurityDiverged,
                format!("after healing n{first} enforces {first_state:?} but n{node} enforces {state:?}"),
            ));
        }
        seen.get_or_insert((*node, state));
        for target in state.keys() {
            if !changes.contains_key(target) {
                anomalies.push(anomaly(
                    Property::SecurityChangeLost,
                    format!("n{node} enforces {target}, which no one asked for"),
                ));
            }
        }
    }
    if finals.is_empty() {
        return;
    }
    for (target, history) in &changes {
        let Some(last_acked) = history.iter().rposition(|(_, acked)| *acked) else { continue };
        if last_acked + 1 != history.len() {
            continue; // a later change of unknown outcome may have taken effect
        }
        let expected = history[last_acked].0.as_deref();
        let held: Vec<Option<&str>> = finals.values().map(|state| state.get(target).copied()).collect();
        if !held.contains(&expected) {
            anomalies.push(anomaly(
                Property::SecurityChangeLost,
                format!("{target}: its last acknowledged change left it {expected:?}; the brokers hold {held:?}"),
            ));
        }
    }
}
