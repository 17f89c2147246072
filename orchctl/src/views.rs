//! The tables `get` and `events` print, built from wire types only (no I/O), with times shown
//! relative to a `now` the caller passes in, so the output is testable.
//!
//! Simulated GPUs are labelled as such in every table that shows a GPU.

use std::time::Duration;

use jiff::Timestamp;
use llorch_manifests::api::{GpuView, ObjectView};
use llorch_manifests::status::{ConditionType, Event, EventType, ObjectStatus, ReplicaStatus};
use llorch_manifests::{Kind, ManifestError};
use serde_json::Value;

pub mod wide;

use crate::duration;
use crate::table::Table;

/// `12s`, `3m` … since `ts` (RFC 3339), or `-` when it is missing or unreadable.
pub fn age(ts: &str, now: Timestamp) -> String {
    let Ok(then) = ts.parse::<Timestamp>() else {
        return "-".into();
    };
    let secs = now.as_second().saturating_sub(then.as_second()).max(0);
    duration::short(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Ready / Progressing / Degraded with a short reason, as one cell.
pub fn status_summary(status: &ObjectStatus) -> String {
    let holds = |t| status.condition(t).filter(|c| c.status);
    if let Some(c) = holds(ConditionType::Degraded) {
        return format!("Degraded ({})", c.reason);
    }
    if let Some(c) = holds(ConditionType::Progressing) {
        return format!("Progressing ({})", c.reason);
    }
    if let Some(c) = holds(ConditionType::Ready) {
        if c.reason == llorch_manifests::Reason::ScaledToZero {
            return "Asleep".into();
        }
        return "Ready".into();
    }
    if !status.manifest_errors.is_empty() {
        return "Invalid (see describe)".into();
    }
    match status.condition(ConditionType::Ready) {
        Some(c) => format!("NotReady ({})", c.reason),
        None => "Pending".into(),
    }
}

fn spec_field<'a>(view: &'a ObjectView, field: &str) -> Option<&'a Value> {
    view.manifest.as_ref()?.get("spec")?.get(field)
}

fn spec_text(view: &ObjectView, field: &str) -> String {
    match spec_field(view, field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    }
}

/// `NAME ENGINE MODEL READY SCALE IDLE RESTARTS STATUS UPDATED`: READY is ready/desired now;
/// for a Pool sized by `scaling`, SCALE is `min–max` and IDLE how long since its last task
/// (`asleep` while it sleeps); `-` for a fixed one.
pub fn pools(views: &[ObjectView], now: Timestamp) -> Table {
    let mut t = Table::new(&[
        "NAME", "ENGINE", "MODEL", "READY", "SCALE", "IDLE", "RESTARTS", "STATUS", "UPDATED",
    ]);
    for v in views.iter().filter(|v| v.object.kind == Kind::Pool) {
        let ready = v
            .status
            .replicas
            .map_or_else(|| "-".into(), |r| format!("{}/{}", r.ready, r.desired));
        let (scale, idle) = match &v.status.scaling {
            Some(s) => (
                format!("{}–{}", s.min_replicas, s.max_replicas),
                match (&s.asleep, &s.last_active) {
                    (true, _) => "asleep".into(),
                    (false, Some(t)) => age(t, now),
                    (false, None) => "-".into(),
                },
            ),
            None => ("-".into(), "-".into()),
        };
        t.row(vec![
            v.object.name.clone(),
            spec_text(v, "engine"),
            spec_text(v, "model"),
            ready,
            scale,
            idle,
            v.status.restarts.to_string(),
            status_summary(&v.status),
            age(&v.status.updated_at, now),
        ]);
    }
    t
}

/// `NAME REF CTX-MAX DIGEST STATUS UPDATED`.
pub fn models(views: &[ObjectView], now: Timestamp) -> Table {
    let mut t = Table::new(&["NAME", "REF", "CTX-MAX", "DIGEST", "STATUS", "UPDATED"]);
    for v in views.iter().filter(|v| v.object.kind == Kind::Model) {
        let digest = match spec_field(v, "digest") {
            Some(Value::String(d)) => short_digest(d),
            _ => "-".into(),
        };
        t.row(vec![
            v.object.name.clone(),
            spec_text(v, "ref"),
            spec_text(v, "ctxMax"),
            digest,
            status_summary(&v.status),
            age(&v.status.updated_at, now),
        ]);
    }
    t
}

fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

/// `NAME IMAGE VERSION API STATUS UPDATED`.
pub fn engines(views: &[ObjectView], now: Timestamp) -> Table {
    let mut t = Table::new(&["NAME", "IMAGE", "VERSION", "API", "STATUS", "UPDATED"]);
    for v in views.iter().filter(|v| v.object.kind == Kind::Engine) {
        let api = match spec_field(v, "api") {
            Some(Value::String(a)) => a.clone(),
            _ => "llamacpp".into(),
        };
        t.row(vec![
            v.object.name.clone(),
            spec_text(v, "image"),
            spec_text(v, "version"),
            api,
            status_summary(&v.status),
            age(&v.status.updated_at, now),
        ]);
    }
    t
}

/// GPU indices, marked `(simulated)` when they are.
pub fn gpu_list(gpus: &[u32], simulated: bool) -> String {
    if gpus.is_empty() {
        return "-".into();
    }
    let list: Vec<String> = gpus.iter().map(u32::to_string).collect();
    let list = list.join(",");
    if simulated { format!("{list} (simulated)") } else { list }
}

/// `ID POOL PHASE CONTAINER ENDPOINT GPUS KV RESTARTS`: KV is the share of the engine's KV
/// cache in use as the engine last reported it, `-` when it reports none.
pub fn replicas(replicas: &[ReplicaStatus]) -> Table {
    let mut t = Table::new(&["ID", "POOL", "PHASE", "CONTAINER", "ENDPOINT", "GPUS", "KV", "RESTARTS"]);
    for r in replicas {
        let container = r
            .container_id
            .as_deref()
            .map_or_else(|| "-".into(), |id| id.chars().take(12).collect());
        t.row(vec![
            r.id.to_string(),
            r.pool.clone(),
            format!("{:?}", r.phase),
            container,
            r.endpoint.as_ref().map_or_else(|| "-".into(), ToString::to_string),
            gpu_list(&r.gpus, r.gpus_simulated),
            r.kv_cache_usage_ratio.map_or_else(|| "-".into(), percent),
            r.restarts.to_string(),
        ]);
    }
    t
}

/// A 0–1 ratio as a whole percent. A zero that is negative (an engine's empty sum: Rust and C
/// both sum nothing to −0.0) reads `0%`, not `-0%`.
fn percent(ratio: f64) -> String {
    let pct = ratio * 100.0;
    format!("{:.0}%", if pct == 0.0 { 0.0 } else { pct })
}

pub use llorch_manifests::units::gib;

/// `INDEX NAME TOTAL USED FREE UTIL PROCS HEALTH SIMULATED`. HEALTH is `ok`, or `ERRORS (n)`
/// with the errors themselves in [`gpu_errors`] under the table.
pub fn gpus(gpus: &[GpuView], inventory_simulated: bool) -> Table {
    let mut t = Table::new(&[
        "INDEX",
        "NAME",
        "TOTAL",
        "USED",
        "FREE",
        "UTIL",
        "PROCS",
        "HEALTH",
        "SIMULATED",
    ]);
    for g in gpus {
        let simulated = g.simulated || inventory_simulated;
        t.row(vec![
            g.index.to_string(),
            g.name.clone(),
            gib(g.total_bytes),
            gib(g.used_bytes),
            gib(g.free_bytes),
            g.utilization_pct.map_or_else(|| "-".into(), |u| format!("{u}%")),
            // `?`: NVML cannot list this device's processes (not the same as none).
            if g.process_listing.is_listed() {
                g.processes.len().to_string()
            } else {
                "?".into()
            },
            if g.errors.is_empty() {
                "ok".into()
            } else {
                format!("ERRORS ({})", g.errors.len())
            },
            if simulated { "yes" } else { "no" }.into(),
        ]);
    }
    t
}

/// One `error: GPU <i>: …` line per driver or ECC problem; replicas are kept off those GPUs.
pub fn gpu_errors(gpus: &[GpuView]) -> String {
    gpus.iter()
        .flat_map(|g| g.errors.iter().map(move |e| format!("error: GPU {}: {e}\n", g.index)))
        .collect()
}

/// The footer under a GPU table that has simulated devices.
pub const SIMULATED_GPU_NOTE: &str = "note: this GPU inventory is simulated; no inference runs on these devices\n\
     note: on simulated GPUs, USED is the VRAM llama-orch's own replicas reserve\n";

/// What `orchctl get gpus` says for a daemon with `gpus: none`.
pub const NO_GPUS_NOTE: &str = "no GPUs: config `gpus: none` (only Pools on external Engines run on this daemon)";

/// `TIME TYPE OBJECT REASON MESSAGE`.
pub fn events(events: &[Event]) -> Table {
    let mut t = Table::new(&["TIME", "TYPE", "OBJECT", "REASON", "MESSAGE"]);
    for e in events {
        let object = match (&e.object, &e.replica) {
            (Some(o), Some(r)) => format!("{o} ({r})"),
            (Some(o), None) => o.to_string(),
            (None, Some(r)) => format!("replica/{r}"),
            (None, None) => "-".into(),
        };
        let kind = match e.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        t.row(vec![
            short_time(&e.ts),
            kind.into(),
            object,
            e.reason.to_string(),
            e.message.clone(),
        ]);
    }
    t
}

/// An RFC 3339 time to the second, in UTC.
pub fn short_time(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => ts.to_string(),
    }
}

/// The warning lines printed under a pool table for errors not tied to an object.
pub fn file_error_warnings(errors: &[ManifestError]) -> String {
    errors.iter().map(|e| format!("warning: {e}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::status::Condition;
    use llorch_manifests::{ObjectRef, Reason};

    fn status_with(conditions: &[(ConditionType, bool, Reason)]) -> ObjectStatus {
        let mut s = ObjectStatus::new(ObjectRef::new(Kind::Pool, "p"));
        s.conditions = conditions
            .iter()
            .map(|(t, b, r)| Condition {
                type_: *t,
                status: *b,
                reason: *r,
                message: String::new(),
                last_transition_time: String::new(),
            })
            .collect();
        s
    }

    #[test]
    fn a_ratio_reads_as_a_whole_percent_and_a_negative_zero_as_zero() {
        assert_eq!(percent(-0.0), "0%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.125), "12%");
        assert_eq!(percent(1.0), "100%");
    }

    #[test]
    fn a_scaling_pool_shows_its_bounds_and_idle_time_and_sleeps_as_asleep() {
        use llorch_manifests::api::ObjectView;
        use llorch_manifests::status::ScalingStatus;
        let now: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let view = |asleep: bool| {
            let mut status = status_with(&[(ConditionType::Ready, true, Reason::ScaledToZero)]);
            status.scaling = Some(ScalingStatus {
                min_replicas: 0,
                max_replicas: 2,
                replicas: u32::from(!asleep),
                asleep,
                last_active: Some("2026-12-03T09:59:19Z".into()),
                evicted_for: None,
                activations: 3,
                evictions: 1,
                cold_start_ms: Some(1_200),
                wake_times: Default::default(),
            });
            ObjectView {
                object: ObjectRef::new(Kind::Pool, "coder"),
                source: None,
                manifest: None,
                status,
            }
        };
        let text = pools(&[view(true)], now).render();
        assert!(
            text.contains("coder   -        -       -       0–2     asleep"),
            "{text}"
        );
        assert!(text.contains("Asleep"), "{text}");
        let text = pools(&[view(false)], now).render();
        assert!(text.contains("0–2     41s"), "{text}");
    }

    #[test]
    fn degraded_outranks_progressing_which_outranks_ready() {
        use ConditionType::*;
        assert_eq!(
            status_summary(&status_with(&[
                (Ready, true, Reason::ReplicasReady),
                (Degraded, true, Reason::EngineCrashLoop)
            ])),
            "Degraded (EngineCrashLoop)"
        );
        assert_eq!(
            status_summary(&status_with(&[
                (Ready, true, Reason::ReplicasReady),
                (Progressing, true, Reason::RollingOut)
            ])),
            "Progressing (RollingOut)"
        );
        assert_eq!(
            status_summary(&status_with(&[
                (Ready, true, Reason::ReplicasReady),
                (Progressing, false, Reason::RolloutComplete)
            ])),
            "Ready"
        );
        assert_eq!(
            status_summary(&status_with(&[(Ready, false, Reason::ReplicasStarting)])),
            "NotReady (ReplicasStarting)"
        );
        assert_eq!(status_summary(&status_with(&[])), "Pending");
    }

    #[test]
    fn ages_are_relative_to_now() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(age("2026-01-01T00:09:30Z", now), "30s");
        assert_eq!(age("2026-01-01T00:00:00Z", now), "10m");
        assert_eq!(age("", now), "-");
    }

    #[test]
    fn the_gpu_table_shows_use_processes_and_health() {
        let mut g = GpuView {
            index: 1,
            uuid: "GPU-1".into(),
            name: "RTX 4090".into(),
            total_bytes: 24 << 30,
            used_bytes: 10 << 30,
            free_bytes: 14 << 30,
            utilization_pct: Some(37),
            simulated: false,
            processes: vec![llorch_manifests::api::GpuProcess {
                pid: 7,
                used_bytes: Some(9 << 30),
            }],
            process_listing: Default::default(),
            errors: Vec::new(),
        };
        let ok = gpus(std::slice::from_ref(&g), false).render();
        assert_eq!(
            ok,
            "INDEX   NAME       TOTAL      USED       FREE       UTIL   PROCS   HEALTH   SIMULATED\n\
             1       RTX 4090   24.0 GiB   10.0 GiB   14.0 GiB   37%    1       ok       no\n"
        );
        let mut unlisted = g.clone();
        unlisted.processes.clear();
        unlisted.process_listing = llorch_manifests::api::ProcessListing::NotSupported;
        assert!(
            gpus(&[unlisted], false).render().contains("37%    ?"),
            "a list NVML cannot give is not 0 processes"
        );
        g.errors = vec!["GPU lost".into()];
        assert!(gpus(std::slice::from_ref(&g), false).render().contains("ERRORS (1)"));
        assert_eq!(gpu_errors(&[g]), "error: GPU 1: GPU lost\n");
    }

    #[test]
    fn simulated_gpus_are_labelled() {
        assert_eq!(gpu_list(&[0, 1], true), "0,1 (simulated)");
        assert_eq!(gpu_list(&[0], false), "0");
        assert_eq!(gib(24 << 30), "24.0 GiB");
    }
}
