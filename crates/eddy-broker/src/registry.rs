//! The schema registry, as a broker serves it: the controller leader holds the registry (its
//! state is part of the controller's Raft state machine), so every request is forwarded there
//! and answered with the leader's reply; any broker answers any request.
//!
//! And validation at produce: a topic with `value.schema.validation` (or `key.`) refuses a batch
//! when any record's value (key) does not carry the id of a schema registered under the subject
//! its strategy names, or is not a value of that schema. Schemas are fetched from the controller
//! leader once and kept parsed ([`SchemaValidator`]): an id names the same schema forever, so
//! only which subjects list it can change, and that is fetched again when a record names a
//! subject the cached list lacks, and every 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_controller::{ControllerClient, ControllerError, TopicConfig};
use eddy_partition::Record;
use eddy_schema::api::{RegistryReply, RegistryRequest};
use eddy_schema::{ParsedSchema, RegistryError, SubjectNameStrategy, wire};

use crate::Broker;
use crate::error::BrokerError;

impl Broker {
    /// Serves one schema registry request through the controller leader.
    pub async fn registry(&self, request: RegistryRequest) -> Result<RegistryReply, RegistryError> {
        call(&self.inner.controller_client, request).await
    }
}

async fn call(controller: &ControllerClient, request: RegistryRequest) -> Result<RegistryReply, RegistryError> {
    match controller.registry(request).await {
        Ok(reply) => Ok(reply),
        Err(ControllerError::Registry(e)) => Err(e),
        Err(e) => Err(RegistryError::Forwarding(e.to_string())),
    }
}

/// Schemas a broker keeps parsed for validation, at most; past it the oldest fetched goes.
const CACHED_SCHEMAS_MAX: usize = 4_096;
/// How long the subjects listing a schema are trusted when they do include the subject a record
/// names (a version deleted since is noticed within this).
const SUBJECTS_TRUSTED_FOR: Duration = Duration::from_secs(30);

struct Cached {
    schema: Arc<ParsedSchema>,
    subjects: BTreeSet<String>,
    fetched: Instant,
}

/// Validates produced records against the schema registry, with a cache of parsed schemas.
pub struct SchemaValidator {
    controller: Arc<ControllerClient>,
    cache: Mutex<BTreeMap<u32, Arc<Cached>>>,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator").finish_non_exhaustive()
    }
}

/// Why a record failed, before the index and field are known.
enum Refusal {
    /// The record's fault: SCHEMA_VALIDATION_FAILED.
    Invalid(String),
    /// The registry could not be asked: retriable.
    Unavailable(String),
}

impl SchemaValidator {
    pub fn new(controller: Arc<ControllerClient>) -> SchemaValidator {
        SchemaValidator { controller, cache: Mutex::new(BTreeMap::new()) }
    }

    /// Checks every record of a batch for `topic` as its config asks; refuses the whole batch
    /// at the first record that fails, naming it.
    pub async fn check(&self, topic: &str, config: &TopicConfig, records: &[Record]) -> Result<(), BrokerError> {
        if config.value_schema.is_none() && config.key_schema.is_none() {
            return Ok(());
        }
        for (index, record) in records.iter().enumerate() {
            let fields = [
                (config.key_schema, record.key.as_deref(), true),
                (config.value_schema, Some(&record.value[..]), false),
            ];
            for (strategy, bytes, is_key) in fields {
                let (Some(strategy), Some(bytes)) = (strategy, bytes) else { continue };
                // An empty value is a tombstone (a deletion marker of its key): no schema to match.
                if bytes.is_empty() && !is_key {
                    continue;
                }
                let field = if is_key { "key" } else { "value" };
                match self.check_one(topic, strategy, is_key, bytes).await {
                    Ok(()) => {}
                    Err(Refusal::Invalid(reason)) => {
                        metrics::counter!("eddy_produce_schema_refused_total", "field" => field).increment(1);
                        return Err(BrokerError::SchemaValidation { index, field, reason });
                    }
                    Err(Refusal::Unavailable(why)) => {
                        return Err(BrokerError::Controller(ControllerError::Unavailable(format!(
                            "the schema registry could not be asked to validate record {index}: {why}"
                        ))));
                    }
                }
            }
        }
        Ok(())
    }

    async fn check_one(
        &self,
        topic: &str,
        strategy: SubjectNameStrategy,
        is_key: bool,
        bytes: &[u8],
    ) -> Result<(), Refusal> {
        let (id, payload) = wire::split(bytes).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let mut cached = self.cached(id, false).await?;
        let record = if strategy.needs_record_name() {
            cached.schema.record_name(payload).map_err(Refusal::Invalid)?
        } else {
            String::new()
        };
        let subject = strategy.subject(topic, is_key, &record);
        // A subject the cached list lacks may have registered the schema since: ask again before
        // refusing (once per refused batch, as the first failing record ends the check).
        if cached.fetched.elapsed() > SUBJECTS_TRUSTED_FOR || !cached.subjects.contains(&subject) {
            cached = self.cached(id, true).await?;
        }
        if !cached.subjects.contains(&subject) {
            return Err(Refusal::Invalid(format!("schema {id} is not registered under subject {subject:?}")));
        }
        cached.schema.validate(payload).map_err(|e| Refusal::Invalid(format!("not a value of schema {id}: {e}")))
    }

    /// Schema `id`, parsed, with the subjects listing it: from the cache unless `refresh`.
    async fn cached(&self, id: u32, refresh: bool) -> Result<Arc<Cached>, Refusal> {
        if !refresh && let Some(entry) = self.cache.lock().expect("schema cache").get(&id) {
            return Ok(entry.clone());
        }
        let reply = call(&self.controller, RegistryRequest::Resolve { id }).await;
        let (source, subjects) = match reply {
            Ok(RegistryReply::Resolved { source, subjects }) => (source, subjects),
            Ok(other) => return Err(Refusal::Unavailable(format!("unexpected registry reply {other:?}"))),
            Err(RegistryError::SchemaIdNotFound(_)) => {
                self.cache.lock().expect("schema cache").remove(&id);
                return Err(Refusal::Invalid(format!("schema id {id} is not registered")));
            }
            Err(e) if e.http_status() >= 500 => return Err(Refusal::Unavailable(e.to_string())),
            Err(e) => return Err(Refusal::Invalid(e.to_string())),
        };
        let schema = ParsedSchema::parse(&source)
            .map_err(|e| Refusal::Unavailable(format!("registered schema {id} does not parse here: {e}")))?;
        let entry = Arc::new(Cached {
            schema: Arc::new(schema),
            subjects: subjects.into_iter().collect(),
            fetched: Instant::now(),
        });
        let mut cache = self.cache.lock().expect("schema cache");
        if cache.len() >= CACHED_SCHEMAS_MAX && !cache.contains_key(&id) {
            let oldest = cache.iter().min_by_key(|(_, e)| e.fetched).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(id, entry.clone());
        Ok(entry)
    }
}
