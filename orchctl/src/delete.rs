//! `orchctl delete`: remove objects from the manifests directory. A file that holds only the
//! object is deleted; a file that also holds other objects is left alone and named, because
//! rewriting it would lose the user's comments and layout.
//!
//! Deleting an object that others refer to is allowed (the daemon reports the dangling
//! reference on the referring object), but orchctl warns about it.

use std::path::PathBuf;

use anyhow::Context as _;
use llorch_manifests::parse::Located;
use llorch_manifests::{Kind, ObjectRef, validate};

use crate::Io;
use crate::cli::DeleteArgs;
use crate::context::Context;
use crate::input;
use crate::manifest_dir::ManifestDir;

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its file was removed.
    Deleted(PathBuf),
    /// Not declared anywhere.
    NotFound,
    /// Declared in a file that holds other objects too.
    SharedFile {
        /// The file to edit.
        file: PathBuf,
        /// The other objects in it.
        others: Vec<ObjectRef>,
    },
}

/// Parses `kind/name`, or a kind and a separate name.
pub fn parse_object_ref(target: &str, name: Option<&str>) -> anyhow::Result<ObjectRef> {
    let (kind, name) = match (target.split_once('/'), name) {
        (Some((kind, name)), None) => (kind, name),
        (None, Some(name)) => (target, name),
        (Some(_), Some(extra)) => {
            anyhow::bail!("`{target}` already names the object; drop the extra `{extra}`")
        }
        (None, None) => anyhow::bail!("`{target}` needs a name: write `pool/chat` or `pool chat`"),
    };
    let kind = Kind::parse_loose(kind)
        .with_context(|| format!("`{kind}` is not a kind; use pool, model or engine (e.g. `pool/chat`)"))?;
    if name.is_empty() {
        anyhow::bail!("`{target}` has no name after the `/`");
    }
    Ok(ObjectRef::new(kind, name))
}

/// Decides, without touching anything, what deleting `object` from `dir` does.
pub fn outcome(dir: &ManifestDir, object: &ObjectRef) -> Outcome {
    let found = dir.find(object);
    let Some((file, _)) = found.first() else {
        return Outcome::NotFound;
    };
    let others: Vec<ObjectRef> = file
        .objects()
        .iter()
        .map(|l| l.object.object_ref())
        .filter(|r| r != object)
        .collect();
    if others.is_empty() {
        Outcome::Deleted(file.path.clone())
    } else {
        Outcome::SharedFile {
            file: file.path.clone(),
            others,
        }
    }
}

/// Deletes `objects` from the manifests directory, printing one line per object. Returns the
/// exit code.
pub fn delete(ctx: &Context, objects: &[ObjectRef], ignore_not_found: bool, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let dir = ManifestDir::read(&ctx.manifests_dir)?;
    let mut failed = false;
    let mut removed: Vec<ObjectRef> = Vec::new();
    // Pools before the Engines and Models they name, so no dangling reference is ever seen.
    let mut objects = objects.to_vec();
    objects.sort_by_key(|o| std::cmp::Reverse(o.kind));
    for object in &objects {
        match outcome(&dir, object) {
            Outcome::Deleted(path) => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
                }
                removed.push(object.clone());
                writeln!(io.out, "{object} deleted")?;
            }
            Outcome::NotFound if ignore_not_found => {}
            Outcome::NotFound => {
                failed = true;
                let mut message = format!("{object} not found in {}", dir.dir.display());
                let broken = dir.broken().count();
                if broken > 0 {
                    message.push_str(&format!(" ({broken} file(s) there do not parse and may declare it)"));
                }
                writeln!(io.err, "error: {message}")?;
            }
            Outcome::SharedFile { file, others } => {
                failed = true;
                let others: Vec<String> = others.iter().map(ToString::to_string).collect();
                writeln!(
                    io.err,
                    "error: {object} is declared in {} together with {}; edit that file to remove it",
                    file.display(),
                    others.join(", ")
                )?;
            }
        }
    }
    for warning in dangling_references(&dir, &removed) {
        writeln!(io.err, "warning: {warning}")?;
    }
    Ok(u8::from(failed))
}

/// References broken by removing `removed`.
fn dangling_references(dir: &ManifestDir, removed: &[ObjectRef]) -> Vec<String> {
    if removed.is_empty() {
        return Vec::new();
    }
    let before: Vec<Located> = dir.objects().cloned().collect();
    let after: Vec<Located> = before
        .iter()
        .filter(|l| !removed.contains(&l.object.object_ref()))
        .cloned()
        .collect();
    let known = validate::check_set(&before);
    validate::check_set(&after)
        .into_iter()
        .filter(|e| !known.contains(e))
        .map(|e| e.to_string())
        .collect()
}

/// `orchctl delete`.
pub fn run(ctx: &Context, args: &DeleteArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let objects = if args.files.is_empty() {
        let Some(target) = &args.target else {
            anyhow::bail!("name what to delete: `orchctl delete pool/chat` or `orchctl delete -f FILE`");
        };
        vec![parse_object_ref(target, args.name.as_deref())?]
    } else {
        let cwd = std::env::current_dir()?;
        let sources = input::read_sources(&args.files, &cwd, io.input)?;
        match input::parse_sources(&sources) {
            Ok(objects) => objects.iter().map(|o| o.located.object.object_ref()).collect(),
            Err(errors) => {
                crate::apply::print_errors(io.err, &errors)?;
                writeln!(io.err, "nothing was deleted")?;
                return Ok(1);
            }
        }
    };
    delete(ctx, &objects, args.ignore_not_found, io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_parse_from_slash_or_two_words() {
        assert_eq!(
            parse_object_ref("pool/chat", None).unwrap(),
            ObjectRef::new(Kind::Pool, "chat")
        );
        assert_eq!(
            parse_object_ref("models", Some("tiny")).unwrap(),
            ObjectRef::new(Kind::Model, "tiny")
        );
        assert!(
            parse_object_ref("widget/x", None)
                .unwrap_err()
                .to_string()
                .contains("not a kind")
        );
        assert!(
            parse_object_ref("pool", None)
                .unwrap_err()
                .to_string()
                .contains("needs a name")
        );
        assert!(parse_object_ref("pool/", None).is_err());
    }
}
