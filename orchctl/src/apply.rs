//! `orchctl apply -f`: validate the input against what the manifests directory already holds,
//! then write each object to `<kind>-<name>.yaml` there, atomically — the controller's
//! [`manifest_dir::apply`](llorch_controller::manifest_dir::apply), which the daemon's write
//! API runs too. Parse errors stop it first; the [`plan`] is shared with `diff`. With a server
//! named ([`WriteTarget::Api`]), the objects go to that daemon's write API instead, which runs
//! the same plan on its own directory after checking them against its config.

use std::io::Write;

use llorch_controller::manifest_dir::ManifestDir;
pub use llorch_controller::manifest_dir::apply::{Action, Plan, Step, execute};
use llorch_manifests::ManifestError;

use crate::Io;
use crate::cli::ApplyArgs;
use crate::context::{Context, WriteTarget};
use crate::input::{self, InputObject};
use crate::manifest_api;

/// Who the written files' header names.
pub const WRITER: &str = "orchctl apply";

/// Works out what applying `new` to `dir` would do.
pub fn plan(dir: &ManifestDir, new: &[InputObject]) -> Plan {
    llorch_controller::manifest_dir::apply::plan(dir, new, WRITER)
}

/// Prints parse or validation errors one per line.
pub fn print_errors(err: &mut dyn Write, errors: &[ManifestError]) -> anyhow::Result<()> {
    for e in errors {
        writeln!(err, "error: {e}")?;
    }
    Ok(())
}

/// `orchctl apply`.
pub async fn run(ctx: &Context, args: &ApplyArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir()?;
    let sources = input::read_sources(&args.files, &cwd, io.input)?;
    apply_sources(ctx, &sources, io).await
}

/// `apply` on already-read sources (what `run` does after reading `-f`).
pub async fn apply_sources(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
    writeln!(io.err, "applying to {}", ctx.write_place())?;
    match ctx.writes {
        WriteTarget::Directory => apply_to_directory(ctx, sources, io),
        WriteTarget::Api => apply_through_api(ctx, sources, io).await,
    }
}

fn apply_to_directory(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
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
    execute(&dir, &plan, WRITER)?;
    for step in &plan.steps {
        writeln!(io.out, "{} {}", step.object.object_ref(), step.action.as_str())?;
    }
    Ok(0)
}

/// The daemon parses, validates, checks against its config and writes; it answers what it did.
async fn apply_through_api(ctx: &Context, sources: &[input::Source], io: &mut Io<'_>) -> anyhow::Result<u8> {
    let (req, notes) = manifest_api::request(sources, false, ctx.relative_refs())?;
    for note in &notes {
        writeln!(io.err, "note: {note}")?;
    }
    match ctx.client()?.apply_manifests(&req).await {
        Ok(result) => {
            for warning in &result.warnings {
                writeln!(io.err, "warning: {warning}")?;
            }
            for o in &result.objects {
                writeln!(io.out, "{} {}", o.object, o.action.as_str())?;
            }
            Ok(0)
        }
        Err(e) if manifest_api::is_listed_refusal(&e) => {
            manifest_api::print_refusal(io.err, &e)?;
            writeln!(io.err, "nothing was applied")?;
            Ok(1)
        }
        Err(e) => Err(manifest_api::explain(e, &ctx.manifests_dir)),
    }
}
