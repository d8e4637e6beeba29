//! Eddy's schema registry.
//!
//! Start here, in this order:
//! - [`types`]: schema types, references and compatibility levels, as the Confluent API names them.
//! - [`format`]: parsing each format, its canonical form, whether one version reads another,
//!   and validating a value.
//! - [`registry`]: the replicated state (subjects, versions, ids, configs) and the commands that
//!   change it; and [`registry::Registry::plan_register`], the checks a leader runs before it
//!   proposes a registration.
//! - [`wire`]: the wire format of a value that names its schema (magic byte 0, 4-byte id).
//! - [`asyncapi`]: the AsyncAPI 3.0 document of a cluster's topics and their event types.
//!
//! Where it runs: the registry's state is part of the controller's Raft state machine, so ids
//! and versions are replicated and survive what the controller survives; every broker serves
//! the HTTP API and forwards to the controller leader.
//!
//! Architecture invariant: this crate is pure logic (no IO, no clock): applying the same
//! commands in the same order gives the same registry on every replica.

pub mod api;
pub mod asyncapi;
pub mod error;
pub mod format;
pub mod registry;
pub mod types;
pub mod wire;

pub use error::{RegistryError, RegistryResult};
pub use format::{NamedSource, ParsedSchema, Source};
pub use registry::{
    RegisterPlan, Registry, RegistryCommand, RegistryOutcome, SchemaInput, StoredSchema, Subject, SubjectVersion,
    VersionSpec,
};
pub use types::{Compatibility, SchemaReference, SchemaType, SubjectNameStrategy};
