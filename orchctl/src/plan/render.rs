//! The plan as text: the header, then the model, engine and replicas sections in that order,
//! then warnings ([`llorch_manifests::warnings`]) and what could not be known. Pure and
//! deterministic: the same [`PlanInput`] gives the same bytes (the container name's
//! start-time suffix is [`super::NAME_SUFFIX`]).

use std::fmt::Write as _;

use llorch_manifests::AnyObject;
use llorch_manifests::warnings::Warning;

use super::{PlanInput, engine, model, replicas};

/// The plan as text.
pub fn render(input: &PlanInput) -> String {
    let mut out = String::new();
    let mut unknown: Vec<String> = Vec::new();
    let AnyObject::Pool(pool) = &input.pool.object else {
        return out;
    };
    let _ = writeln!(
        out,
        "Plan for pool/{} (declared in {}, document {})",
        pool.name(),
        input.pool.file,
        input.pool.document + 1
    );
    match &input.daemon {
        Ok(url) => {
            let _ = writeln!(out, "daemon: {url} answered; GPUs and model status are its own");
        }
        Err(e) => {
            let _ = writeln!(out, "daemon: not reachable ({e})");
            unknown.push("the daemon's GPU inventory and model status (it did not answer)".into());
        }
    }

    let model_path = model::lines(&mut out, &mut unknown, input, pool);

    let _ = writeln!(out);
    let Some(engine) = &input.engine else {
        let _ = writeln!(
            out,
            "engine {}\n  MISSING: Engine `{}` is not declared",
            pool.spec.engine, pool.spec.engine
        );
        return finish(out, unknown);
    };
    let plan = engine::lines(&mut out, input, engine);

    replicas::lines(
        &mut out,
        &mut unknown,
        input,
        pool,
        engine,
        &plan,
        model_path.as_deref(),
    );
    warnings(&mut out, &llorch_manifests::warnings::for_pool(pool, engine));
    finish(out, unknown)
}

/// What will run, but probably not as meant (the rule `orchctl doctor` shows too).
fn warnings(out: &mut String, found: &[Warning]) {
    if found.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nwarnings:");
    for w in found {
        let _ = writeln!(out, "  - {w}\n    fix: {}", w.fix());
    }
}

fn finish(mut out: String, unknown: Vec<String>) -> String {
    if !unknown.is_empty() {
        let _ = writeln!(out, "\nnot known here:");
        for u in unknown {
            let _ = writeln!(out, "  - {u}");
        }
    }
    out
}
