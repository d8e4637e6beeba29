//! Output formats: human tables or JSON.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables for people.
    Table,
    /// JSON (one document; JSON lines when streaming).
    Json,
}

/// A table with the project's style.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(header.to_vec());
    table
}

/// Bytes as text for display: UTF-8 where valid, lossy otherwise.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Prints one JSON value on its own line.
pub fn json_line(value: &serde_json::Value) {
    println!("{value}");
}
