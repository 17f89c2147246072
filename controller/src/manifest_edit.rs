//! The API's one kind of write into a Pool's own manifest file: `reload --model` changes
//! `spec.model`, `scale` changes `spec.replicas` or `spec.scaling`'s bounds ([`PoolEdit`]),
//! in a file that holds nothing but that Pool. Each changed `key: value` is edited in place
//! (comments and layout kept, block or flow style); where a key is absent or ambiguous the
//! object is rewritten as JSON (valid YAML). The result is parsed back and must be exactly the
//! Pool with the change before it replaces the file atomically, so the manifest store never
//! sees half a file, an invalid one or an unintended change; on any failure nothing is
//! written. It must not decide whether a Model is usable or the Pool exists: the caller (the
//! API route) checks that on the snapshot.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use llorch_manifests::pool_size::{PoolSize, SizeChange, SizeError};
use llorch_manifests::{AnyObject, Pool, PoolSpec};

use crate::atomic_file::write_atomic;

mod in_place;

use in_place::{InPlace, edit_in_place};

/// One change to a Pool's spec that [`edit_pool`] writes into its manifest file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolEdit<'a> {
    /// `spec.model`, from the Model the caller saw to another (`reload --model`).
    Model {
        /// The Model the caller saw; it locates the line to edit.
        from: &'a str,
        /// The Model to serve from now on.
        to: &'a str,
    },
    /// The Pool's size (`scale`): checked against how the file sizes the Pool.
    Size(SizeChange),
}

impl PoolEdit<'_> {
    /// The change as a user would type it into the manifest.
    fn as_yaml(&self) -> String {
        match self {
            PoolEdit::Model { to, .. } => format!("`spec.model: {to}`"),
            PoolEdit::Size(SizeChange::Replicas(n)) => format!("`spec.replicas: {n}`"),
            PoolEdit::Size(SizeChange::Bounds { min, max }) => {
                let fields: Vec<String> = [("minReplicas", min), ("maxReplicas", max)]
                    .into_iter()
                    .filter_map(|(key, value)| value.map(|v| format!("`spec.scaling.{key}: {v}`")))
                    .collect();
                fields.join(" and ")
            }
        }
    }

    /// `spec` with this change made.
    fn apply(&self, pool: &str, spec: &PoolSpec) -> Result<PoolSpec, SizeError> {
        match self {
            PoolEdit::Model { to, .. } => Ok(PoolSpec {
                model: (*to).to_string(),
                ..spec.clone()
            }),
            PoolEdit::Size(change) => change.apply(pool, spec),
        }
    }
}

/// The Pool's spec in its file before an edit, and after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Edited {
    /// As the file declared it.
    pub before: PoolSpec,
    /// As the file declares it now (equal to `before` when the change changed nothing; the
    /// file was then not touched).
    pub after: PoolSpec,
}

/// Why a Pool's manifest file was not edited. Nothing was written in any case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The file cannot be edited automatically (it does not parse, or holds more than the
    /// Pool); the message says what to do by hand.
    #[error("{0}")]
    Refused(String),
    /// The change does not fit the Pool as its file declares it: a size of the other kind, or
    /// one outside the manifest limits.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// Reading, checking or writing the file failed.
    #[error("{0}")]
    Failed(String),
}

/// One read-edit-write at a time in this process: a reload and a scale of the same Pool must
/// not each write their change over the other's.
static EDITS: Mutex<()> = Mutex::new(());

/// Makes `edit` to Pool `pool` in `file`, which must hold only that Pool, and returns its spec
/// before and after. A change that changes nothing writes nothing.
pub fn edit_pool(file: &Path, pool: &str, edit: PoolEdit<'_>) -> Result<Edited, EditError> {
    let _one_at_a_time = EDITS.lock().unwrap_or_else(PoisonError::into_inner);
    let shown = file.display().to_string();
    let bytes = llorch_manifests::files::read_regular(file, llorch_manifests::MAX_MANIFEST_BYTES as u64)
        .map_err(|e| EditError::Failed(format!("cannot read {shown}: {e}")))?;
    let objects = llorch_manifests::parse_file(&shown, &bytes).map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        EditError::Refused(format!(
            "{shown} does not parse now ({first}); fix it, then set {} of pool `{pool}` there",
            edit.as_yaml()
        ))
    })?;
    let current = match objects.as_slice() {
        [one] => match &one.object {
            AnyObject::Pool(p) if p.name() == pool => Some(p.clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(current) = current else {
        return Err(EditError::Refused(format!(
            "{shown} holds {} document(s), not only pool `{pool}`; set {} of pool `{pool}` there yourself, or move \
             the pool into a file of its own (`orchctl apply` writes one file per object)",
            objects.len(),
            edit.as_yaml()
        )));
    };
    let after = edit.apply(pool, &current.spec)?;
    let edited = Edited {
        before: current.spec.clone(),
        after,
    };
    if edited.after == edited.before {
        return Ok(edited);
    }
    let wanted = Pool {
        spec: edited.after.clone(),
        ..current
    };
    let text = String::from_utf8_lossy(&bytes);
    let is_wanted = |candidate: &str| {
        matches!(llorch_manifests::parse_file(&shown, candidate.as_bytes()).as_deref(),
            Ok([one]) if matches!(&one.object, AnyObject::Pool(p) if *p == wanted))
    };
    let in_place = edit_in_place(&text, &in_place_edits(&edit, &edited)).filter(|t| is_wanted(t));
    let output = match in_place {
        Some(t) => t,
        None => {
            let rewritten = rewrite(&wanted);
            if !is_wanted(&rewritten) {
                return Err(EditError::Failed(format!(
                    "setting {} in {shown} did not give a valid Pool; nothing was written",
                    edit.as_yaml()
                )));
            }
            rewritten
        }
    };
    write_atomic(file, output.as_bytes()).map_err(|e| EditError::Failed(format!("cannot write {shown}: {e}")))?;
    Ok(edited)
}

/// Replaces `spec.model: <from>` by `<to>` in `file`, which must hold only Pool `pool`.
pub fn set_model(file: &Path, pool: &str, from: &str, to: &str) -> Result<(), EditError> {
    edit_pool(file, pool, PoolEdit::Model { from, to }).map(|_| ())
}

/// Makes `change` to the size of Pool `pool` in `file`, which must hold only that Pool, and
/// returns its size before and after.
pub fn set_size(file: &Path, pool: &str, change: SizeChange) -> Result<(PoolSize, PoolSize), EditError> {
    let edited = edit_pool(file, pool, PoolEdit::Size(change))?;
    Ok((PoolSize::of(&edited.before), PoolSize::of(&edited.after)))
}

/// The `key: value` changes that turn `edited.before` into `edited.after`.
fn in_place_edits(edit: &PoolEdit<'_>, edited: &Edited) -> Vec<InPlace> {
    let (before, after) = (&edited.before, &edited.after);
    let mut edits = Vec::new();
    if let PoolEdit::Model { from, to } = edit {
        edits.push(InPlace {
            key: "model",
            old: (*from).to_string(),
            new: (*to).to_string(),
        });
    }
    if let (Some(old), Some(new)) = (before.replicas, after.replicas)
        && old != new
    {
        edits.push(InPlace {
            key: "replicas",
            old: old.to_string(),
            new: new.to_string(),
        });
    }
    if let (Some(old), Some(new)) = (&before.scaling, &after.scaling) {
        for (key, a, b) in [
            ("minReplicas", old.min_replicas, new.min_replicas),
            ("maxReplicas", old.max_replicas, new.max_replicas),
        ] {
            if a != b {
                edits.push(InPlace {
                    key,
                    old: a.to_string(),
                    new: b.to_string(),
                });
            }
        }
    }
    edits
}

/// The Pool as JSON (valid YAML): layout and comments are lost.
fn rewrite(pool: &Pool) -> String {
    let json = AnyObject::Pool(pool.clone()).to_json();
    serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POOL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
                        spec:\n  engine: mock\n  model: tiny # small\n  replicas: 2\n";

    const BY_DEMAND: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: coder}\n\
                             spec:\n  engine: mock\n  model: tiny\n  \
                             scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 5m}  # sleeps when idle\n";

    /// A manifests directory holding `text` as `name`; the directory lives as long as the guard.
    fn file_with(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    fn fixed(replicas: u32) -> PoolSize {
        PoolSize::Fixed { replicas }
    }

    fn bounds(min_replicas: u32, max_replicas: u32) -> PoolSize {
        PoolSize::ByDemand {
            min_replicas,
            max_replicas,
        }
    }

    #[test]
    fn a_file_holding_only_the_pool_is_edited_atomically_and_stays_valid() {
        let (dir, file) = file_with("pool-chat.yaml", POOL);
        assert_eq!(set_model(&file, "chat", "tiny", "tiny2"), Ok(()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("  model: tiny2 # small\n"), "{text}");
        let hidden: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(hidden.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_file_with_other_documents_is_refused_and_left_alone() {
        let text = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: 'i:1', version: '1'}}\n---\n{POOL}"
        );
        let (_dir, file) = file_with("stack.yaml", &text);
        let Err(EditError::Refused(message)) = set_model(&file, "chat", "tiny", "tiny2") else {
            panic!("expected a refusal")
        };
        assert!(
            message.contains("stack.yaml") && message.contains("spec.model: tiny2"),
            "{message}"
        );
        let Err(EditError::Refused(message)) = set_size(&file, "chat", SizeChange::Replicas(3)) else {
            panic!("expected a refusal")
        };
        assert!(
            message.contains("stack.yaml holds 2 document(s)") && message.contains("`spec.replicas: 3`"),
            "{message}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused_and_a_missing_one_fails() {
        let (dir, file) = file_with("pool-chat.yaml", "kind: [\n");
        let Err(EditError::Refused(message)) = set_model(&file, "chat", "tiny", "tiny2") else {
            panic!("expected a refusal")
        };
        assert!(message.contains("does not parse now"), "{message}");
        let missing = dir.path().join("gone.yaml");
        let Err(EditError::Failed(message)) = set_model(&missing, "chat", "tiny", "tiny2") else {
            panic!("expected a failure")
        };
        assert!(message.starts_with("cannot read "), "{message}");
    }

    #[test]
    fn a_flow_style_spec_is_edited_in_place() {
        let text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
                    spec: {engine: mock, model: tiny, replicas: 2}\n";
        let (_dir, file) = file_with("pool-chat.yaml", text);
        assert_eq!(set_model(&file, "chat", "tiny", "tiny2"), Ok(()));
        assert_eq!(
            set_size(&file, "chat", SizeChange::Replicas(3)),
            Ok((fixed(2), fixed(3)))
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text.replace("model: tiny,", "model: tiny2,")
                .replace("replicas: 2", "replicas: 3")
        );
    }

    #[test]
    fn an_ambiguous_model_line_is_rewritten_as_json_with_the_new_model() {
        // The label says the same as spec.model: which one to edit is not clear from the text.
        let text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata:\n  name: chat\n  labels:\n    \
                    model: tiny\nspec:\n  engine: mock\n  model: tiny\n  replicas: 2\n";
        let (_dir, file) = file_with("pool-chat.yaml", text);
        assert_eq!(set_model(&file, "chat", "tiny", "tiny2"), Ok(()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"model\": \"tiny2\""), "{text}");
        assert!(text.contains("\"model\": \"tiny\""), "the label is kept: {text}");
    }

    #[test]
    fn a_fixed_pools_replicas_are_edited_in_place_keeping_the_comment() {
        let (_dir, file) = file_with(
            "pool-chat.yaml",
            &POOL.replace("replicas: 2", "replicas: 2   # two GPUs"),
        );
        assert_eq!(
            set_size(&file, "chat", SizeChange::Replicas(3)),
            Ok((fixed(2), fixed(3)))
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.ends_with("  model: tiny # small\n  replicas: 3   # two GPUs\n"),
            "{text}"
        );
    }

    #[test]
    fn flow_style_scaling_bounds_are_edited_in_place_without_touching_replicas_inside_them() {
        let (_dir, file) = file_with("pool-coder.yaml", BY_DEMAND);
        let both = SizeChange::Bounds {
            min: Some(1),
            max: Some(3),
        };
        assert_eq!(set_size(&file, "coder", both), Ok((bounds(0, 1), bounds(1, 3))));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            BY_DEMAND.replace("{minReplicas: 0, maxReplicas: 1,", "{minReplicas: 1, maxReplicas: 3,")
        );
        let max_only = SizeChange::Bounds {
            min: None,
            max: Some(2),
        };
        assert_eq!(set_size(&file, "coder", max_only), Ok((bounds(1, 3), bounds(1, 2))));
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .contains("scaling: {minReplicas: 1, maxReplicas: 2, idleTimeout: 5m}  # sleeps when idle\n")
        );
    }

    #[test]
    fn block_style_scaling_bounds_are_edited_in_place() {
        let text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: coder}\nspec:\n  engine: mock\n  \
                    model: tiny\n  scaling:\n    minReplicas: 0      # sleep when idle\n    maxReplicas: 1\n    \
                    idleTimeout: 5m\n";
        let (_dir, file) = file_with("pool-coder.yaml", text);
        let change = SizeChange::Bounds {
            min: Some(1),
            max: Some(4),
        };
        assert_eq!(set_size(&file, "coder", change), Ok((bounds(0, 1), bounds(1, 4))));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text.replace("minReplicas: 0 ", "minReplicas: 1 ")
                .replace("maxReplicas: 1", "maxReplicas: 4")
        );
    }

    #[test]
    fn an_absent_bound_is_added_by_rewriting_the_pool_as_json() {
        let text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: coder}\n\
                    spec: {engine: mock, model: tiny, scaling: {idleTimeout: 90s}}\n";
        let (_dir, file) = file_with("pool-coder.yaml", text);
        let change = SizeChange::Bounds {
            min: None,
            max: Some(2),
        };
        assert_eq!(set_size(&file, "coder", change), Ok((bounds(0, 1), bounds(0, 2))));
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.starts_with('{'), "{written}");
        let json: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            json["spec"]["scaling"],
            serde_json::json!({"minReplicas": 0, "maxReplicas": 2, "idleTimeout": "90s"})
        );
        // The JSON it wrote is edited in place the next time.
        assert_eq!(
            set_size(
                &file,
                "coder",
                SizeChange::Bounds {
                    min: None,
                    max: Some(3)
                }
            ),
            Ok((bounds(0, 2), bounds(0, 3)))
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            written.replace("\"maxReplicas\": 2", "\"maxReplicas\": 3")
        );
    }

    #[test]
    fn a_size_that_breaks_a_limit_or_does_not_fit_the_pool_is_refused_and_nothing_written() {
        let (_dir, file) = file_with("pool-coder.yaml", BY_DEMAND);
        let Err(EditError::Size(e)) = set_size(
            &file,
            "coder",
            SizeChange::Bounds {
                min: Some(2),
                max: None,
            },
        ) else {
            panic!("expected a refusal")
        };
        assert!(
            e.to_string()
                .contains("spec.scaling.minReplicas: 2 is above maxReplicas (1)"),
            "{e}"
        );
        let Err(EditError::Size(e)) = set_size(&file, "coder", SizeChange::Replicas(2)) else {
            panic!("expected a refusal")
        };
        assert!(e.to_string().contains("is sized by demand"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), BY_DEMAND);

        let (_dir, file) = file_with("pool-chat.yaml", POOL);
        let Err(EditError::Size(e)) = set_size(&file, "chat", SizeChange::Replicas(17)) else {
            panic!("expected a refusal")
        };
        assert!(
            e.to_string().contains("spec.replicas: 17 is above the maximum of 16"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), POOL);
    }

    #[test]
    fn a_size_that_changes_nothing_leaves_the_file_alone() {
        let (_dir, file) = file_with("pool-chat.yaml", POOL);
        let before = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(
            set_size(&file, "chat", SizeChange::Replicas(2)),
            Ok((fixed(2), fixed(2)))
        );
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), before);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), POOL);
    }
}
