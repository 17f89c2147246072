//! The engine section of a plan: the Engine's provisioning plan for its mode and its policy
//! gate (`provision::plan::engine_plan`, the daemon's own), and the Engine as the daemon will
//! launch it once provisioned. It describes; it never provisions.

use std::fmt::Write as _;

use llorch_controller::provision::plan::{EnginePlan, RunAs, engine_plan};
use llorch_manifests::{Engine, Provisioning};

use super::PlanInput;

/// The provisioning plan, written out.
pub fn lines(out: &mut String, input: &PlanInput, engine: &Engine) -> EnginePlan {
    let plan = engine_plan(
        engine.name(),
        &engine.spec,
        &input.config.provisioning,
        &input.engine_cache,
        &input.os,
    );
    for line in plan.lines() {
        let _ = writeln!(out, "{line}");
    }
    plan
}

/// The Engine as the daemon launches it (`provision::launchable`): source and package Engines
/// run as binary Engines once provisioned, with the executable's path resolved.
pub fn launched(engine: &Engine, plan: &EnginePlan) -> Engine {
    let mut launched = engine.clone();
    if let (RunAs::Executable(exe), false) = (&plan.run, plan.mode == Provisioning::Binary) {
        launched.spec.provisioning = Provisioning::Binary;
        launched.spec.executable = Some(
            llorch_controller::runtime::process::resolve::which(exe)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| exe.clone()),
        );
        launched.spec.source = None;
        launched.spec.package = None;
    }
    launched
}
