//! `orchctl describe <kind>/<name>`: everything needed to understand one object — its spec in
//! brief, where it is declared, its conditions, its replicas, its last error with the engine's
//! log tail, its manifest errors and its recent events. Rendering is a pure function of wire
//! types.

use std::fmt::Write as _;

use jiff::Timestamp;
use llorch_manifests::Kind;
use llorch_manifests::api::ObjectView;
use llorch_manifests::status::{CircuitState, Event, ReplicaStatus};
use serde_json::Value;

use crate::Io;
use crate::cli::DescribeArgs;
use crate::client::Client;
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

/// The whole description.
pub fn render(
    view: &ObjectView,
    replicas: &[ReplicaStatus],
    events: &Result<Vec<Event>, String>,
    now: Timestamp,
) -> String {
    let mut s = String::new();
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
    if !status.updated_at.is_empty() {
        let _ = writeln!(s, "Updated:      {} ago", views::age(&status.updated_at, now));
    }

    let _ = writeln!(s, "\nConditions:");
    if status.conditions.is_empty() {
        let _ = writeln!(s, "  (none yet)");
    } else {
        let mut t = Table::new(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]);
        for c in &status.conditions {
            t.row(vec![
                format!("{:?}", c.type_),
                if c.status { "True" } else { "False" }.into(),
                c.reason.clone(),
                views::age(&c.last_transition_time, now),
                c.message.clone(),
            ]);
        }
        s.push_str(&indent(&t.render(), "  "));
    }

    if view.object.kind == Kind::Pool {
        let _ = writeln!(s, "\nReplicas:");
        if replicas.is_empty() {
            let _ = writeln!(s, "  (none)");
        } else {
            s.push_str(&indent(&views::replicas(replicas).render(), "  "));
        }
    }

    if let Some(err) = &status.last_error {
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

    if !status.manifest_errors.is_empty() {
        let _ = writeln!(s, "\nManifest errors:");
        for e in &status.manifest_errors {
            let _ = writeln!(s, "  {e}");
        }
    }

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
                    e.reason.clone(),
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
    s
}

/// `orchctl describe`.
pub async fn run(ctx: &Context, args: &DescribeArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let object = parse_object_ref(&args.target, args.name.as_deref())?;
    let client = Client::new(&ctx.server)?;
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
