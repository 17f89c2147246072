//! Semantic checks serde cannot express: names, ranges, formats and placeholders within one
//! object (`check_object`), and duplicates and references across a set (`check_set`). An
//! Engine's own checks are in `engine`, a Pool's in `pool`.

use std::collections::BTreeMap;

use crate::error::ManifestError;
use crate::meta::{AnyObject, Kind, ObjectRef};
use crate::parse::Located;
use crate::{ModelSpec, Provisioning};

mod engine;
mod pool;

use engine::check_engine;
use pool::check_pool;
pub use pool::{IDLE_TIMEOUT_BOUNDS, MAX_REPLICAS, check_pool_size};

/// Placeholders an Engine's `args` may use.
pub const PLACEHOLDERS: [&str; 6] = ["model_path", "port", "ctx_size", "slots", "host", "tensor_split"];

/// One problem inside one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// Longest problem message: one may quote a value from the manifest, which can be huge.
const MAX_PROBLEM_BYTES: usize = 300;

fn problem(field: &str, message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        field: field.to_string(),
        message: crate::text::cut(message.into(), MAX_PROBLEM_BYTES),
        hint: hint.into(),
    }
}

/// Most labels on one object.
pub const MAX_LABELS: usize = 64;

/// Longest object name.
pub const MAX_NAME_CHARS: usize = 40;

/// [`is_valid_name`] as a JSON Schema pattern (with [`MAX_NAME_CHARS`] as `maxLength`). These
/// patterns are the schemas' copy of the checks in this file; `manifests/tests/schema_agreement.rs`
/// holds the two to the same verdicts.
pub const NAME_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A label key as a JSON Schema pattern: `[prefix/]name`, the prefix dot-separated DNS labels.
/// (The prefix's 253-character limit is the validator's alone.)
pub const LABEL_KEY_PATTERN: &str = r"^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// A label value as a JSON Schema pattern: empty, or a label name.
pub const LABEL_VALUE_PATTERN: &str = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";

/// An Engine argument's placeholders ([`check_placeholders`]) as a JSON Schema pattern.
pub const ARG_PATTERN: &str = r"^([^{]|\{(model_path|port|ctx_size|slots|host|tensor_split)\})*$";

/// A Model digest as a JSON Schema pattern.
pub const DIGEST_PATTERN: &str = r"^sha256:[0-9a-fA-F]{64}$";

/// Text with something besides white space.
pub const NOT_BLANK_PATTERN: &str = r"\S";

/// Text without white space, not empty.
pub const NO_SPACE_PATTERN: &str = r"^\S+$";

/// An http(s) URL without white space.
pub const URL_PATTERN: &str = r"^https?://\S*$";

/// An environment variable name: not empty, no `=` or NUL.
pub const ENV_NAME_PATTERN: &str = r"^[^=\u0000]+$";

/// [`is_plain_file_name`] as a JSON Schema pattern: not empty, not `.` or `..`, no slash,
/// backslash or NUL.
pub const PLAIN_FILE_NAME_PATTERN: &str =
    r"^([^/\\\u0000.][^/\\\u0000]*|\.[^/\\\u0000.][^/\\\u0000]*|\.\.[^/\\\u0000]+)$";

/// Kubernetes' label rules: a key is `[prefix/]name`, the name 1–63 characters of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric, the prefix a DNS subdomain of at most 253;
/// a value is empty or a name.
fn check_labels(labels: &std::collections::BTreeMap<String, String>, out: &mut Vec<Problem>) {
    fn label_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    }
    fn prefix(s: &str) -> bool {
        s.len() <= 253 && s.split('.').all(|part| label_name(part) && !part.contains(['_', '.']))
    }
    if labels.len() > MAX_LABELS {
        out.push(problem(
            "metadata.labels",
            format!("{} labels; at most {MAX_LABELS}", labels.len()),
            "keep labels for people and tools short",
        ));
        return;
    }
    for (key, value) in labels {
        let key_ok = match key.split_once('/') {
            Some((p, n)) => prefix(p) && label_name(n),
            None => label_name(key),
        };
        if !key_ok {
            out.push(problem(
                "metadata.labels",
                format!("key `{key}` is not a label key"),
                "use `[prefix/]name`: the name 1–63 characters of letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit",
            ));
        } else if !(value.is_empty() || label_name(value)) {
            out.push(problem(
                &format!("metadata.labels.{key}"),
                format!("`{value}` is not a label value"),
                "use at most 63 letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit",
            ));
        }
    }
}

/// Checks one object on its own.
pub fn check_object(object: &AnyObject) -> Vec<Problem> {
    let mut out = Vec::new();
    check_name(object.name(), &mut out);
    check_labels(object.labels(), &mut out);
    match object {
        AnyObject::Engine(e) => check_engine(&e.spec, &mut out),
        AnyObject::Model(m) => check_model(&m.spec, &mut out),
        AnyObject::Pool(p) => check_pool(&p.spec, &mut out),
    }
    out
}

/// True when `name` is a valid object name.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_CHARS
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn check_name(name: &str, out: &mut Vec<Problem>) {
    if !is_valid_name(name) {
        out.push(problem(
            "metadata.name",
            format!("`{name}` is not a valid name"),
            "use 1–40 lower-case letters, digits and `-`, starting with a letter and not ending with `-`",
        ));
    }
}

/// A file name without a directory: no `/`, not `.` or `..`, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Why an argument's placeholders are not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// A `{` without its `}`.
    #[error("`{arg}` has an unclosed `{{`")]
    Unclosed {
        /// The argument.
        arg: String,
    },
    /// A `{name}` that is not one of [`PLACEHOLDERS`].
    #[error("unknown placeholder `{{{name}}}` in `{arg}`")]
    Unknown {
        /// The name between the braces.
        name: String,
        /// The argument.
        arg: String,
    },
}

/// Checks that every `{…}` in `arg` names a known placeholder.
pub fn check_placeholders(arg: &str) -> Result<(), PlaceholderError> {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(PlaceholderError::Unclosed { arg: arg.to_string() });
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(PlaceholderError::Unknown {
                name: name.to_string(),
                arg: arg.to_string(),
            });
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn check_model(spec: &ModelSpec, out: &mut Vec<Problem>) {
    if let Err(e) = spec.parse_ref() {
        out.push(problem("spec.ref", e.to_string(), ""));
    }
    if let Some(d) = &spec.digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            out.push(problem(
                "spec.digest",
                format!("`{d}` is not a digest"),
                "use `sha256:` followed by 64 hex digits (`sha256sum FILE`)",
            ));
        }
    }
    if spec.ctx_max == 0 {
        out.push(problem(
            "spec.ctxMax",
            "must be at least 1",
            "set the model's trained context length, e.g. 8192",
        ));
    }
    if spec.vram_bytes == Some(0) {
        out.push(problem(
            "spec.vramBytes",
            "must be more than 0",
            "omit it to use the estimate",
        ));
    }
}

/// Checks a whole set: duplicate names within a kind, and Pool references to Engines and
/// Models that must exist. Errors are reported on the object that is wrong (the later
/// duplicate, the Pool with the dangling reference).
pub fn check_set(objects: &[Located]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut first: BTreeMap<ObjectRef, &Located> = BTreeMap::new();
    for loc in objects {
        let r = loc.object.object_ref();
        if let Some(prev) = first.get(&r) {
            errors.push(
                ManifestError::file(
                    &loc.file,
                    format!("{r} is already defined in {} (document {})", prev.file, prev.document),
                    "names are unique per kind: rename one or delete the other",
                )
                .in_document(loc.document)
                .on_object(Some(r.kind), Some(r.name.clone()))
                .at_field("metadata.name"),
            );
        } else {
            first.insert(r, loc);
        }
    }
    for loc in objects {
        let AnyObject::Pool(pool) = &loc.object else { continue };
        let on = |field: &str, message: String, hint: String| {
            ManifestError::file(&loc.file, message, hint)
                .in_document(loc.document)
                .on_object(Some(Kind::Pool), Some(pool.metadata.name.clone()))
                .at_field(field)
        };
        if !first.contains_key(&ObjectRef::new(Kind::Engine, &pool.spec.engine)) {
            errors.push(on(
                "spec.engine",
                format!("Engine `{}` does not exist", pool.spec.engine),
                "create that Engine, or name an existing one".into(),
            ));
        }
        if let Some(AnyObject::Engine(engine)) = first
            .get(&ObjectRef::new(Kind::Engine, &pool.spec.engine))
            .map(|l| &l.object)
            && engine.spec.provisioning == Provisioning::External
            && pool.spec.replica_bounds().1 > 1
        {
            errors.push(on(
                "spec.replicas",
                format!(
                    "{} replicas, but Engine `{}` is `provisioning: external`: one URL is one replica",
                    pool.spec.replica_bounds().1,
                    engine.metadata.name
                ),
                "set `replicas: 1`; for more, declare one external Engine per URL and one Pool per Engine".into(),
            ));
        }
        match first
            .get(&ObjectRef::new(Kind::Model, &pool.spec.model))
            .map(|l| &l.object)
        {
            None => errors.push(on(
                "spec.model",
                format!("Model `{}` does not exist", pool.spec.model),
                "create that Model, or name an existing one".into(),
            )),
            Some(AnyObject::Model(model)) => {
                if let Some(ctx) = pool.spec.ctx_size
                    && ctx > model.spec.ctx_max
                {
                    errors.push(on(
                        "spec.ctxSize",
                        format!(
                            "{ctx} exceeds Model `{}`'s ctxMax of {}",
                            model.metadata.name, model.spec.ctx_max
                        ),
                        "lower ctxSize or raise the Model's ctxMax".into(),
                    ));
                }
            }
            Some(_) => {}
        }
    }
    errors
}

#[cfg(test)]
mod external_replica_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(replicas: u32) -> Vec<ManifestError> {
        let yaml = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: ext}}\nspec: {{provisioning: external, url: 'http://127.0.0.1:8081', version: '1'}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec: {{ref: 'file:/m.gguf', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p}}\nspec: {{engine: ext, model: m, replicas: {replicas}}}\n"
        );
        check_set(&crate::parse_file("f.yaml", yaml.as_bytes()).unwrap())
    }

    #[test]
    fn an_external_engine_serves_exactly_one_replica() {
        assert_eq!(set(1), vec![]);
        let errors = set(2);
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert!(msg.contains("field `spec.replicas`"), "{msg}");
        assert!(
            msg.contains("Engine `ext` is `provisioning: external`: one URL is one replica"),
            "{msg}"
        );
    }
}

#[cfg(test)]
mod placeholder_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn placeholder_errors_name_the_argument_and_the_placeholder() {
        assert!(check_placeholders("--ctx-size={ctx_size}").is_ok());
        assert_eq!(
            check_placeholders("--x={nope}").unwrap_err().to_string(),
            "unknown placeholder `{nope}` in `--x={nope}`"
        );
        assert_eq!(
            check_placeholders("--x={port").unwrap_err().to_string(),
            "`--x={port` has an unclosed `{`"
        );
    }
}

#[cfg(test)]
mod bound_tests {
    #![allow(clippy::unwrap_used)]

    fn errors(metadata: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {metadata}\nspec: {{ref: 'file:/m.gguf', ctxMax: 4096}}\n"
        );
        match crate::parse_file("f.yaml", yaml.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn labels_follow_kubernetes_limits() {
        assert!(errors("{name: m, labels: {team: ml, example.com/tier: gold-1, empty: ''}}").is_empty());
        let long = "v".repeat(64);
        for bad in [
            format!("{{name: m, labels: {{team: {long}}}}}"),
            format!("{{name: m, labels: {{{long}: x}}}}"),
            "{name: m, labels: {'-team': x}}".to_string(),
            "{name: m, labels: {'bad prefix/x': y}}".to_string(),
        ] {
            let e = errors(&bad);
            assert!(e.iter().any(|e| e.contains("metadata.labels")), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_huge_value_is_quoted_only_in_part() {
        let name = "X".repeat(500_000);
        let e = errors(&format!("{{name: {name}}}"));
        assert_eq!(e.len(), 1, "{}", e.iter().map(String::len).sum::<usize>());
        assert!(
            e[0].len() < 1000 && e[0].contains("more bytes cut)"),
            "{}",
            &e[0][..e[0].len().min(300)]
        );
    }
}
