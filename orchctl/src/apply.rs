//! `orchctl apply -f`: validate the input against what the manifests directory already holds,
//! then write each object to `<kind>-<name>.yaml` there, atomically.
//!
//! All checks happen before the first write: parse errors, cross-object errors that the change
//! would introduce (a Pool naming a missing Engine, a duplicate), and conflicts with files
//! orchctl must not overwrite (a hand-written file declaring the same object, or a file that
//! holds more than the object). The [`plan`] is shared with `diff`.

use std::io::Write;
use std::path::PathBuf;

use llorch_manifests::parse::Located;
use llorch_manifests::{AnyObject, ManifestError, ObjectRef, validate};

use crate::Io;
use crate::cli::ApplyArgs;
use crate::context::Context;
use crate::input::{self, InputObject};
use crate::manifest_dir::ManifestDir;
use crate::output::manifest_yaml;

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
    /// Where it will be written.
    pub target: PathBuf,
    /// The object as declared now (references resolved), and its file.
    pub existing: Option<(PathBuf, AnyObject)>,
    /// What applying it does.
    pub action: Action,
}

/// What `apply` would do, and what stops it.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// One step per input object: Engines, then Models, then Pools, each in input order.
    pub steps: Vec<Step>,
    /// Errors the change would introduce (nothing may be written while there are any).
    pub errors: Vec<ManifestError>,
    /// Files orchctl must not overwrite (nothing may be written while there are any).
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

/// The object with its relative references resolved against its own file's folder, for
/// comparing what is declared with what the input says.
fn resolved(located: &Located) -> AnyObject {
    let mut object = located.object.clone();
    if let Some(dir) = PathBuf::from(&located.file).parent() {
        input::absolutize_model_ref(&mut object, dir);
    }
    object
}

/// Works out what applying `new` to `dir` would do.
pub fn plan(dir: &ManifestDir, new: &[InputObject]) -> Plan {
    let mut plan = Plan::default();
    let new_refs: Vec<ObjectRef> = new.iter().map(|n| n.located.object.object_ref()).collect();

    for n in new {
        let r = n.located.object.object_ref();
        let target = dir.target_path(&r);
        let found = dir.find(&r);
        for (file, loc) in &found {
            if file.path != target {
                plan.conflicts.push(format!(
                    "{}: {r} is already declared in {} (document {}), which orchctl apply did not \
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
                        "{} holds more than {r}; orchctl apply only writes files that hold one \
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

/// Writes every created or configured object. Call only with a clean plan.
pub fn execute(dir: &ManifestDir, plan: &Plan) -> anyhow::Result<()> {
    if plan.steps.iter().any(|s| s.action != Action::Unchanged) {
        std::fs::create_dir_all(&dir.dir)
            .map_err(|e| anyhow::anyhow!("cannot create the manifests directory {}: {e}", dir.dir.display()))?;
    }
    for step in plan.steps.iter().filter(|s| s.action != Action::Unchanged) {
        let contents = format!(
            "# Written by orchctl apply from {}; edit freely.\n{}",
            step.source,
            manifest_yaml(&step.object)?
        );
        crate::manifest_dir::write_atomic(&step.target, &contents)?;
    }
    Ok(())
}

/// Prints parse or validation errors one per line.
pub fn print_errors(err: &mut dyn Write, errors: &[ManifestError]) -> anyhow::Result<()> {
    for e in errors {
        writeln!(err, "error: {e}")?;
    }
    Ok(())
}

/// `orchctl apply`.
pub fn run(ctx: &Context, args: &ApplyArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir()?;
    let sources = input::read_sources(&args.files, &cwd, io.input)?;
    apply_sources(ctx, &sources, io)
}

/// `apply` on already-read sources (what `run` does after reading `-f`).
pub fn apply_sources(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
    let objects = match input::parse_sources(sources) {
        Ok(objects) => objects,
        Err(errors) => {
            print_errors(io.err, &errors)?;
            writeln!(io.err, "nothing was applied")?;
            return Ok(1);
        }
    };
    let dir = ManifestDir::read(&ctx.manifests_dir)?;
    let plan = plan(&dir, &objects);
    for warning in &plan.warnings {
        writeln!(io.err, "warning: {warning}")?;
    }
    if !plan.is_clean() {
        print_errors(io.err, &plan.errors)?;
        for conflict in &plan.conflicts {
            writeln!(io.err, "error: {conflict}")?;
        }
        writeln!(io.err, "nothing was applied")?;
        return Ok(1);
    }
    execute(&dir, &plan)?;
    for step in &plan.steps {
        writeln!(io.out, "{} {}", step.object.object_ref(), step.action.as_str())?;
    }
    Ok(0)
}
