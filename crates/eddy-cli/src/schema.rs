//! `eddy schema`: the schema registry (any broker's HTTP listener, `--schema-registry`).

use std::path::PathBuf;

use clap::Subcommand;
use eddy_client::schema::SchemaRegistry;
use eddy_schema::{Compatibility, SchemaInput, SchemaReference, SchemaType, VersionSpec};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a schema under a subject (a new version, unless the subject already holds it).
    Register {
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
    },
    /// List subjects with their latest version.
    List {
        /// Include subjects whose versions are all soft-deleted.
        #[arg(long)]
        deleted: bool,
    },
    /// Print a subject's version (the latest by default).
    #[command(disable_version_flag = true)]
    Get {
        subject: String,
        /// A version number, or latest.
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// Check a schema's compatibility with a subject; exits non-zero when it is incompatible.
    #[command(disable_version_flag = true)]
    Check {
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
        /// Check against this version only (default: the versions the subject's level checks).
        #[arg(long)]
        version: Option<String>,
    },
    /// Show or set the compatibility level of a subject, or the global one.
    Config {
        subject: Option<String>,
        /// none, backward, backward_transitive, forward, forward_transitive, full, full_transitive.
        #[arg(long, value_parser = parse_level)]
        compatibility: Option<Compatibility>,
    },
    /// Delete a subject or one of its versions (soft; --permanent after a soft delete).
    #[command(disable_version_flag = true)]
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
}

/// A schema given on the command line: its format, its file and what it references.
#[derive(Debug, clap::Args)]
pub struct SchemaFile {
    /// The schema's format.
    #[arg(long = "type", value_enum)]
    schema_type: TypeArg,
    /// File holding the schema text (.avsc, .json, .proto).
    #[arg(long)]
    file: PathBuf,
    /// A schema it references: NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference", value_parser = parse_reference)]
    references: Vec<SchemaReference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArg {
    Avro,
    Json,
    Protobuf,
}

impl From<TypeArg> for SchemaType {
    fn from(t: TypeArg) -> SchemaType {
        match t {
            TypeArg::Avro => SchemaType::Avro,
            TypeArg::Json => SchemaType::Json,
            TypeArg::Protobuf => SchemaType::Protobuf,
        }
    }
}

fn parse_reference(text: &str) -> Result<SchemaReference, String> {
    let usage = || format!("reference {text:?}: expected NAME=SUBJECT:VERSION");
    let (name, target) = text.split_once('=').ok_or_else(usage)?;
    let (subject, version) = target.rsplit_once(':').ok_or_else(usage)?;
    let version = version.parse::<u32>().ok().filter(|v| *v >= 1).ok_or_else(usage)?;
    if name.is_empty() || subject.is_empty() {
        return Err(usage());
    }
    Ok(SchemaReference { name: name.into(), subject: subject.into(), version })
}

fn parse_level(text: &str) -> Result<Compatibility, String> {
    Compatibility::parse(text).ok_or_else(|| {
        let all: Vec<String> = Compatibility::ALL.iter().map(|c| c.name().to_lowercase()).collect();
        format!("unknown compatibility level {text:?}; one of {}", all.join(", "))
    })
}

fn version(text: &str) -> Result<VersionSpec, CliError> {
    VersionSpec::parse(text).map_err(|e| CliError::Usage(e.to_string()))
}

fn input(given: &SchemaFile) -> Result<SchemaInput, CliError> {
    let schema = std::fs::read_to_string(&given.file)
        .map_err(|e| CliError::Usage(format!("cannot read the schema file {}: {e}", given.file.display())))?;
    Ok(SchemaInput { schema_type: given.schema_type.into(), schema, references: given.references.clone() })
}

pub async fn run(command: &SchemaCommand, registry: &SchemaRegistry, format: Format) -> Result<(), CliError> {
    match command {
        SchemaCommand::Register { subject, schema } => {
            let schema = input(schema)?;
            let (id, version) = registry.register(subject, &schema).await?;
            match format {
                Format::Json => json_line(&json!({"subject": subject, "id": id, "version": version})),
                Format::Table => println!("registered {subject} version {version} (schema id {id})"),
            }
        }
        SchemaCommand::List { deleted } => {
            let subjects = if *deleted { registry.subjects_with_deleted().await? } else { registry.subjects().await? };
            let mut rows = Vec::new();
            for subject in subjects {
                match registry.version(&subject, VersionSpec::Latest).await {
                    Ok(latest) => rows.push((subject, Some(latest))),
                    // Only deleted versions: listed without a latest one.
                    Err(_) => rows.push((subject, None)),
                }
            }
            match format {
                Format::Json => json_line(&json!(
                    rows.iter()
                        .map(|(subject, latest)| json!({
                            "subject": subject,
                            "version": latest.as_ref().map(|l| l.version),
                            "id": latest.as_ref().map(|l| l.id),
                            "type": latest.as_ref().map(|l| l.schema.schema_type.name()),
                        }))
                        .collect::<Vec<_>>()
                )),
                Format::Table => {
                    let mut out = table(&["SUBJECT", "LATEST VERSION", "ID", "TYPE"]);
                    for (subject, latest) in &rows {
                        let cell = |f: &dyn Fn(&eddy_client::schema::RegisteredSchema) -> String| {
                            latest.as_ref().map_or("(deleted)".to_string(), f)
                        };
                        out.add_row(vec![
                            subject.clone(),
                            cell(&|l| l.version.to_string()),
                            cell(&|l| l.id.to_string()),
                            cell(&|l| l.schema.schema_type.name().to_string()),
                        ]);
                    }
                    println!("{out}");
                }
            }
        }
        SchemaCommand::Get { subject, version: v } => {
            let registered = registry.version(subject, version(v)?).await?;
            match format {
                Format::Json => json_line(&json!({
                    "subject": registered.subject,
                    "version": registered.version,
                    "id": registered.id,
                    "type": registered.schema.schema_type.name(),
                    "references": registered.schema.references.iter()
                        .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                        .collect::<Vec<_>>(),
                    "schema": registered.schema.schema,
                })),
                Format::Table => {
                    println!(
                        "{} version {} (schema id {}, {})",
                        registered.subject, registered.version, registered.id, registered.schema.schema_type
                    );
                    for r in &registered.schema.references {
                        println!("references {} = {} version {}", r.name, r.subject, r.version);
                    }
                    println!("{}", registered.schema.schema);
                }
            }
        }
        SchemaCommand::Check { subject, schema, version: v } => {
            let schema = input(schema)?;
            let against = v.as_deref().map(version).transpose()?;
            let problems = registry.check(subject, against, &schema).await?;
            match format {
                Format::Json => {
                    json_line(&json!({"subject": subject, "compatible": problems.is_empty(), "messages": problems}))
                }
                Format::Table if problems.is_empty() => println!("compatible with {subject}"),
                Format::Table => {
                    println!("incompatible with {subject}:");
                    for p in &problems {
                        println!("  {p}");
                    }
                }
            }
            if !problems.is_empty() {
                return Err(CliError::Failed(format!(
                    "the schema is incompatible with {subject} ({} problems) (INCOMPATIBLE)",
                    problems.len()
                )));
            }
        }
        SchemaCommand::Config { subject, compatibility } => {
            if let Some(level) = compatibility {
                registry.set_compatibility(subject.as_deref(), *level).await?;
            }
            let level = registry.compatibility(subject.as_deref()).await?;
            let scope = subject.as_deref().unwrap_or("global");
            match format {
                Format::Json => json_line(&json!({"subject": subject, "compatibility": level.name()})),
                Format::Table => println!("{scope}: {}", level.name()),
            }
        }
        SchemaCommand::Delete { subject, version: v, permanent } => {
            let deleted = match v {
                Some(v) => vec![registry.delete_version(subject, version(v)?, *permanent).await?],
                None => registry.delete_subject(subject, *permanent).await?,
            };
            let how = if *permanent { "permanently" } else { "soft" };
            match format {
                Format::Json => {
                    json_line(&json!({"subject": subject, "deleted_versions": deleted, "permanent": permanent}))
                }
                Format::Table => println!("deleted ({how}) {subject} versions {deleted:?}"),
            }
        }
    }
    Ok(())
}
