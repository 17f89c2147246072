//! A Pool's own checks: its size (`replicas` or `scaling`, the limits a manifest and
//! `orchctl scale` share), how each replica is laid out on GPUs and how it serves (queue,
//! restarts, sessions). Checks against other objects (the Engine and Model a Pool names) are
//! [`check_set`](super::check_set)'s.

use super::{Problem, is_valid_name, problem};
use crate::PoolSpec;

/// Most replicas one Pool may ask for.
pub const MAX_REPLICAS: u32 = 16;

/// The shortest and longest `scaling.idleTimeout`.
pub const IDLE_TIMEOUT_BOUNDS: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(24 * 3600),
);

/// The size of a Pool on its own: `replicas` or `scaling`, exactly one, within bounds. The
/// limits a manifest and `orchctl scale` share.
pub fn check_pool_size(spec: &PoolSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    check_replicas(spec, &mut out);
    out
}

/// `replicas` or `scaling`, exactly one, within bounds.
fn check_replicas(spec: &PoolSpec, out: &mut Vec<Problem>) {
    match (spec.replicas, &spec.scaling) {
        (Some(_), Some(_)) => out.push(problem(
            "spec.replicas",
            "is set together with `spec.scaling`",
            "keep `replicas` for a fixed count, or `scaling` for replicas by demand, not both",
        )),
        (None, None) => out.push(problem(
            "spec.replicas",
            "is missing",
            "set `replicas: N` for a fixed count, or `scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 5m}` \
             to run replicas only while there is demand",
        )),
        (Some(n), None) if n > MAX_REPLICAS => out.push(problem(
            "spec.replicas",
            format!("{n} is above the maximum of {MAX_REPLICAS}"),
            "use fewer replicas",
        )),
        (Some(_), None) => {}
        (None, Some(s)) => {
            if !(1..=MAX_REPLICAS).contains(&s.max_replicas) {
                out.push(problem(
                    "spec.scaling.maxReplicas",
                    format!("{} is outside 1–{MAX_REPLICAS}", s.max_replicas),
                    format!("use 1 to {MAX_REPLICAS}"),
                ));
            }
            if s.min_replicas > s.max_replicas {
                out.push(problem(
                    "spec.scaling.minReplicas",
                    format!("{} is above maxReplicas ({})", s.min_replicas, s.max_replicas),
                    "use a minimum no larger than the maximum",
                ));
            }
            let (low, high) = IDLE_TIMEOUT_BOUNDS;
            if !(low..=high).contains(&s.idle_timeout.get()) {
                out.push(problem(
                    "spec.scaling.idleTimeout",
                    format!("{} is outside 1s–24h", s.idle_timeout),
                    "use e.g. 5m",
                ));
            }
        }
    }
}

/// Checks a Pool's spec on its own (its references are checked against the set by
/// [`check_set`](super::check_set)).
pub(super) fn check_pool(spec: &PoolSpec, out: &mut Vec<Problem>) {
    for (field, value) in [("spec.engine", &spec.engine), ("spec.model", &spec.model)] {
        if !is_valid_name(value) {
            out.push(problem(
                field,
                format!("`{value}` is not a valid name"),
                "name an existing object",
            ));
        }
    }
    check_replicas(spec, out);
    check_layout(spec, out);
    check_serving(spec, out);
}

/// How each replica is laid out: GPUs per replica, slots, tensor split, context size and the
/// GPUs it may use.
fn check_layout(spec: &PoolSpec, out: &mut Vec<Problem>) {
    if !(1..=8).contains(&spec.gpus_per_replica) {
        out.push(problem(
            "spec.gpusPerReplica",
            format!("{} is outside 1–8", spec.gpus_per_replica),
            "use 1 unless the model needs more",
        ));
    }
    if !(1..=256).contains(&spec.slots_per_replica) {
        out.push(problem(
            "spec.slotsPerReplica",
            format!("{} is outside 1–256", spec.slots_per_replica),
            "use 1–8 on a workstation",
        ));
    }
    if let Some(split) = &spec.tensor_split {
        if spec.gpus_per_replica < 2 {
            out.push(problem(
                "spec.tensorSplit",
                "needs `gpusPerReplica` of 2 or more",
                "remove it, or give each replica several GPUs",
            ));
        } else if split.len() != spec.gpus_per_replica as usize {
            out.push(problem(
                "spec.tensorSplit",
                format!(
                    "has {} weights for {} GPUs per replica",
                    split.len(),
                    spec.gpus_per_replica
                ),
                "give one weight per GPU, e.g. `[2, 1]`",
            ));
        }
        if split.contains(&0) || split.iter().any(|w| *w > 1000) {
            out.push(problem("spec.tensorSplit", "weights must be 1–1000", "e.g. `[2, 1]`"));
        }
    }
    if spec.ctx_size == Some(0) {
        out.push(problem(
            "spec.ctxSize",
            "must be at least 1",
            "omit it to use the Model's ctxMax",
        ));
    }
    if let crate::GpuSelector::Devices(d) = &spec.gpus {
        if d.is_empty() {
            out.push(problem(
                "spec.gpus",
                "empty GPU list",
                "list device indices such as `[0]`, or use `all`",
            ));
        }
        let mut seen = d.clone();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            out.push(problem(
                "spec.gpus",
                "a GPU index is listed twice",
                "list each device once",
            ));
        }
    }
}

/// How the Pool serves: its queue, restart backoff and circuit breaker, and sessions.
fn check_serving(spec: &PoolSpec, out: &mut Vec<Problem>) {
    if !(1..=100_000).contains(&spec.queue.capacity) {
        out.push(problem(
            "spec.queue.capacity",
            format!("{} is outside 1–100000", spec.queue.capacity),
            "64 is a good start",
        ));
    }
    let r = &spec.restart;
    if r.backoff_initial_ms < 10 {
        out.push(problem(
            "spec.restart.backoffInitialMs",
            format!("{} is below 10", r.backoff_initial_ms),
            "use at least 10",
        ));
    }
    if r.backoff_max_ms < r.backoff_initial_ms {
        out.push(problem(
            "spec.restart.backoffMaxMs",
            "is below backoffInitialMs",
            "make it at least backoffInitialMs",
        ));
    }
    let sessions = &spec.sessions;
    if !(1..=3600).contains(&sessions.ttl_seconds) {
        out.push(problem(
            "spec.sessions.ttlSeconds",
            format!("{} is outside 1–3600", sessions.ttl_seconds),
            "600 is the default",
        ));
    }
    if !(1..=1000).contains(&sessions.max_turns) {
        out.push(problem(
            "spec.sessions.maxTurns",
            format!("{} is outside 1–1000", sessions.max_turns),
            "8 is the default",
        ));
    }
    if sessions.token_budget == Some(0) {
        out.push(problem(
            "spec.sessions.tokenBudget",
            "must be more than 0",
            "omit it for no budget",
        ));
    }
    if r.circuit_breaker_failures == 0 {
        out.push(problem(
            "spec.restart.circuitBreakerFailures",
            "must be at least 1",
            "6 is the default",
        ));
    }
}

#[cfg(test)]
mod scaling_tests {
    #![allow(clippy::unwrap_used)]

    fn errors(spec: &str) -> String {
        let yaml = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p}}\nspec: {{engine: e, model: m, {spec}}}\n"
        );
        match crate::parse_file("p.yaml", yaml.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        }
    }

    #[test]
    fn a_pool_declares_replicas_or_scaling_within_bounds() {
        assert_eq!(errors("replicas: 2"), "");
        assert_eq!(
            errors("scaling: {minReplicas: 0, maxReplicas: 2, idleTimeout: 90s}"),
            ""
        );
        assert_eq!(errors("scaling: {}"), "", "defaults: 0 to 1, idle 5m");
        assert!(errors("replicas: 1, scaling: {}").contains("not both"));
        assert!(errors("gpus: all").contains("field `spec.replicas`: is missing"));
        assert!(errors("scaling: {minReplicas: 3, maxReplicas: 2}").contains("spec.scaling.minReplicas"));
        assert!(errors("scaling: {maxReplicas: 0}").contains("spec.scaling.maxReplicas"));
        assert!(errors("scaling: {idleTimeout: 0s}").contains("outside 1s–24h"));
        let bad = errors("scaling: {idleTimeout: soon}");
        assert!(bad.contains("`soon` is not a duration"), "{bad}");
    }
}
