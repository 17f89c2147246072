//! The daemon's side of the write API (`POST /v2/manifests`, `DELETE /v2/manifests/{kind}/{name}`):
//! manifests from remote clients go through the same parser, validator and [`apply::plan`] as
//! `orchctl apply` on this machine, then the config's trust checks ([`TrustRoot`]), and only
//! then are written — atomically, one file per object, one write at a time. The directory
//! stays the daemon's to own: the manifest store picks the files up like any edit.
//!
//! Blocking file I/O throughout: the API calls it on a blocking thread.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use llorch_manifests::api::{
    AppliedObject, ApplyAction, ApplyResult, DeleteResult, MAX_APPLY_FILES, ManifestText, WriteError,
};
use llorch_manifests::render::redacted_yaml;
use llorch_manifests::{MAX_MANIFEST_BYTES, ObjectRef, hash, parse_file};

use super::ManifestDir;
use super::admit::TrustRoot;
use super::apply::{self, Action, InputObject};
use super::delete::{self, Outcome};

/// The longest file name a request may give (it goes into error messages and a comment line).
pub const MAX_SOURCE_NAME_BYTES: usize = 256;

/// Applies and deletes manifests for the API.
#[derive(Debug)]
pub struct ManifestWriter {
    dir: PathBuf,
    trust: TrustRoot,
    /// One write at a time: two clients' plans never interleave.
    lock: Mutex<()>,
}

fn action(a: Action) -> ApplyAction {
    match a {
        Action::Created => ApplyAction::Created,
        Action::Configured => ApplyAction::Configured,
        Action::Unchanged => ApplyAction::Unchanged,
    }
}

impl ManifestWriter {
    /// A writer of `dir`, checking objects against `trust`.
    pub fn new(dir: impl Into<PathBuf>, trust: TrustRoot) -> Self {
        ManifestWriter {
            dir: dir.into(),
            trust,
            lock: Mutex::new(()),
        }
    }

    /// Checks `files` and, unless `dry_run`, writes their objects; `writer` names who asked
    /// (it heads each written file). Nothing is written unless everything passes.
    pub fn apply(&self, files: &[ManifestText], dry_run: bool, writer: &str) -> Result<ApplyResult, WriteError> {
        let inputs = parse_request(files)?;
        let refusals: Vec<String> = inputs
            .iter()
            .filter_map(|i| {
                self.trust
                    .refusal(&i.located.object)
                    .map(|why| format!("{}: {why}", i.located.file))
            })
            .collect();
        if !refusals.is_empty() {
            return Err(WriteError::Refused(refusals));
        }
        let _one_at_a_time = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = ManifestDir::read(&self.dir).map_err(|e| WriteError::Failed(e.to_string()))?;
        let plan = apply::plan(&dir, &inputs, "the write API");
        if !plan.errors.is_empty() {
            return Err(WriteError::Invalid(
                plan.errors.iter().map(ToString::to_string).collect(),
            ));
        }
        if !plan.conflicts.is_empty() {
            return Err(WriteError::Conflict(plan.conflicts));
        }
        let mut objects = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let yaml = redacted_yaml(&step.object).map_err(WriteError::Failed)?;
            let previous_yaml = match &step.existing {
                Some((_, old)) => Some(redacted_yaml(old).map_err(WriteError::Failed)?),
                None => None,
            };
            objects.push(AppliedObject {
                object: step.object.object_ref(),
                action: action(step.action),
                file: step.target.display().to_string(),
                generation: hash::short_hash(&step.object),
                yaml,
                previous_yaml,
            });
        }
        if !dry_run {
            apply::execute(&dir, &plan, &format!("llama-orchd's write API for {writer}"))
                .map_err(|e| WriteError::Failed(e.to_string()))?;
        }
        Ok(ApplyResult {
            dry_run,
            objects,
            warnings: plan.warnings,
            synced: false,
        })
    }

    /// Removes `object`'s file, when it holds nothing else.
    pub fn delete(&self, object: &ObjectRef) -> Result<DeleteResult, WriteError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = ManifestDir::read(&self.dir).map_err(|e| WriteError::Failed(e.to_string()))?;
        match delete::outcome(&dir, object) {
            Outcome::Deleted(path) => {
                delete::remove(&path).map_err(|e| WriteError::Failed(e.to_string()))?;
                Ok(DeleteResult {
                    object: object.clone(),
                    file: path.display().to_string(),
                    warnings: delete::dangling_references(&dir, std::slice::from_ref(object)),
                    synced: false,
                })
            }
            Outcome::NotFound => {
                let broken = dir.broken().count();
                let mut message = format!("{object} not found in {}", dir.dir.display());
                if broken > 0 {
                    message.push_str(&format!(" ({broken} file(s) there do not parse and may declare it)"));
                }
                Err(WriteError::NotFound(message))
            }
            Outcome::SharedFile { file, others } => Err(WriteError::Conflict(vec![delete::shared_file_message(
                object, &file, &others,
            )])),
        }
    }
}

/// Every object of the request, or every error (limits, parse and per-object validation).
fn parse_request(files: &[ManifestText]) -> Result<Vec<InputObject>, WriteError> {
    if files.is_empty() || files.len() > MAX_APPLY_FILES {
        return Err(WriteError::Invalid(vec![format!(
            "send 1 to {MAX_APPLY_FILES} files in `files` (got {})",
            files.len()
        )]));
    }
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let name = file.name.replace(|c: char| c.is_control(), " ");
        if name.trim().is_empty() || name.len() > MAX_SOURCE_NAME_BYTES {
            errors.push(format!(
                "files[{index}].name must be 1 to {MAX_SOURCE_NAME_BYTES} bytes (the client's file name)"
            ));
            continue;
        }
        if file.text.len() > MAX_MANIFEST_BYTES {
            errors.push(format!(
                "{name}: larger than {MAX_MANIFEST_BYTES} bytes; split it into several files"
            ));
            continue;
        }
        match parse_file(&name, file.text.as_bytes()) {
            Ok(located) => inputs.extend(located.into_iter().map(|located| InputObject {
                located,
                source: name.clone(),
                // A relative schema path means nothing on the daemon's side: the published one
                // is written instead (`schema::modeline_for`).
                schema: llorch_manifests::schema::modeline_target(&file.text).map(String::from),
            })),
            Err(errs) => errors.extend(errs.iter().map(ToString::to_string)),
        }
    }
    if !errors.is_empty() {
        return Err(WriteError::Invalid(errors));
    }
    if inputs.is_empty() {
        return Err(WriteError::Invalid(vec!["the files declare no object".into()]));
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::models::FileRoots;

    const ENGINE: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata:\n  name: e\nspec:\n  provisioning: container\n  version: x\n  image: img\n  api: llamacpp\n  port: 8080\n  args: [\"{model_path}\"]\n  env:\n    HF_TOKEN: hunter2\n";

    fn text(name: &str, text: &str) -> Vec<ManifestText> {
        vec![ManifestText {
            name: name.into(),
            text: text.into(),
        }]
    }

    #[test]
    fn dry_run_writes_nothing_apply_writes_once_and_answers_are_redacted() {
        let tmp = tempfile::tempdir().unwrap();
        let w = ManifestWriter::new(tmp.path().join("m"), TrustRoot::default());
        let dry = w.apply(&text("e.yaml", ENGINE), true, "token:ci").unwrap();
        assert_eq!(dry.objects[0].action, ApplyAction::Created);
        assert!(!tmp.path().join("m").exists());
        let done = w.apply(&text("e.yaml", ENGINE), false, "token:ci").unwrap();
        assert!(!done.objects[0].yaml.contains("hunter2"), "{}", done.objects[0].yaml);
        let file = std::fs::read_to_string(tmp.path().join("m/engine-e.yaml")).unwrap();
        assert!(file.starts_with("# Written by llama-orchd's write API for token:ci from e.yaml"));
        assert!(
            file.contains(
                "\n# yaml-language-server: $schema=https://llama-orch.dev/schemas/v1alpha1/engine.schema.json\n"
            ),
            "a file without a modeline gets the published schema's: {file}"
        );
        assert!(file.contains("hunter2"), "the file keeps the value the engine needs");
        let again = w.apply(&text("e.yaml", ENGINE), false, "token:ci").unwrap();
        assert_eq!(again.objects[0].action, ApplyAction::Unchanged);
    }

    #[test]
    fn errors_are_listed_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let w = ManifestWriter::new(
            tmp.path(),
            TrustRoot {
                file_roots: FileRoots::under([tmp.path().join("models")]),
                ..TrustRoot::default()
            },
        );
        let pool = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata:\n  name: p\nspec:\n  engine: nope\n  model: nope\n  replicas: 1\n  gpus: all\n";
        let Err(WriteError::Invalid(errors)) = w.apply(&text("p.yaml", pool), false, "x") else {
            panic!("a dangling reference must be refused")
        };
        assert!(errors.iter().any(|e| e.contains("nope")), "{errors:?}");
        let Err(WriteError::Invalid(errors)) = w.apply(&text("bad.yaml", "kind: ["), false, "x") else {
            panic!("malformed YAML must be refused")
        };
        assert!(errors[0].starts_with("bad.yaml"), "{errors:?}");
        let model = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:\n  ref: file:/etc/shadow\n  ctxMax: 4096\n";
        let Err(WriteError::Refused(why)) = w.apply(&text("m.yaml", model), false, "x") else {
            panic!("a file outside fileRoots must be refused")
        };
        assert!(why[0].contains("fileRoots"), "{why:?}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn delete_removes_one_object_files_and_says_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let w = ManifestWriter::new(tmp.path(), TrustRoot::default());
        w.apply(&text("e.yaml", ENGINE), false, "x").unwrap();
        let r = ObjectRef::new(llorch_manifests::Kind::Engine, "e");
        assert!(w.delete(&r).unwrap().file.ends_with("engine-e.yaml"));
        assert!(matches!(w.delete(&r), Err(WriteError::NotFound(_))));
    }
}
