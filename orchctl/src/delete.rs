//! `orchctl delete`: remove objects from the manifests directory — the controller's
//! [`manifest_dir::delete`](llorch_controller::manifest_dir::delete) on this machine, or the
//! daemon's `DELETE /v2/manifests/{kind}/{name}` when a server is named. A file that holds only
//! the object is deleted; a file that also holds other objects is left alone and named, because
//! rewriting it would lose the user's comments and layout.
//!
//! Deleting an object that others refer to is allowed (the daemon reports the dangling
//! reference on the referring object), but orchctl warns about it.

use anyhow::Context as _;
use llorch_controller::manifest_dir::ManifestDir;
use llorch_controller::manifest_dir::delete::{Outcome, dangling_references, outcome, remove, shared_file_message};
use llorch_manifests::task::ErrorCode;
use llorch_manifests::{Kind, ObjectRef};

use crate::Io;
use crate::cli::DeleteArgs;
use crate::client::RequestError;
use crate::context::{Context, WriteTarget};
use crate::{input, manifest_api};

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

/// Deletes `objects` from the manifests directory on this machine, printing one line per
/// object. Returns the exit code.
pub fn delete(ctx: &Context, objects: &[ObjectRef], ignore_not_found: bool, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let dir = ManifestDir::read(&ctx.manifests_dir)?;
    let mut failed = false;
    let mut removed: Vec<ObjectRef> = Vec::new();
    for object in &in_order(objects) {
        match outcome(&dir, object) {
            Outcome::Deleted(path) => {
                remove(&path)?;
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
                writeln!(io.err, "error: {}", shared_file_message(object, &file, &others))?;
            }
        }
    }
    for warning in dangling_references(&dir, &removed) {
        writeln!(io.err, "warning: {warning}")?;
    }
    Ok(u8::from(failed))
}

/// Pools before the Engines and Models they name, so no dangling reference is ever seen.
fn in_order(objects: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut objects = objects.to_vec();
    objects.sort_by_key(|o| std::cmp::Reverse(o.kind));
    objects
}

/// Deletes `objects` through the daemon's write API, one request each.
pub async fn delete_through_api(
    ctx: &Context,
    objects: &[ObjectRef],
    ignore_not_found: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    let mut failed = false;
    for object in &in_order(objects) {
        match client.delete_manifest(object).await {
            Ok(done) => {
                writeln!(io.out, "{object} deleted")?;
                for warning in &done.warnings {
                    writeln!(io.err, "warning: {warning}")?;
                }
            }
            Err(RequestError::Api { body, .. }) if body.code == ErrorCode::NotFound && ignore_not_found => {}
            Err(e @ RequestError::Api { .. }) if e.is_not_found() || manifest_api::is_listed_refusal(&e) => {
                failed = true;
                manifest_api::print_refusal(io.err, &e)?;
            }
            Err(e) => return Err(manifest_api::explain(e, &ctx.manifests_dir)),
        }
    }
    Ok(u8::from(failed))
}

/// `orchctl delete`.
pub async fn run(ctx: &Context, args: &DeleteArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
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
    writeln!(io.err, "deleting from {}", ctx.write_place())?;
    match ctx.writes {
        WriteTarget::Directory => delete(ctx, &objects, args.ignore_not_found, io),
        WriteTarget::Api => delete_through_api(ctx, &objects, args.ignore_not_found, io).await,
    }
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
