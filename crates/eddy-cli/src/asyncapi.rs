//! `eddy asyncapi`: the cluster's AsyncAPI 3.0 document, as a broker's HTTP listener serves it
//! (`--schema-registry`), in JSON or YAML, to stdout or a file.

use std::path::PathBuf;

use clap::Args;
use eddy_client::schema::SchemaRegistry;

use crate::error::CliError;

#[derive(Debug, Args)]
pub struct AsyncapiArgs {
    /// Only topics matching this pattern (`*` matches any run of characters).
    #[arg(long)]
    topic: Option<String>,
    /// Write the document here instead of stdout; a `.yaml` or `.yml` file gets YAML.
    #[arg(long)]
    output: Option<PathBuf>,
    /// YAML rather than JSON (the default for stdout and `.json` files).
    #[arg(long)]
    yaml: bool,
}

pub async fn run(args: &AsyncapiArgs, registry: &SchemaRegistry) -> Result<(), CliError> {
    let document = registry.asyncapi(args.topic.as_deref()).await?;
    let yaml = args.yaml
        || args
            .output
            .as_ref()
            .and_then(|p| p.extension())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let text = if yaml {
        serde_norway::to_string(&document).map_err(|e| CliError::Failed(e.to_string()))?
    } else {
        serde_json::to_string_pretty(&document).map_err(|e| CliError::Failed(e.to_string()))? + "\n"
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
