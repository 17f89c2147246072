//! `-o json` and `-o yaml`, and the YAML form of a manifest that `apply` writes and `diff`
//! compares.

use std::io::Write;

use anyhow::Context as _;
use llorch_manifests::AnyObject;
use serde::Serialize;

use crate::cli::Output;

/// Prints `value` as pretty JSON or YAML. `Output::Table` is the caller's business.
pub fn print_raw<T: Serialize>(out: &mut dyn Write, format: Output, value: &T) -> anyhow::Result<()> {
    match format {
        Output::Json => {
            let text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
            writeln!(out, "{text}")?;
        }
        Output::Yaml | Output::Table => {
            let text = serde_saphyr::to_string(value).context("cannot encode YAML")?;
            write!(out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

/// A manifest as YAML (every field, defaults included).
pub fn manifest_yaml(object: &AnyObject) -> anyhow::Result<String> {
    llorch_manifests::render::manifest_yaml(object).map_err(anyhow::Error::msg)
}
