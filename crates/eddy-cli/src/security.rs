//! `eddy user`, `eddy acl`, `eddy quota` and `eddy auth`: users, access control lists, quotas,
//! and who the brokers take the caller for.

use std::io::BufRead as _;

use clap::{Args, Subcommand, ValueEnum};
use eddy_client::Client;
use eddy_client::v1::{self, AclOperation, AclPatternType, AclPermission, AclResourceType};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace its password. The password is read from the first line of
    /// stdin (never from a flag), salted and hashed here (SCRAM-SHA-256).
    Create {
        name: String,
        /// PBKDF2 rounds of the credential (4096 to 100000).
        #[arg(long, default_value_t = eddy_auth::SCRAM_ITERATIONS_DEFAULT)]
        iterations: u32,
    },
    /// Delete a user (its ACLs stay until removed).
    Delete { name: String },
    /// List the users (names and mechanisms; never credentials).
    List,
}

/// Whose quota: one principal, or the default of everyone without one of their own.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct QuotaTarget {
    /// The principal, `User:<name>`.
    #[arg(long)]
    principal: Option<String>,
    /// The default quota: of every principal without one of its own (superusers too).
    #[arg(long)]
    default: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set a quota cluster-wide, replacing the one set before whole (a rate left out is
    /// unlimited). A quota set here comes before the brokers' configured ones.
    Set {
        #[command(flatten)]
        target: QuotaTarget,
        /// Bytes of produce requests per second.
        #[arg(long)]
        produce_bytes_per_second: Option<u64>,
        /// Bytes of records fetched or pushed by subscriptions per second.
        #[arg(long)]
        fetch_bytes_per_second: Option<u64>,
        /// Client requests per second.
        #[arg(long)]
        requests_per_second: Option<u64>,
    },
    /// Remove a quota set cluster-wide (the brokers' configured quotas apply again).
    Remove {
        #[command(flatten)]
        target: QuotaTarget,
    },
    /// List the quotas set cluster-wide.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OperationArg {
    Read,
    Write,
    Create,
    Delete,
    Describe,
    Alter,
    All,
}

/// Which ACLs: the principal, the resource and the operations.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// The principal, `User:<name>` (`User:*` for everyone).
    #[arg(long)]
    principal: Option<String>,
    /// Operations (repeat for several).
    #[arg(long = "operation", value_enum)]
    operations: Vec<OperationArg>,
    /// A topic (or `*`; a prefix with --prefixed).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// A schema registry subject.
    #[arg(long, group = "resource")]
    subject: Option<String>,
    /// The cluster (creating topics, brokers, users and ACLs).
    #[arg(long, group = "resource")]
    cluster: bool,
    /// The name is a prefix: every resource whose name starts with it.
    #[arg(long)]
    prefixed: bool,
    /// Deny instead of allow (a deny wins over every allow).
    #[arg(long)]
    deny: bool,
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow (or, with --deny, deny) a principal operations on a resource.
    Add(AclArgs),
    /// Remove the ACLs matching the given fields (those left out match anything).
    Remove(AclArgs),
    /// List the ACLs matching the given fields.
    List(AclArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Who the brokers take this client for, and how it authenticated.
    Whoami,
    /// Make a new API key for a principal: prints the token (once: keep it secret) and the
    /// line to add to the brokers' configuration, which holds only its SHA-256.
    GenerateKey {
        /// The principal the key authenticates, `User:<name>`.
        #[arg(long)]
        principal: String,
    },
}

fn operation(op: OperationArg) -> AclOperation {
    match op {
        OperationArg::Read => AclOperation::Read,
        OperationArg::Write => AclOperation::Write,
        OperationArg::Create => AclOperation::Create,
        OperationArg::Delete => AclOperation::Delete,
        OperationArg::Describe => AclOperation::Describe,
        OperationArg::Alter => AclOperation::Alter,
        OperationArg::All => AclOperation::All,
    }
}

impl AclArgs {
    fn resource(&self) -> Option<(AclResourceType, String)> {
        match (&self.topic, &self.group, &self.subject, self.cluster) {
            (Some(t), _, _, _) => Some((AclResourceType::Topic, t.clone())),
            (_, Some(g), _, _) => Some((AclResourceType::Group, g.clone())),
            (_, _, Some(s), _) => Some((AclResourceType::Subject, s.clone())),
            (_, _, _, true) => Some((AclResourceType::Cluster, eddy_auth::Resource::CLUSTER_NAME.into())),
            _ => None,
        }
    }

    fn permission(&self) -> AclPermission {
        if self.deny { AclPermission::Deny } else { AclPermission::Allow }
    }

    fn pattern(&self) -> AclPatternType {
        if self.prefixed { AclPatternType::Prefixed } else { AclPatternType::Literal }
    }

    /// The ACLs to add: every field is needed.
    fn acls(&self) -> Result<Vec<v1::Acl>, CliError> {
        let principal = self.principal.clone().ok_or_else(|| CliError::Usage("--principal is required".into()))?;
        eddy_auth::Principal::parse(&principal).map_err(|e| CliError::Usage(e.to_string()))?;
        let (resource_type, name) = self
            .resource()
            .ok_or_else(|| CliError::Usage("name a resource: --topic, --group, --subject or --cluster".into()))?;
        if self.operations.is_empty() {
            return Err(CliError::Usage("--operation is required (repeat it for several)".into()));
        }
        Ok(self
            .operations
            .iter()
            .map(|op| v1::Acl {
                principal: principal.clone(),
                resource_type: resource_type as i32,
                pattern_type: self.pattern() as i32,
                name: name.clone(),
                operation: operation(*op) as i32,
                permission: self.permission() as i32,
            })
            .collect())
    }

    /// The filters to remove or list by: one per operation given (or one for any).
    fn filters(&self) -> Vec<v1::AclFilter> {
        let (resource_type, name) = match self.resource() {
            Some((t, n)) => (t as i32, Some(n)),
            None => (AclResourceType::Unspecified as i32, None),
        };
        let base = v1::AclFilter {
            principal: self.principal.clone(),
            resource_type,
            pattern_type: if self.prefixed { AclPatternType::Prefixed as i32 } else { 0 },
            name,
            operation: 0,
            permission: if self.deny { AclPermission::Deny as i32 } else { 0 },
        };
        if self.operations.is_empty() {
            return vec![base];
        }
        self.operations.iter().map(|op| v1::AclFilter { operation: operation(*op) as i32, ..base.clone() }).collect()
    }
}

fn acl_json(acl: &v1::Acl) -> serde_json::Value {
    json!({
        "principal": acl.principal,
        "resource_type": name_of(AclResourceType::try_from(acl.resource_type).map(|t| t.as_str_name())),
        "pattern_type": name_of(AclPatternType::try_from(acl.pattern_type).map(|t| t.as_str_name())),
        "name": acl.name,
        "operation": name_of(AclOperation::try_from(acl.operation).map(|t| t.as_str_name())),
        "permission": name_of(AclPermission::try_from(acl.permission).map(|t| t.as_str_name())),
    })
}

/// `ACL_OPERATION_READ` -> `read`.
fn name_of(name: Result<&str, prost::UnknownEnumValue>) -> String {
    let name = name.unwrap_or("UNKNOWN");
    name.rsplit('_').next().unwrap_or(name).to_lowercase()
}

fn print_acls(acls: &[v1::Acl], format: Format) {
    match format {
        Format::Json => json_line(&json!({ "acls": acls.iter().map(acl_json).collect::<Vec<_>>() })),
        Format::Table => {
            let mut out = table(&["PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "PATTERN", "NAME"]);
            for acl in acls.iter().map(acl_json) {
                let cell = |k: &str| acl[k].as_str().unwrap_or_default().to_string();
                out.add_row(vec![
                    cell("principal"),
                    cell("permission"),
                    cell("operation"),
                    cell("resource_type"),
                    cell("pattern_type"),
                    cell("name"),
                ]);
            }
            println!("{out}");
        }
    }
}

pub async fn run_user(command: &UserCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        UserCommand::Create { name, iterations } => {
            eddy_auth::check_name(name).map_err(|e| CliError::Usage(e.to_string()))?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(CliError::Usage("give the new password on the first line of stdin".into()));
            }
            client.upsert_user(name, password, *iterations).await?;
            match format {
                Format::Json => json_line(&json!({ "user": name, "mechanism": "SCRAM-SHA-256" })),
                Format::Table => println!("user {name} is set (SCRAM-SHA-256)"),
            }
        }
        UserCommand::Delete { name } => {
            client.delete_user(name).await?;
            match format {
                Format::Json => json_line(&json!({ "deleted": name })),
                Format::Table => println!("user {name} deleted"),
            }
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            match format {
                Format::Json => json_line(&json!({
                    "users": users.iter().map(|u| json!({"name": u.name, "mechanism": u.mechanism, "iterations": u.iterations})).collect::<Vec<_>>()
                })),
                Format::Table => {
                    let mut out = table(&["USER", "MECHANISM", "ITERATIONS"]);
                    for u in &users {
                        out.add_row(vec![u.name.clone(), u.mechanism.clone(), u.iterations.to_string()]);
                    }
                    println!("{out}");
                }
            }
        }
    }
    Ok(())
}

pub async fn run_acl(command: &AclCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        AclCommand::Add(args) => {
            let acls = args.acls()?;
            client.create_acls(acls.clone()).await?;
            match format {
                Format::Json => json_line(&json!({ "added": acls.iter().map(acl_json).collect::<Vec<_>>() })),
                Format::Table => println!("{} ACL(s) added", acls.len()),
            }
        }
        AclCommand::Remove(args) => {
            if args.principal.is_none() && args.resource().is_none() && args.operations.is_empty() {
                return Err(CliError::Usage(
                    "name what to remove (--principal, a resource, --operation): removing every ACL takes --principal \
                     'User:*'-style filters one at a time"
                        .into(),
                ));
            }
            let mut deleted = Vec::new();
            for filter in args.filters() {
                deleted.extend(client.delete_acls(filter).await?);
            }
            match format {
                Format::Json => json_line(&json!({ "removed": deleted.iter().map(acl_json).collect::<Vec<_>>() })),
                Format::Table => println!("{} ACL(s) removed", deleted.len()),
            }
        }
        AclCommand::List(args) => {
            let mut acls = Vec::new();
            for filter in args.filters() {
                acls.extend(client.list_acls(filter).await?);
            }
            print_acls(&acls, format);
        }
    }
    Ok(())
}

pub async fn run_auth(command: &AuthCommand, client: Option<&Client>, format: Format) -> Result<(), CliError> {
    match command {
        AuthCommand::Whoami => {
            let client = client.ok_or_else(|| CliError::Usage("no brokers".into()))?;
            let me = client.who_am_i().await?;
            match format {
                Format::Json => json_line(&json!({
                    "principal": me.principal, "superuser": me.superuser, "mechanism": me.mechanism,
                })),
                Format::Table => println!(
                    "{} (authenticated by {}{})",
                    me.principal,
                    me.mechanism,
                    if me.superuser { ", superuser" } else { "" }
                ),
            }
        }
        AuthCommand::GenerateKey { principal } => {
            eddy_auth::Principal::parse(principal).map_err(|e| CliError::Usage(e.to_string()))?;
            let token = eddy_auth::generate_token();
            let sha256 = eddy_auth::token_sha256(&token);
            match format {
                Format::Json => json_line(&json!({ "principal": principal, "token": token, "sha256": sha256 })),
                Format::Table => {
                    println!("token (give it to the client, e.g. EDDY_TOKEN; it is not shown again):\n  {token}");
                    println!("brokers' configuration (TOML):");
                    println!("  [[auth.api_keys]]\n  principal = {principal:?}\n  sha256 = {sha256:?}");
                }
            }
        }
    }
    Ok(())
}

pub async fn run_quota(command: &QuotaCommand, client: &Client, format: Format) -> Result<(), CliError> {
    let (target, limits) = match command {
        QuotaCommand::Set { target, produce_bytes_per_second, fetch_bytes_per_second, requests_per_second } => {
            let limits = v1::QuotaLimits {
                produce_bytes_per_second: *produce_bytes_per_second,
                fetch_bytes_per_second: *fetch_bytes_per_second,
                requests_per_second: *requests_per_second,
            };
            if limits == v1::QuotaLimits::default() {
                return Err(CliError::Usage(
                    "give at least one rate (--produce-bytes-per-second, --fetch-bytes-per-second, \
                     --requests-per-second); `eddy quota remove` removes a quota"
                        .into(),
                ));
            }
            (target, limits)
        }
        QuotaCommand::Remove { target } => (target, v1::QuotaLimits::default()),
        QuotaCommand::List => {
            let quotas = client.list_quotas().await?;
            let who =
                |q: &v1::Quota| if q.principal.is_empty() { "<default>".to_string() } else { q.principal.clone() };
            match format {
                Format::Json => json_line(&json!({
                    "quotas": quotas.iter().map(|q| quota_json(&who(q), q.limits.unwrap_or_default())).collect::<Vec<_>>()
                })),
                Format::Table => {
                    let mut out = table(&["PRINCIPAL", "PRODUCE B/S", "FETCH B/S", "REQUESTS/S"]);
                    let rate = |r: Option<u64>| r.map_or("-".to_string(), |r| r.to_string());
                    for q in &quotas {
                        let l = q.limits.unwrap_or_default();
                        out.add_row(vec![
                            who(q),
                            rate(l.produce_bytes_per_second),
                            rate(l.fetch_bytes_per_second),
                            rate(l.requests_per_second),
                        ]);
                    }
                    println!("{out}");
                }
            }
            return Ok(());
        }
    };
    if let Some(principal) = &target.principal {
        eddy_auth::Principal::parse(principal).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    client.set_quota(target.principal.as_deref(), limits).await?;
    let who = target.principal.clone().unwrap_or_else(|| "<default>".into());
    match (format, limits == v1::QuotaLimits::default()) {
        (Format::Json, true) => json_line(&json!({ "removed": who })),
        (Format::Json, false) => json_line(&quota_json(&who, limits)),
        (Format::Table, true) => println!("quota of {who} removed"),
        (Format::Table, false) => println!("quota of {who} set"),
    }
    Ok(())
}

fn quota_json(who: &str, limits: v1::QuotaLimits) -> serde_json::Value {
    json!({
        "principal": who,
        "produce_bytes_per_second": limits.produce_bytes_per_second,
        "fetch_bytes_per_second": limits.fetch_bytes_per_second,
        "requests_per_second": limits.requests_per_second,
    })
}
