//! Turns the bytes of one manifest file into objects, or into errors that name the file, the
//! document, the object and the field. Pure: the caller reads the file and passes its name.
//!
//! Two passes: YAML → untyped documents (syntax errors carry a line), then each document →
//! its kind's typed struct through `serde_path_to_error` (type errors carry a field path),
//! then field-level validation (`validate::check_object`).

use serde_json::Value;

use crate::error::ManifestError;
use crate::meta::{API_VERSION, AnyObject, Kind, Object, Spec};
use crate::validate;

/// The largest manifest file accepted (1 MiB): a manifest is a few hundred bytes; anything
/// near this is a mistake or an attack.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// One object read from a file, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    /// The file, as the caller named it.
    pub file: String,
    /// Zero-based index of the (non-empty) document in the file.
    pub document: usize,
    /// The object.
    pub object: AnyObject,
}

/// Parses and validates every document in one file. All-or-nothing: any error rejects the
/// whole file, so a half-valid file never changes what is running.
pub fn parse_file(file: &str, bytes: &[u8]) -> Result<Vec<Located>, Vec<ManifestError>> {
    let text = decode_text(file, bytes).map_err(|e| vec![e])?;
    let docs = parse_yaml(file, text).map_err(|e| vec![*e])?;
    let mut objects = Vec::with_capacity(docs.len());
    let mut errors = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        match decode_document(file, index, doc) {
            Ok(object) => objects.push(Located {
                file: file.to_string(),
                document: index,
                object,
            }),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() { Ok(objects) } else { Err(errors) }
}

fn decode_text<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::file(
            file,
            format!(
                "file is {} bytes; manifests may be at most {MAX_MANIFEST_BYTES} bytes",
                bytes.len()
            ),
            "split it into smaller files, or remove what is not a manifest",
        ));
    }
    if bytes.contains(&0) {
        return Err(ManifestError::file(
            file,
            "file contains NUL bytes: it looks like binary data, not YAML",
            "keep only YAML manifests (*.yaml, *.yml) in the manifests directory",
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        ManifestError::file(
            file,
            format!("file is not valid UTF-8 (at byte {})", e.valid_up_to()),
            "save the file as UTF-8 text",
        )
    })
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<Value>, Box<ManifestError>> {
    // YAML indents with spaces; a tab-indented file is refused instead of guessed at.
    let tab_indented = |l: &str| {
        let content = l.trim_start();
        !content.is_empty() && l[..l.len() - content.len()].contains('\t')
    };
    if let Some(line) = text.lines().position(tab_indented) {
        let mut err = ManifestError::file(
            file,
            "a tab in the indentation: YAML indents with spaces",
            "replace the leading tabs with spaces",
        );
        err.line = Some(line + 1);
        return Err(Box::new(err));
    }
    // Tags outside the schemas serde-saphyr knows (`!!python/object`, `!custom`) are refused
    // with the tag named, not silently dropped.
    let options = serde_saphyr::options! {
        reject_unsupported_tags: true,
    };
    serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| {
        let line = e.location().map(|l| l.line() as usize).filter(|l| *l > 0);
        let mut err = ManifestError::file(
            file,
            format!("YAML syntax error: {}", first_line(&e.without_snippet().to_string())),
            "fix the YAML syntax (indentation, quoting, `:` after keys)",
        );
        err.line = line;
        Box::new(err)
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

fn decode_document(file: &str, index: usize, doc: Value) -> Result<AnyObject, Vec<ManifestError>> {
    let err = |msg: String, hint: &str| ManifestError::file(file, msg, hint).in_document(index);
    let Value::Object(map) = &doc else {
        return Err(vec![err(
            format!("document is {}, not a mapping", describe(&doc)),
            "each document must be a manifest with apiVersion, kind, metadata and spec",
        )]);
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    let kind = match map.get("kind") {
        None => {
            return Err(vec![
                err(
                    "missing `kind`".into(),
                    "add `kind: Engine`, `kind: Model` or `kind: Pool`",
                )
                .on_object(None, name)
                .at_field("kind"),
            ]);
        }
        Some(Value::String(k)) => match k.as_str() {
            "Engine" => Kind::Engine,
            "Model" => Kind::Model,
            "Pool" => Kind::Pool,
            other => {
                return Err(vec![
                    err(
                        format!("unknown kind `{other}`"),
                        "expected one of: Engine, Model, Pool (case matters)",
                    )
                    .on_object(None, name)
                    .at_field("kind"),
                ]);
            }
        },
        Some(other) => {
            return Err(vec![
                err(
                    format!("`kind` is {}, expected a string", describe(other)),
                    "expected one of: Engine, Model, Pool",
                )
                .on_object(None, name)
                .at_field("kind"),
            ]);
        }
    };
    match map.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(v) => {
            return Err(vec![
                err(
                    format!("unsupported apiVersion {v}"),
                    &format!("this build understands `{API_VERSION}`"),
                )
                .on_object(Some(kind), name)
                .at_field("apiVersion"),
            ]);
        }
        None => {
            return Err(vec![
                err(
                    "missing `apiVersion`".into(),
                    &format!("add `apiVersion: {API_VERSION}`"),
                )
                .on_object(Some(kind), name)
                .at_field("apiVersion"),
            ]);
        }
    }
    let object = match kind {
        Kind::Engine => typed::<crate::EngineSpec>(file, index, &name, doc).map(AnyObject::Engine),
        Kind::Model => typed::<crate::ModelSpec>(file, index, &name, doc).map(AnyObject::Model),
        Kind::Pool => typed::<crate::PoolSpec>(file, index, &name, doc).map(AnyObject::Pool),
    }
    .map_err(|e| vec![*e])?;
    let problems = validate::check_object(&object);
    if problems.is_empty() {
        Ok(object)
    } else {
        Err(problems
            .into_iter()
            .map(|p| {
                ManifestError::file(file, p.message, p.hint)
                    .in_document(index)
                    .on_object(Some(kind), Some(object.name().to_string()))
                    .at_field(p.field)
            })
            .collect())
    }
}

fn typed<S: Spec>(
    file: &str,
    index: usize,
    name: &Option<String>,
    doc: Value,
) -> Result<Object<S>, Box<ManifestError>> {
    serde_path_to_error::deserialize::<_, Object<S>>(doc).map_err(|e| {
        let field = e.path().to_string();
        let (message, hint) = explain(&e.inner().to_string());
        Box::new(
            ManifestError::file(file, message, hint)
                .in_document(index)
                .on_object(Some(S::KIND), name.clone())
                .at_field(field),
        )
    })
}

/// Rephrases serde's messages where they are cryptic, and adds what to do.
fn explain(raw: &str) -> (String, String) {
    if raw.starts_with("unknown field") {
        return (
            raw.to_string(),
            "remove the field or fix its spelling (see schemas/ for the allowed fields)".into(),
        );
    }
    if raw.starts_with("missing field") {
        return (raw.to_string(), "add the field (see docs/manifests.md)".into());
    }
    if raw.contains("did not match any variant of untagged enum GpuSelector") {
        return (
            "invalid GPU selection".into(),
            "use `all` or a list of device indices such as `[0, 1]`".into(),
        );
    }
    if raw.starts_with("invalid type") || raw.starts_with("invalid value") || raw.starts_with("unknown variant") {
        return (raw.to_string(), "change the value to the expected type".into());
    }
    (raw.to_string(), String::new())
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod hostile_yaml_tests {
    #![allow(clippy::unwrap_used)]

    const MODEL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:\n  ref: 'file:/m.gguf'\n  ctxMax: 4096\n";

    fn first_error(text: &str) -> String {
        super::parse_file("f.yaml", text.as_bytes()).unwrap_err()[0].to_string()
    }

    #[test]
    fn unknown_tags_are_refused_with_the_tag_named() {
        assert!(super::parse_file("f.yaml", MODEL.as_bytes()).is_ok());
        let tagged = MODEL.replace("name: m", "name: !!python/object:os.system m");
        let e = first_error(&tagged);
        assert!(e.contains("python/object"), "{e}");
        let local = MODEL.replace("ctxMax: 4096", "ctxMax: !custom 4096");
        assert!(first_error(&local).contains("custom"));
        let core = MODEL.replace("ctxMax: 4096", "ctxMax: !!int 4096");
        assert!(
            super::parse_file("f.yaml", core.as_bytes()).is_ok(),
            "core schema tags are fine"
        );
    }

    #[test]
    fn tab_indentation_is_refused_with_the_line() {
        let tabbed = MODEL.replace("  name: m", "\tname: m");
        let e = first_error(&tabbed);
        assert!(e.contains("f.yaml:4") && e.contains("tab"), "{e}");
        let mixed = MODEL.replace("  name: m", "  \tname: m");
        assert!(first_error(&mixed).contains("tab"), "spaces then a tab");
        let in_value = MODEL.replace("name: m", "name: m\t");
        assert!(
            super::parse_file("f.yaml", in_value.as_bytes()).is_ok(),
            "a tab after content is not indentation"
        );
    }
}
