//! `orchctl describe <kind>/<name>`: everything needed to understand one object — its spec in
//! brief, where it is declared, its conditions, its replicas, its last error with the engine's
//! log tail, its manifest errors and its recent events. Rendering is a pure function of wire
//! types.

use std::fmt::Write as _;

use jiff::Timestamp;
use llorch_manifests::Kind;
use llorch_manifests::api::ObjectView;
use llorch_manifests::status::{CircuitState, Event, LastError, ObjectStatus, PoolVram, ReplicaStatus, ScalingStatus};
use serde_json::Value;

use crate::Io;
use crate::cli::DescribeArgs;
use crate::context::Context;
use crate::delete::parse_object_ref;
use crate::table::Table;
use crate::views;

/// Events shown.
pub const EVENT_LIMIT: usize = 20;

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(" "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A Pool's VRAM: what one replica needs and why, the placement decisions, and what each
/// replica holds on each of its GPUs (even, or by `tensorSplit`).
pub fn vram_text(v: &PoolVram, replicas: &[ReplicaStatus], split: Option<&[u64]>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\nVRAM ({}):", v.source);
    let _ = writeln!(s, "  Per replica:  {}", views::gib(v.per_replica_bytes));
    let _ = writeln!(s, "  Weights:      {}", views::gib(v.weights_bytes));
    let _ = writeln!(s, "  KV cache:     {}", views::gib(v.kv_cache_bytes));
    let _ = writeln!(s, "  Overhead:     {}", views::gib(v.overhead_bytes));
    if !v.decisions.is_empty() {
        let d: Vec<String> = v.decisions.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(s, "  Decisions:    {}", d.join(", "));
    }
    for r in replicas.iter().filter(|r| !r.gpus.is_empty()) {
        let weights: Vec<u64> = match split {
            Some(w) if w.len() == r.gpus.len() && w.iter().all(|x| *x > 0) => w.to_vec(),
            _ => vec![1; r.gpus.len()],
        };
        let sum: u64 = weights.iter().sum();
        let parts: Vec<String> = r
            .gpus
            .iter()
            .zip(&weights)
            .map(|(g, w)| {
                let share = u128::from(v.per_replica_bytes) * u128::from(*w) / u128::from(sum.max(1));
                format!("GPU {g} {}", views::gib(u64::try_from(share).unwrap_or(u64::MAX)))
            })
            .collect();
        let sim = if r.gpus_simulated { " (simulated)" } else { "" };
        let _ = writeln!(
            s,
            "  {}:{}{}{sim}",
            r.id,
            " ".repeat(14usize.saturating_sub(r.id.as_str().len() + 1)),
            parts.join(", ")
        );
    }
    s
}

/// `0–2 replicas, at 1 now; last task 41s ago; 3 wakes, 1 eviction; a wake takes ~1.2s`, or
/// `asleep (evicted for pool/chat)` in place of the level and last task.
pub fn scaling_text(sc: &ScalingStatus, now: Timestamp) -> String {
    let state = match (&sc.asleep, &sc.evicted_for) {
        (true, Some(by)) => "asleep (evicted for pool/".to_string() + by + ")",
        (true, None) => "asleep".to_string(),
        (false, _) => format!(
            "at {} now; last task {}",
            sc.replicas,
            sc.last_active
                .as_deref()
                .map_or_else(|| "-".to_string(), |t| format!("{} ago", views::age(t, now)))
        ),
    };
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = format!(
        "{}–{} replicas, {state}; {}, {}",
        sc.min_replicas,
        sc.max_replicas,
        plural(sc.activations, "wake", "wakes"),
        plural(sc.evictions, "eviction", "evictions")
    );
    if let Some(ms) = sc.cold_start_ms {
        let _ = write!(text, "; a wake takes ~{:.1}s", ms as f64 / 1000.0);
    }
    text
}

/// The whole description.
pub fn render(
    view: &ObjectView,
    replicas: &[ReplicaStatus],
    events: &Result<Vec<Event>, String>,
    now: Timestamp,
) -> String {
    let mut s = String::new();
    let status = &view.status;
    write_identity(&mut s, view);
    write_state(&mut s, status, now);
    write_conditions(&mut s, status, now);
    if view.object.kind == Kind::Pool {
        write_pool(&mut s, view, replicas);
    }
    if let Some(err) = &status.last_error {
        write_last_error(&mut s, err, now);
    }
    write_manifest_errors(&mut s, status);
    write_events(&mut s, events);
    s
}

/// Name, kind, where it is declared, generation, labels and the spec in brief.
fn write_identity(s: &mut String, view: &ObjectView) {
    let status = &view.status;
    let _ = writeln!(s, "Name:         {}", view.object.name);
    let _ = writeln!(s, "Kind:         {}", view.object.kind);
    match &view.source {
        Some(src) => {
            let _ = writeln!(s, "Source:       {} (document {})", src.file, src.document);
        }
        None => {
            let _ = writeln!(s, "Source:       (file gone; being cleaned up)");
        }
    }
    let generation = status.generation.as_deref().unwrap_or("-");
    let observed = status.observed_generation.as_deref().unwrap_or("-");
    let lag = if status.generation.is_some() && status.generation != status.observed_generation {
        " (not yet acted on)"
    } else {
        ""
    };
    let _ = writeln!(s, "Generation:   {generation} (observed {observed}){lag}");
    if let Some(labels) = view
        .manifest
        .as_ref()
        .and_then(|m| m.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect();
        let _ = writeln!(s, "Labels:       {}", text.join(", "));
    }
    if let Some(Value::Object(spec)) = view.manifest.as_ref().and_then(|m| m.get("spec")) {
        let _ = writeln!(s, "Spec:");
        let width = spec.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in spec {
            let _ = writeln!(s, "  {key:width$}  {}", scalar(value));
        }
    }
}

/// The status line, replica counts and restarts, scaling and when it was last updated.
fn write_state(s: &mut String, status: &ObjectStatus, now: Timestamp) {
    let _ = writeln!(s, "Status:       {}", views::status_summary(status));
    if let Some(counts) = status.replicas {
        let mut line = format!(
            "{}/{} ready, {} restarts",
            counts.ready, counts.desired, status.restarts
        );
        if let Some(circuit) = status.circuit {
            let c = match circuit {
                CircuitState::Closed => "closed",
                CircuitState::Open => "open (restarts paused)",
                CircuitState::HalfOpen => "half-open (one trial start)",
            };
            let _ = write!(line, ", circuit {c}");
        }
        if let Some(ms) = status.next_restart_in_ms {
            let _ = write!(line, ", next restart in {:.1}s", ms as f64 / 1000.0);
        }
        let _ = writeln!(s, "Replicas:     {line}");
    }
    if let Some(sc) = &status.scaling {
        let _ = writeln!(s, "Scaling:      {}", scaling_text(sc, now));
    }
    if !status.updated_at.is_empty() {
        let _ = writeln!(s, "Updated:      {} ago", views::age(&status.updated_at, now));
    }
}

/// The conditions as a table.
fn write_conditions(s: &mut String, status: &ObjectStatus, now: Timestamp) {
    let _ = writeln!(s, "\nConditions:");
    if status.conditions.is_empty() {
        let _ = writeln!(s, "  (none yet)");
    } else {
        let mut t = Table::new(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]);
        for c in &status.conditions {
            t.row(vec![
                format!("{:?}", c.type_),
                if c.status { "True" } else { "False" }.into(),
                c.reason.to_string(),
                views::age(&c.last_transition_time, now),
                c.message.clone(),
            ]);
        }
        s.push_str(&indent(&t.render(), "  "));
    }
}

/// A Pool's replicas and its VRAM.
fn write_pool(s: &mut String, view: &ObjectView, replicas: &[ReplicaStatus]) {
    let status = &view.status;
    let _ = writeln!(s, "\nReplicas:");
    if replicas.is_empty() {
        let _ = writeln!(s, "  (none)");
    } else {
        s.push_str(&indent(&views::replicas(replicas).render(), "  "));
    }
    if let Some(v) = &status.vram {
        let split = view
            .manifest
            .as_ref()
            .and_then(|m| m.get("spec")?.get("tensorSplit")?.as_array().cloned())
            .map(|w| w.iter().filter_map(Value::as_u64).collect::<Vec<u64>>());
        s.push_str(&vram_text(v, replicas, split.as_deref()));
    }
}

/// The last error, with the engine's log tail.
fn write_last_error(s: &mut String, err: &LastError, now: Timestamp) {
    match views::age(&err.at, now).as_str() {
        "-" => s.push_str("\nLast error:\n"),
        age => {
            let _ = writeln!(s, "\nLast error ({age} ago):");
        }
    }
    let _ = writeln!(s, "  {}", err.message);
    if !err.log_tail.is_empty() {
        let _ = writeln!(s, "  Engine log tail:");
        for line in &err.log_tail {
            let _ = writeln!(s, "    | {line}");
        }
    }
}

/// Errors in the object's manifest.
fn write_manifest_errors(s: &mut String, status: &ObjectStatus) {
    if !status.manifest_errors.is_empty() {
        let _ = writeln!(s, "\nManifest errors:");
        for e in &status.manifest_errors {
            let _ = writeln!(s, "  {e}");
        }
    }
}

/// Recent events, or why they are unavailable.
fn write_events(s: &mut String, events: &Result<Vec<Event>, String>) {
    let _ = writeln!(s, "\nEvents:");
    match events {
        Ok(events) if events.is_empty() => {
            let _ = writeln!(s, "  (none)");
        }
        Ok(events) => {
            let mut t = Table::new(&["TIME", "TYPE", "REASON", "MESSAGE"]);
            for e in events {
                t.row(vec![
                    views::short_time(&e.ts),
                    format!("{:?}", e.type_),
                    e.reason.to_string(),
                    match &e.replica {
                        Some(r) => format!("[{r}] {}", e.message),
                        None => e.message.clone(),
                    },
                ]);
            }
            s.push_str(&indent(&t.render(), "  "));
        }
        Err(why) => {
            let _ = writeln!(s, "  (unavailable: {why})");
        }
    }
}

/// `orchctl describe`.
pub async fn run(ctx: &Context, args: &DescribeArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let object = parse_object_ref(&args.target, args.name.as_deref())?;
    let client = ctx.client()?;
    let view = client.object(&object).await?;
    let replicas = if object.kind == Kind::Pool {
        client.replicas(Some(&object.name)).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let events = client
        .events(Some(object.kind), Some(&object.name), EVENT_LIMIT)
        .await
        .map(|l| l.events)
        .map_err(|e| e.to_string());
    write!(io.out, "{}", render(&view, &replicas, &events, Timestamp::now()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::status::ReplicaPhase;

    fn replica(index: u32, gpus: &[u32]) -> ReplicaStatus {
        ReplicaStatus {
            id: llorch_manifests::ReplicaId::new("chat", index),
            pool: "chat".into(),
            index,
            phase: ReplicaPhase::Ready,
            container_id: None,
            container_name: None,
            endpoint: None,
            gpus: gpus.to_vec(),
            gpus_simulated: true,
            engine_version: "1".into(),
            spec_hash: "h".into(),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio: None,
        }
    }

    #[test]
    fn scaling_reads_as_one_line() {
        let now: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let mut sc = ScalingStatus {
            min_replicas: 0,
            max_replicas: 2,
            replicas: 1,
            asleep: false,
            last_active: Some("2026-12-03T09:59:19Z".into()),
            evicted_for: None,
            activations: 3,
            evictions: 1,
            cold_start_ms: Some(1_234),
            wake_times: Default::default(),
        };
        assert_eq!(
            scaling_text(&sc, now),
            "0–2 replicas, at 1 now; last task 41s ago; 3 wakes, 1 eviction; a wake takes ~1.2s"
        );
        sc.asleep = true;
        sc.evicted_for = Some("chat".into());
        sc.cold_start_ms = None;
        assert_eq!(
            scaling_text(&sc, now),
            "0–2 replicas, asleep (evicted for pool/chat); 3 wakes, 1 eviction"
        );
    }

    #[test]
    fn the_vram_breakdown_names_each_replicas_gpus_and_shares() {
        let v = PoolVram {
            source: "gguf".into(),
            weights_bytes: 20 << 30,
            kv_cache_bytes: 9 << 30,
            overhead_bytes: 1 << 30,
            per_replica_bytes: 30 << 30,
            decisions: [("placed".to_string(), 1), ("refused".to_string(), 2)].into(),
        };
        let text = vram_text(&v, &[replica(0, &[0, 1])], Some(&[2, 1]));
        assert_eq!(
            text,
            "\nVRAM (gguf):\n  Per replica:  30.0 GiB\n  Weights:      20.0 GiB\n  KV cache:     9.0 GiB\n  \
             Overhead:     1.0 GiB\n  Decisions:    1 placed, 2 refused\n  chat-0:       GPU 0 20.0 GiB, GPU 1 10.0 GiB (simulated)\n"
        );
        let even = vram_text(&v, &[replica(0, &[0, 1])], None);
        assert!(even.contains("chat-0:       GPU 0 15.0 GiB, GPU 1 15.0 GiB"), "{even}");
    }
}
