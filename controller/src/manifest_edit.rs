//! `reload --model`'s one write to the manifests directory: `spec.model` of a Pool whose file
//! holds nothing but that Pool. The model line is edited in place (comments and layout kept);
//! the result is parsed back and checked before it replaces the file atomically, so the
//! manifest store never sees half a file or an invalid one. It must not decide whether the
//! Model is usable or the Pool exists: the caller (the API route) checks that on the snapshot.

use std::path::Path;

use llorch_manifests::AnyObject;

use crate::atomic_file::write_atomic;

/// Why `spec.model` was not changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetModelError {
    /// The file cannot be edited automatically (it does not parse, or holds more than the
    /// Pool); the message says what to do by hand. Nothing was written.
    #[error("{0}")]
    Refused(String),
    /// Reading, checking or writing the file failed. Nothing was written.
    #[error("{0}")]
    Failed(String),
}

/// Replaces `spec.model: <from>` by `<to>` in `file`, which must hold only Pool `pool`. The
/// line is edited in place; when no single line says it, the file is rewritten from the parsed
/// manifest (as JSON, which is valid YAML).
pub fn set_model(file: &Path, pool: &str, from: &str, to: &str) -> Result<(), SetModelError> {
    let shown = file.display().to_string();
    let bytes = llorch_manifests::files::read_regular(file, llorch_manifests::MAX_MANIFEST_BYTES as u64)
        .map_err(|e| SetModelError::Failed(format!("cannot read {shown}: {e}")))?;
    let objects = llorch_manifests::parse_file(&shown, &bytes).map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        SetModelError::Refused(format!(
            "{shown} does not parse now ({first}); fix it, then set spec.model of pool `{pool}` there"
        ))
    })?;
    let only_this_pool =
        matches!(objects.as_slice(), [one] if matches!(&one.object, AnyObject::Pool(p) if p.name() == pool));
    if !only_this_pool {
        return Err(SetModelError::Refused(format!(
            "{shown} holds {} document(s), not only pool `{pool}`; edit `spec.model: {to}` of pool `{pool}` there \
             yourself, or move the pool into a file of its own (`orchctl apply` writes one file per object)",
            objects.len()
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let edited = edit_line(&text, from, to).unwrap_or_else(|| rewrite(&objects[0].object, to));
    let check = llorch_manifests::parse_file(&shown, edited.as_bytes());
    let ok = matches!(check.as_deref(), Ok([one]) if matches!(&one.object, AnyObject::Pool(p) if p.name() == pool && p.spec.model == to));
    if !ok {
        return Err(SetModelError::Failed(format!(
            "editing spec.model in {shown} did not give a valid Pool; nothing was written"
        )));
    }
    write_atomic(file, edited.as_bytes()).map_err(|e| SetModelError::Failed(format!("cannot write {shown}: {e}")))
}

/// The text with the single `model: <old>` line changed, if exactly one line says it.
fn edit_line(text: &str, old: &str, new: &str) -> Option<String> {
    let matches_line = |line: &str| {
        let body = line.split('#').next().unwrap_or_default().trim();
        let Some(value) = body.strip_prefix("model:") else {
            return false;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        value == old
    };
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| matches_line(l))
        .map(|(i, _)| i)
        .collect();
    let [at] = hits.as_slice() else { return None };
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    let line = &out[*at];
    let indent = &line[..line.len() - line.trim_start().len()];
    let comment = line.find('#').map(|i| format!(" {}", &line[i..])).unwrap_or_default();
    out[*at] = format!("{indent}model: {new}{comment}");
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

/// The object as JSON (valid YAML) with the new model: layout and comments are lost.
fn rewrite(object: &AnyObject, new: &str) -> String {
    let mut json = object.to_json();
    if let Some(spec) = json.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.insert("model".into(), serde_json::Value::String(new.to_string()));
    }
    serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POOL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
                        spec:\n  engine: mock\n  model: tiny # small\n  replicas: 2\n";

    #[test]
    fn a_file_holding_only_the_pool_is_edited_atomically_and_stays_valid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pool-chat.yaml");
        std::fs::write(&file, POOL).unwrap();
        assert_eq!(set_model(&file, "chat", "tiny", "tiny2"), Ok(()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("  model: tiny2 # small\n"), "{text}");
        let hidden: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(hidden.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_file_with_other_documents_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stack.yaml");
        let text = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: 'i:1', version: '1'}}\n---\n{POOL}"
        );
        std::fs::write(&file, &text).unwrap();
        let Err(SetModelError::Refused(message)) = set_model(&file, "chat", "tiny", "tiny2") else {
            panic!("expected a refusal")
        };
        assert!(
            message.contains("stack.yaml") && message.contains("spec.model: tiny2"),
            "{message}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused_and_a_missing_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pool-chat.yaml");
        std::fs::write(&file, "kind: [\n").unwrap();
        let Err(SetModelError::Refused(message)) = set_model(&file, "chat", "tiny", "tiny2") else {
            panic!("expected a refusal")
        };
        assert!(message.contains("does not parse now"), "{message}");
        let missing = dir.path().join("gone.yaml");
        let Err(SetModelError::Failed(message)) = set_model(&missing, "chat", "tiny", "tiny2") else {
            panic!("expected a failure")
        };
        assert!(message.starts_with("cannot read "), "{message}");
    }

    #[test]
    fn a_flow_style_pool_is_rewritten_as_json_with_the_new_model() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pool-chat.yaml");
        std::fs::write(
            &file,
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\nspec: {engine: mock, model: tiny, replicas: 2}\n",
        )
        .unwrap();
        assert_eq!(set_model(&file, "chat", "tiny", "tiny2"), Ok(()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"model\": \"tiny2\""), "{text}");
    }

    #[test]
    fn the_model_line_is_edited_in_place_keeping_comments_and_layout() {
        let text = "kind: Pool\nspec:\n  engine: mock\n  model: tiny   # the small one\n  replicas: 2\n";
        assert_eq!(
            edit_line(text, "tiny", "tiny2").as_deref(),
            Some("kind: Pool\nspec:\n  engine: mock\n  model: tiny2 # the small one\n  replicas: 2\n")
        );
        assert_eq!(
            edit_line("spec: {engine: mock, model: tiny}\n", "tiny", "x"),
            None,
            "flow style: rewritten instead"
        );
        assert_eq!(edit_line("model: tiny\nmodel: tiny\n", "tiny", "x"), None, "ambiguous");
    }
}
