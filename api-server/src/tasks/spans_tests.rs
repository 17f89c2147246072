//! The span tree as an OpenTelemetry exporter receives it: a collecting exporter behind the
//! `tracing-opentelemetry` layer, as the daemon installs it (without the network).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use llorch_manifests::ReplicaId;
use llorch_manifests::task::{ErrorCode, FinishReason, Priority};
use opentelemetry::trace::{SpanId, Status, TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::trace_context::RemoteParent;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Runs `f` under the OpenTelemetry layer; the spans ended meanwhile, in order of their end.
fn exported(f: impl FnOnce()) -> Vec<SpanData> {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    collect.0.lock().unwrap().clone()
}

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()))
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn client() -> RemoteParent {
    RemoteParent::parse(&format!("00-{TRACE}-{CLIENT_SPAN}-01"), None)
}

fn task_spans() -> TaskSpans {
    let task = task_span("corr-1", &client());
    let admission = admission_span(&task);
    drop(admission);
    TaskSpans::new(task, "task-1", Priority::Batch, "llamacpp", "b5000")
}

#[test]
fn a_finished_task_is_one_tree_under_the_clients_span_ended_with_the_task() {
    let spans = exported(|| {
        let spans = task_spans();
        spans.admitted(3);
        spans.placed(&ReplicaId::new("chat", 1), 12, true);
        spans.first_token();
        spans.ended(40, 8, FinishReason::Length);
        // Still held (a finished task is kept for minutes), yet every span has ended.
        std::mem::forget(spans);
    });
    let task = span(&spans, "task");
    assert_eq!(task.span_context.trace_id(), TraceId::from_hex(TRACE).unwrap());
    assert_eq!(task.parent_span_id, SpanId::from_hex(CLIENT_SPAN).unwrap());
    assert!(task.parent_span_is_remote);
    for name in ["admission", "queue", "placement", "engine request", "stream"] {
        let child = span(&spans, name);
        assert_eq!(child.parent_span_id, task.span_context.span_id(), "{name}");
        assert_eq!(child.span_context.trace_id(), task.span_context.trace_id(), "{name}");
    }
    assert_eq!(spans.len(), 6, "{spans:#?}");
    assert_eq!(attr(task, "job_id"), Some(&Value::from("task-1")));
    assert_eq!(attr(task, "priority"), Some(&Value::from("batch")));
    assert_eq!(attr(task, "engine_version"), Some(&Value::from("b5000")));
    assert_eq!(attr(task, "replica_id"), Some(&Value::from("chat-1")));
    assert_eq!(attr(task, "queue_position"), Some(&Value::I64(3)));
    assert_eq!(attr(task, "tokens_in"), Some(&Value::I64(40)));
    assert_eq!(attr(task, "tokens_out"), Some(&Value::I64(8)));
    assert_eq!(attr(task, "finish_reason"), Some(&Value::from("length")));
    assert_eq!(attr(task, "state"), Some(&Value::from("done")));
    assert_eq!(task.status, Status::Unset);
    let placement = span(&spans, "placement");
    assert_eq!(attr(placement, "waited_ms"), Some(&Value::I64(12)));
    assert_eq!(attr(placement, "kv_warm"), Some(&Value::Bool(true)));
    // The phases follow each other.
    let (engine, stream) = (span(&spans, "engine request"), span(&spans, "stream"));
    assert!(span(&spans, "queue").end_time <= engine.start_time);
    assert!(engine.end_time <= stream.start_time);
    assert!(stream.end_time <= task.end_time);
}

#[test]
fn a_failure_marks_the_task_and_the_phase_it_failed_in() {
    let spans = exported(|| {
        let spans = task_spans();
        spans.placed(&ReplicaId::new("chat", 0), 0, false);
        spans.failed(ErrorCode::WorkerReset, 0);
    });
    for name in ["task", "engine request"] {
        let s = span(&spans, name);
        assert!(matches!(s.status, Status::Error { .. }), "{name}: {:?}", s.status);
        assert_eq!(attr(s, "error_code"), Some(&Value::from("WORKER_RESET")), "{name}");
    }
    assert_eq!(attr(span(&spans, "task"), "state"), Some(&Value::from("failed")));
    assert!(spans.iter().all(|s| s.name != "stream"));
}

#[test]
fn a_canceled_task_ends_its_spans_without_an_error() {
    let spans = exported(|| {
        let spans = task_spans();
        spans.canceled(0);
        std::mem::forget(spans);
    });
    let task = span(&spans, "task");
    assert_eq!(attr(task, "state"), Some(&Value::from("canceled")));
    assert_eq!(task.status, Status::Unset);
    assert!(spans.iter().any(|s| s.name == "queue"));
}

#[test]
fn a_refusal_at_admission_is_a_task_with_a_failed_admission() {
    let spans = exported(|| {
        let task = task_span("corr-2", &RemoteParent::default());
        let admission = admission_span(&task);
        refused(&task, &admission, ErrorCode::QueueFullDropLru);
    });
    assert_eq!(spans.len(), 2);
    let task = span(&spans, "task");
    assert_eq!(task.parent_span_id, SpanId::INVALID, "no client parent: a root span");
    for s in &spans {
        assert_eq!(attr(s, "error_code"), Some(&Value::from("QUEUE_FULL_DROP_LRU")));
        assert!(matches!(s.status, Status::Error { .. }));
    }
}
