//! `orchctl diff -f`: per input object, whether `apply` would create it, change it (with a
//! unified diff of the YAML) or leave it unchanged. Exit 0 when nothing would change, 1 when
//! something would, 2 on errors — the contract of `kubectl diff`.
//!
//! Both sides are compared as orchctl would write them (references resolved, defaults filled
//! in), so comments and formatting in a hand-written file are not reported as changes. With a
//! server named, the daemon's write API does a dry run and answers both sides (secrets shown
//! as `<redacted>` on both, so a changed secret shows as "changed" with no visible line).

use similar::TextDiff;

use crate::Io;
use crate::apply::{self, Action};
use crate::cli::DiffArgs;
use crate::context::{Context, WriteTarget};
use crate::input;
use crate::manifest_api;
use crate::output::manifest_yaml;
use llorch_controller::manifest_dir::ManifestDir;
use llorch_manifests::api::ApplyAction;

/// `orchctl diff`.
pub async fn run(ctx: &Context, args: &DiffArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir()?;
    let sources = input::read_sources(&args.files, &cwd, io.input)?;
    writeln!(io.err, "comparing with {}", ctx.write_place())?;
    match ctx.writes {
        WriteTarget::Directory => diff_sources(ctx, &sources, io),
        WriteTarget::Api => diff_through_api(ctx, &sources, io).await,
    }
}

/// A dry-run apply on the daemon: it answers both sides as YAML (secrets redacted).
async fn diff_through_api(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
    let (req, notes) = manifest_api::request(sources, true, ctx.relative_refs())?;
    for note in &notes {
        writeln!(io.err, "note: {note}")?;
    }
    let result = match ctx.client()?.apply_manifests(&req).await {
        Ok(result) => result,
        Err(e) if manifest_api::is_listed_refusal(&e) => {
            manifest_api::print_refusal(io.err, &e)?;
            return Ok(2);
        }
        Err(e) => return Err(manifest_api::explain(e, &ctx.manifests_dir)),
    };
    for warning in &result.warnings {
        writeln!(io.err, "warning: {warning}")?;
    }
    let mut changed = false;
    for o in &result.objects {
        let r = &o.object;
        match (&o.previous_yaml, o.action) {
            (_, ApplyAction::Unchanged) => writeln!(io.out, "{r} unchanged")?,
            (None, _) => {
                changed = true;
                writeln!(io.out, "{r} new")?;
                write!(io.out, "{}", unified("", &o.yaml, "/dev/null", &o.file))?;
            }
            (Some(old), _) => {
                changed = true;
                writeln!(io.out, "{r} changed")?;
                write!(io.out, "{}", unified(old, &o.yaml, &o.file, "(input)"))?;
            }
        }
    }
    Ok(u8::from(changed))
}

/// `diff` of already-read sources against the manifests directory on this machine.
pub fn diff_sources(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
    let objects = match input::parse_sources(sources) {
        Ok(objects) => objects,
        Err(errors) => {
            apply::print_errors(io.err, &errors)?;
            return Ok(2);
        }
    };
    let dir = ManifestDir::read(&ctx.manifests_dir)?;
    let plan = apply::plan(&dir, &objects);
    if !plan.errors.is_empty() {
        apply::print_errors(io.err, &plan.errors)?;
        return Ok(2);
    }
    for conflict in &plan.conflicts {
        writeln!(io.err, "warning: apply would refuse: {conflict}")?;
    }
    let mut changed = false;
    for step in &plan.steps {
        let r = step.object.object_ref();
        let new = manifest_yaml(&step.object)?;
        match (&step.existing, step.action) {
            (_, Action::Unchanged) => writeln!(io.out, "{r} unchanged")?,
            (None, _) => {
                changed = true;
                writeln!(io.out, "{r} new")?;
                let target = step.target.display().to_string();
                write!(io.out, "{}", unified("", &new, "/dev/null", &target))?;
            }
            (Some((file, old)), _) => {
                changed = true;
                writeln!(io.out, "{r} changed")?;
                let old = manifest_yaml(old)?;
                write!(
                    io.out,
                    "{}",
                    unified(&old, &new, &file.display().to_string(), &step.source)
                )?;
            }
        }
    }
    Ok(u8::from(changed))
}

/// A unified diff of two texts with `--- a` / `+++ b` headers.
pub fn unified(old: &str, new: &str, a: &str, b: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(a, b)
        .to_string()
}
