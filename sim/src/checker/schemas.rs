//! The schema registry keeps what it acknowledged: an id names one schema for ever and a schema
//! has one id (whichever client registered it, under whichever subject); every acknowledged
//! version of a subject is still there after healing, naming the same id, and its id still
//! names the schema; and nothing its compatibility level forbids is acknowledged (the workload's
//! schemas named `Incompatible` change a field's type, which BACKWARD refuses).

use std::collections::BTreeMap;

use super::{Anomaly, Property};
use crate::history::{Entry, Event};

fn anomaly(property: Property, detail: String) -> Anomaly {
    Anomaly { property, detail }
}

pub fn check(entries: &[Entry], anomalies: &mut Vec<Anomaly>) {
    let mut schema_of_id: BTreeMap<u32, &str> = BTreeMap::new();
    let mut id_of_schema: BTreeMap<&str, u32> = BTreeMap::new();
    // (subject, version) -> id, as acknowledged.
    let mut acked: BTreeMap<(&str, u32), u32> = BTreeMap::new();
    let mut last = None;
    for entry in entries {
        match &entry.event {
            Event::SchemaAck { process, subject, schema, id, version } => {
                if schema.contains("Incompatible") {
                    anomalies.push(anomaly(
                        Property::SchemaIncompatibleAccepted,
                        format!("{process}: {subject} version {version} (id {id}) is {schema}"),
                    ));
                }
                if let Some(previous) = schema_of_id.insert(*id, schema.as_str())
                    && previous != schema
                {
                    anomalies.push(anomaly(
                        Property::SchemaIdChanged,
                        format!("id {id} was acknowledged for {previous} and for {schema}"),
                    ));
                }
                if let Some(previous) = id_of_schema.insert(schema.as_str(), *id)
                    && previous != *id
                {
                    anomalies.push(anomaly(
                        Property::SchemaIdChanged,
                        format!("{schema} was acknowledged with ids {previous} and {id}"),
                    ));
                }
                if let Some(previous) = acked.insert((subject.as_str(), *version), *id)
                    && previous != *id
                {
                    anomalies.push(anomaly(
                        Property::SchemaVersionLost,
                        format!("{subject} version {version} was acknowledged as ids {previous} and {id}"),
                    ));
                }
            }
            Event::SchemaFinal { subjects, schemas } => last = Some((subjects, schemas)),
            Event::SchemaFinalFailed { reason } => anomalies.push(anomaly(
                Property::Unavailable,
                format!("the schema registry could not be read after healing: {reason}"),
            )),
            _ => {}
        }
    }
    let Some((subjects, schemas)) = last else { return };
    let versions: BTreeMap<(&str, u32), u32> = subjects
        .iter()
        .flat_map(|(subject, versions)| versions.iter().map(move |(v, id)| ((subject.as_str(), *v), *id)))
        .collect();
    let texts: BTreeMap<u32, &str> = schemas.iter().map(|(id, text)| (*id, text.as_str())).collect();
    for ((subject, version), id) in &acked {
        match versions.get(&(*subject, *version)) {
            None => anomalies.push(anomaly(
                Property::SchemaVersionLost,
                format!("{subject} version {version} (id {id}) was acknowledged but is gone after healing"),
            )),
            Some(final_id) if final_id != id => anomalies.push(anomaly(
                Property::SchemaVersionLost,
                format!("{subject} version {version} was acknowledged as id {id}, names id {final_id} after healing"),
            )),
            Some(_) => {}
        }
    }
    for (id, schema) in &schema_of_id {
        match texts.get(id) {
            Some(text) if text == schema => {}
            Some(text) => anomalies.push(anomaly(
                Property::SchemaIdChanged,
                format!("id {id} was acknowledged for {schema}, names {text} after healing"),
            )),
            // Its version is gone too: reported above as a lost version.
            None => {}
        }
    }
    // Ids are unique in the final state too: no schema text under two ids.
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for (id, text) in &texts {
        if let Some(other) = seen.insert(text, *id) {
            anomalies
                .push(anomaly(Property::SchemaIdChanged, format!("{text} has ids {other} and {id} after healing")));
        }
    }
}
