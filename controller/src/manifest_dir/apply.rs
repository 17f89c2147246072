//! Applying objects to the manifests directory: validate them against what the directory
//! already holds, then write each to `<kind>-<name>.yaml` there, atomically. `orchctl apply`
//! and `diff` on this machine and the daemon's write API share this one [`plan`].
//!
//! All checks happen before the first write: cross-object errors that the change would
//! introduce (a Pool naming a missing Engine, a duplicate), and conflicts with files a writer
//! must not overwrite (a hand-written file declaring the same object, or a file that holds
//! more than the object).

use std::path::{Path, PathBuf};

use llorch_manifests::parse::Located;
use llorch_manifests::render::manifest_yaml;
use llorch_manifests::{AnyObject, ManifestError, ObjectRef, validate};

use super::{DirError, ManifestDir, write_atomic};

/// One object to apply, with relative references already resolved.
#[derive(Clone, Debug)]
pub struct InputObject {
    /// The object and where in the input it was.
    pub located: Located,
    /// Which input it came from, for the written file's header.
    pub source: String,
    /// The schema its input's `yaml-language-server` modeline named, if any (a relative path
    /// already resolved against the input's folder, where that is known).
    pub schema: Option<String>,
}

/// What applying one object does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No such object yet.
    Created,
    /// It exists and differs.
    Configured,
    /// It exists and is equal.
    Unchanged,
}

impl Action {
    /// As kubectl prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One object of the plan.
#[derive(Clone, Debug)]
pub struct Step {
    /// The object as it will be written (references resolved).
    pub object: AnyObject,
    /// The input it came from.
    pub source: String,
    /// The schema its input's modeline named, if any.
    pub schema: Option<String>,
    /// Where it will be written.
    pub target: PathBuf,
    /// The object as declared now (references resolved), and its file.
    pub existing: Option<(PathBuf, AnyObject)>,
    /// What applying it does.
    pub action: Action,
}

/// What applying would do, and what stops it.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// One step per input object: Engines, then Models, then Pools, each in input order.
    pub steps: Vec<Step>,
    /// Errors the change would introduce (nothing may be written while there are any).
    pub errors: Vec<ManifestError>,
    /// Files a writer must not overwrite (nothing may be written while there are any).
    pub conflicts: Vec<String>,
    /// Worth saying, but not blocking.
    pub warnings: Vec<String>,
}

impl Plan {
    /// True when nothing blocks writing.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.conflicts.is_empty()
    }
}

/// Rewrites a Model's relative `file:` reference to an absolute one under `base_dir`.
pub fn absolutize_model_ref(object: &mut AnyObject, base_dir: &Path) {
    let AnyObject::Model(model) = object else { return };
    let Some(path) = model.spec.reference.strip_prefix("file:") else {
        return;
    };
    if path.is_empty() || Path::new(path).is_absolute() {
        return;
    }
    let absolute = normalize(&base_dir.join(path));
    model.spec.reference = format!("file:{}", absolute.display());
}

/// Removes `.` and resolves `..` lexically (without touching the file system, so the target
/// need not exist yet).
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The object with its relative references resolved against its own file's folder, for
/// comparing what is declared with what the input says.
fn resolved(located: &Located) -> AnyObject {
    let mut object = located.object.clone();
    if let Some(dir) = PathBuf::from(&located.file).parent() {
        absolutize_model_ref(&mut object, dir);
    }
    object
}

/// Works out what applying `new` to `dir` would do; `writer` names who writes (in conflict
/// messages: "orchctl apply", "the write API").
pub fn plan(dir: &ManifestDir, new: &[InputObject], writer: &str) -> Plan {
    let mut plan = Plan::default();
    let new_refs: Vec<ObjectRef> = new.iter().map(|n| n.located.object.object_ref()).collect();

    for n in new {
        let r = n.located.object.object_ref();
        let target = dir.target_path(&r);
        let found = dir.find(&r);
        for (file, loc) in &found {
            if file.path != target {
                plan.conflicts.push(format!(
                    "{}: {r} is already declared in {} (document {}), which {writer} did not \
                     write; edit that file instead, or remove the object from it first",
                    n.located.file,
                    file.path.display(),
                    loc.document
                ));
            }
        }
        if let Some(file) = dir.file(&target) {
            match &file.parsed {
                Err(_) => plan.conflicts.push(format!(
                    "{} exists but does not parse; fix or remove it before applying {r}",
                    target.display()
                )),
                Ok(objects) if objects.iter().any(|l| l.object.object_ref() != r) => {
                    plan.conflicts.push(format!(
                        "{} holds more than {r}; {writer} only writes files that hold one \
                         object, so edit that file by hand",
                        target.display()
                    ));
                }
                Ok(_) => {}
            }
        }
        let existing = found
            .iter()
            .find(|(file, _)| file.path == target)
            .or(found.first())
            .map(|(file, loc)| (file.path.clone(), resolved(loc)));
        let action = match &existing {
            None => Action::Created,
            Some((_, old)) if *old == n.located.object => Action::Unchanged,
            Some(_) => Action::Configured,
        };
        plan.steps.push(Step {
            object: n.located.object.clone(),
            source: n.source.clone(),
            schema: n.schema.clone(),
            target,
            existing,
            action,
        });
    }

    // Engines and Models before the Pools that name them: a daemon reading the directory
    // mid-apply never sees a reference to something not yet written.
    plan.steps.sort_by_key(|s| s.object.kind());

    let before: Vec<Located> = dir.objects().cloned().collect();
    let mut after: Vec<Located> = before
        .iter()
        .filter(|l| !new_refs.contains(&l.object.object_ref()))
        .cloned()
        .collect();
    after.extend(new.iter().map(|n| n.located.clone()));
    let known = validate::check_set(&before);
    let mut kept = 0;
    for error in validate::check_set(&after) {
        if known.contains(&error) {
            kept += 1;
        } else {
            plan.errors.push(error);
        }
    }
    if kept > 0 {
        plan.warnings.push(format!(
            "{kept} problem(s) already in {} remain (not caused by this change); see `orchctl get pools`",
            dir.dir.display()
        ));
    }
    for file in dir.broken() {
        let replaced = plan.steps.iter().any(|s| s.target == file.path);
        if !replaced {
            plan.warnings.push(format!(
                "{} does not parse, so it was left out of validation",
                file.path.display()
            ));
        }
    }
    plan
}

/// Writes every created or configured object, each file headed by a comment saying `writer`
/// wrote it from its source, and the `yaml-language-server` modeline that keeps editors
/// checking it: the input's own, when it names this kind's schema where any editor finds it,
/// else the published schema (`schema::modeline_for`). Call only with a clean plan.
pub fn execute(dir: &ManifestDir, plan: &Plan, writer: &str) -> Result<(), DirError> {
    if plan.steps.iter().any(|s| s.action != Action::Unchanged) {
        std::fs::create_dir_all(&dir.dir).map_err(|source| DirError::Create {
            dir: dir.dir.clone(),
            source,
        })?;
    }
    for step in plan.steps.iter().filter(|s| s.action != Action::Unchanged) {
        // One comment line, whatever the names hold.
        let from = step.source.replace(|c: char| c.is_control(), " ");
        let writer = writer.replace(|c: char| c.is_control(), " ");
        let modeline = llorch_manifests::schema::modeline_for(step.object.kind(), step.schema.as_deref());
        let contents = format!(
            "# Written by {writer} from {from}; edit freely.\n{modeline}\n{}",
            manifest_yaml(&step.object).map_err(DirError::Render)?
        );
        write_atomic(&step.target, &contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const MODEL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: tiny\nspec:\n  ref: file:/m/tiny.gguf\n  ctxMax: 4096\n";

    fn input(text: &str, source: &str) -> Vec<InputObject> {
        llorch_manifests::parse_file(source, text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|located| InputObject {
                located,
                source: source.to_string(),
                schema: llorch_manifests::schema::modeline_target(text).map(String::from),
            })
            .collect()
    }

    #[test]
    fn a_new_object_is_created_then_unchanged_and_the_header_is_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ManifestDir::read(tmp.path()).unwrap();
        let new = input(MODEL, "m.yaml\n# injected: true");
        let plan = plan(&dir, &new, "a test");
        assert!(plan.is_clean(), "{plan:?}");
        assert_eq!(plan.steps[0].action, Action::Created);
        execute(&dir, &plan, "a test").unwrap();
        let written = std::fs::read_to_string(tmp.path().join("model-tiny.yaml")).unwrap();
        assert!(written.starts_with("# Written by a test from m.yaml # injected: true; edit freely.\n"));
        let dir = ManifestDir::read(tmp.path()).unwrap();
        assert_eq!(super::plan(&dir, &new, "a test").steps[0].action, Action::Unchanged);
    }

    #[test]
    fn relative_refs_resolve_and_lexical_normalization_keeps_missing_targets() {
        let mut object = input(&MODEL.replace("/m/tiny.gguf", "a/../b/tiny.gguf"), "x")[0]
            .located
            .object
            .clone();
        absolutize_model_ref(&mut object, Path::new("/in"));
        let AnyObject::Model(m) = object else {
            panic!("not a model")
        };
        assert_eq!(m.spec.reference, "file:/in/b/tiny.gguf");
    }
}
