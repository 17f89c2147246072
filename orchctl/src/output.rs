//! `-o json` and `-o yaml`, the YAML form of a manifest that `apply` writes and `diff`
//! compares, and the manifests `get -o yaml` prints.

use std::io::Write;

use anyhow::Context as _;
use llorch_manifests::api::ObjectView;
use llorch_manifests::{AnyObject, ObjectRef};
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

/// `get -o yaml` of pools, models or engines: each object's manifest as declared, as the
/// daemon serves it (secret env values `<redacted>`, which `apply` refuses), one YAML document
/// each, separated by `---`, so `apply -f -` and `diff -f -` take it back unchanged. Objects
/// without a readable manifest are returned by reference instead, for the caller to mention.
pub fn manifest_documents(views: &[ObjectView]) -> (String, Vec<ObjectRef>) {
    let mut text = String::new();
    let mut missing = Vec::new();
    for view in views {
        let yaml = view
            .manifest
            .clone()
            .and_then(|m| serde_json::from_value::<AnyObject>(m).ok())
            .and_then(|object| manifest_yaml(&object).ok());
        match yaml {
            Some(yaml) => {
                if !text.is_empty() {
                    text.push_str("---\n");
                }
                text.push_str(&yaml);
            }
            None => missing.push(view.object.clone()),
        }
    }
    (text, missing)
}
