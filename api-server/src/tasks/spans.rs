//! A task's span tree: the `task` span (root, or a child of the client's `traceparent`) and its
//! children, one per phase: `admission` (routing, validation, the prompt count, the queue's
//! answer), `queue` (the wait), `placement` (the slot decision), `engine request` (from the
//! request to the engine until its first token) and `stream` (first token to the end).
//!
//! [`lifecycle`](super::lifecycle) opens and closes the phase spans here as the task moves.
//! The task span closes when the task ends, not when its state is forgotten minutes later:
//! the spans are held here and dropped at the end.
//!
//! Spans carry only what the server decided and counted (ids, pool, replica, engine, model,
//! priority, token counts, finish reason, error code, queue position), never a prompt, a
//! message, token text, a header or a credential. Exported only when the daemon installs its
//! OpenTelemetry layer; otherwise they are plain `tracing` spans.

use std::sync::{Mutex, MutexGuard};

use llorch_manifests::ReplicaId;
use llorch_manifests::task::{ErrorCode, FinishReason, Priority, TaskPhase};
use tracing::Span;
use tracing::field::Empty;

use crate::trace_context::RemoteParent;

/// A new `task` span continuing `parent`, with its attributes still to be recorded.
pub fn task_span(correlation_id: &str, parent: &RemoteParent) -> Span {
    let span = tracing::info_span!(
        "task",
        job_id = Empty,
        pool_id = Empty,
        correlation_id = %correlation_id,
        model = Empty,
        engine = Empty,
        engine_version = Empty,
        priority = Empty,
        queue_position = Empty,
        replica_id = Empty,
        tokens_in = Empty,
        tokens_out = Empty,
        finish_reason = Empty,
        state = Empty,
        error_code = Empty,
        otel.status_code = Empty,
    );
    parent.adopt(&span);
    span
}

/// The `admission` span under `task`: from the request to the queue's answer.
pub fn admission_span(task: &Span) -> Span {
    tracing::info_span!(parent: task, "admission", error_code = Empty, otel.status_code = Empty)
}

/// Records a refusal at admission on the task and admission spans.
pub fn refused(task: &Span, admission: &Span, code: ErrorCode) {
    for span in [task, admission] {
        span.record("error_code", code.as_str());
        span.record("otel.status_code", "error");
    }
}

// Numbers are recorded as i64: tracing-opentelemetry turns a u64 into a string attribute.

/// The open spans of one task.
#[derive(Debug)]
pub struct TaskSpans {
    open: Mutex<Open>,
}

#[derive(Debug)]
struct Open {
    task: Span,
    queue: Option<Span>,
    engine: Option<Span>,
    stream: Option<Span>,
}

impl TaskSpans {
    /// Takes over `task` (from [`task_span`]) for the admitted task `id`, and opens its queue
    /// span.
    pub fn new(task: Span, id: &str, priority: Priority, engine: &str, engine_version: &str) -> Self {
        task.record("job_id", id);
        task.record("priority", super::telemetry::priority_label(priority));
        task.record("engine", engine);
        task.record("engine_version", engine_version);
        let queue = tracing::info_span!(parent: &task, "queue", queue_position = Empty);
        Self {
            open: Mutex::new(Open {
                task,
                queue: Some(queue),
                engine: None,
                stream: None,
            }),
        }
    }

    /// The task span (a disabled one once the task ended).
    pub fn task(&self) -> Span {
        self.lock().task.clone()
    }

    /// The engine request's span, while it waits for the first token: requests made in it
    /// carry its `traceparent`.
    pub fn engine_request(&self) -> Span {
        self.lock().engine.clone().unwrap_or_else(Span::none)
    }

    pub(super) fn admitted(&self, position: u32) {
        let open = self.lock();
        open.task.record("queue_position", i64::from(position));
        if let Some(queue) = &open.queue {
            queue.record("queue_position", i64::from(position));
        }
    }

    pub(super) fn placed(&self, replica: &ReplicaId, waited_ms: u64, kv_warm: bool) {
        let mut open = self.lock();
        open.queue = None;
        let task = &open.task;
        task.record("replica_id", replica.as_str());
        let placement = tracing::info_span!(
            parent: task,
            "placement",
            replica_id = %replica,
            waited_ms = i64::try_from(waited_ms).unwrap_or(i64::MAX),
            kv_warm
        );
        drop(placement);
        let engine = tracing::info_span!(
            parent: task,
            "engine request",
            replica_id = %replica,
            error_code = Empty,
            otel.status_code = Empty,
        );
        open.engine = Some(engine);
    }

    pub(super) fn first_token(&self) {
        let mut open = self.lock();
        open.engine = None;
        let stream = tracing::info_span!(
            parent: &open.task,
            "stream",
            tokens_out = Empty,
            error_code = Empty,
            otel.status_code = Empty,
        );
        open.stream = Some(stream);
    }

    pub(super) fn ended(&self, tokens_in: u32, tokens_out: u32, finish: FinishReason) {
        let mut open = self.lock();
        if let Some(stream) = &open.stream {
            stream.record("tokens_out", i64::from(tokens_out));
        }
        let task = &open.task;
        task.record("tokens_in", i64::from(tokens_in));
        task.record("tokens_out", i64::from(tokens_out));
        task.record("finish_reason", finish.as_str());
        task.record("state", TaskPhase::Done.as_str());
        close(&mut open);
    }

    pub(super) fn failed(&self, code: ErrorCode, tokens_out: u32) {
        let mut open = self.lock();
        let phase = [&open.engine, &open.stream, &open.queue].into_iter().flatten();
        for span in phase.chain([&open.task]) {
            span.record("error_code", code.as_str());
            span.record("otel.status_code", "error");
        }
        open.task.record("tokens_out", i64::from(tokens_out));
        open.task.record("state", TaskPhase::Failed.as_str());
        close(&mut open);
    }

    pub(super) fn canceled(&self, tokens_out: u32) {
        let mut open = self.lock();
        open.task.record("tokens_out", i64::from(tokens_out));
        open.task.record("state", TaskPhase::Canceled.as_str());
        close(&mut open);
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends every span of the task (a span ends when its last handle drops; one still entered by
/// the caller ends when the caller leaves it).
fn close(open: &mut Open) {
    open.queue = None;
    open.engine = None;
    open.stream = None;
    open.task = Span::none();
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
