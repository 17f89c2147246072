//! Secrets in manifests: an Engine's environment may carry API keys (vLLM's, TGI's, a hub
//! token). A value can be kept out of the manifest (`valueFrom: {env: NAME}` or
//! `{file: PATH}`, read when a replica starts), and wherever a manifest is shown (the
//! snapshot, `describe`, `plan`, logs) such values, and literal values whose names look like
//! secrets, are [`REDACTED`].

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a hidden value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Largest `valueFrom.file` read.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// An environment variable's value in an Engine manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    /// Written in the manifest.
    Literal(String),
    /// Read when a replica starts; never shown.
    From(FromSource),
}

/// `{valueFrom: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FromSource {
    /// Where the value comes from.
    pub value_from: ValueFrom,
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ValueFrom {
    /// An environment variable of llama-orchd.
    Env(String),
    /// A file's contents (a trailing newline dropped); a regular file of at most 64 KiB.
    File(PathBuf),
}

/// Why a `valueFrom` could not be read. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The variable is not set in the daemon's environment.
    #[error("environment variable `{0}` is not set in llama-orchd's environment")]
    EnvUnset(String),
    /// The file could not be read.
    #[error("{path}: {error}; {hint}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        error: String,
        /// What to do.
        hint: &'static str,
    },
}

impl EnvValue {
    /// The value to start a replica with: the literal, the daemon's variable, or the file's
    /// contents. Reads a file: blocking I/O on a small regular file.
    pub fn resolve(&self) -> Result<String, ResolveError> {
        match self {
            EnvValue::Literal(v) => Ok(v.clone()),
            EnvValue::From(FromSource {
                value_from: ValueFrom::Env(name),
            }) => std::env::var(name).map_err(|_| ResolveError::EnvUnset(name.clone())),
            EnvValue::From(FromSource {
                value_from: ValueFrom::File(path),
            }) => crate::files::read_text(path, MAX_SECRET_FILE_BYTES)
                .map(|text| text.strip_suffix('\n').unwrap_or(&text).to_string())
                .map_err(|e| ResolveError::File {
                    path: path.display().to_string(),
                    error: e.to_string(),
                    hint: e.hint(),
                }),
        }
    }

    /// How it may be shown for variable `name`: a literal unless the name looks secret;
    /// [`REDACTED`] otherwise.
    pub fn shown(&self, name: &str) -> String {
        match self {
            EnvValue::Literal(v) if !is_secret_name(name) => v.clone(),
            _ => REDACTED.to_string(),
        }
    }
}

/// Names that hold secrets by convention: `*_KEY`, `*_TOKEN`, `*PASSWORD*`, `*SECRET*`
/// (any case).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_KEY")
        || upper.ends_with("_TOKEN")
        || upper == "TOKEN"
        || upper.contains("PASSWORD")
        || upper.contains("SECRET")
}

/// A manifest's JSON with every Engine env value that must not be shown replaced by
/// [`REDACTED`] (`valueFrom` references stay: they name where, not what).
pub fn redact_manifest(mut manifest: serde_json::Value) -> serde_json::Value {
    if manifest.get("kind").and_then(|k| k.as_str()) != Some("Engine") {
        return manifest;
    }
    if let Some(env) = manifest
        .get_mut("spec")
        .and_then(|s| s.get_mut("env"))
        .and_then(|e| e.as_object_mut())
    {
        for (name, value) in env.iter_mut() {
            if value.is_string() && is_secret_name(name) {
                *value = serde_json::Value::String(REDACTED.into());
            }
        }
    }
    manifest
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_looking_names_are_redacted_others_and_references_shown() {
        let m = json!({"kind": "Engine", "spec": {"env": {
            "HF_TOKEN": "hf_abc", "OPENAI_API_KEY": "sk-1", "DB_PASSWORD_FILE": "x", "LOG_LEVEL": "debug",
            "VLLM_KEY_FROM": {"valueFrom": {"env": "VLLM_API_KEY"}}
        }}});
        let r = redact_manifest(m);
        let env = &r["spec"]["env"];
        for name in ["HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD_FILE"] {
            assert_eq!(env[name], REDACTED, "{name}");
        }
        assert_eq!(env["LOG_LEVEL"], "debug");
        assert_eq!(env["VLLM_KEY_FROM"], json!({"valueFrom": {"env": "VLLM_API_KEY"}}));
        let pool = json!({"kind": "Pool", "spec": {"env": {"A_TOKEN": "x"}}});
        assert_eq!(redact_manifest(pool.clone()), pool, "only Engines have env");
    }

    #[test]
    fn values_parse_as_literals_or_references_and_resolve() {
        let v: EnvValue = serde_json::from_value(json!("plain")).unwrap();
        assert_eq!(v.resolve().unwrap(), "plain");
        assert_eq!(v.shown("LOG_LEVEL"), "plain");
        assert_eq!(v.shown("MY_TOKEN"), REDACTED);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let from_file: EnvValue = serde_json::from_value(json!({"valueFrom": {"file": file}})).unwrap();
        assert_eq!(from_file.resolve().unwrap(), "s3cr3t");
        assert_eq!(from_file.shown("ANYTHING"), REDACTED);
        let unset: EnvValue =
            serde_json::from_value(json!({"valueFrom": {"env": "LLORCH_TEST_SURELY_UNSET_VAR"}})).unwrap();
        assert!(
            unset
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("LLORCH_TEST_SURELY_UNSET_VAR")
        );
        assert!(serde_json::from_value::<EnvValue>(json!({"valueFrom": {"url": "x"}})).is_err());
        assert!(serde_json::from_value::<EnvValue>(json!({"value": "x"})).is_err());
    }
}
