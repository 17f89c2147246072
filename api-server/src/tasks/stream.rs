//! One task's stream to one client, shared by both front doors (native `/v2` SSE and the
//! OpenAI `/v1` replies). [`TaskStream`] owns the three things every reader of a task needs:
//!
//! - the **cancel gate**: tokens leave only through [`TaskState::admit_tokens`], so none
//!   follows an acknowledged cancel, and one held `cancelled()` future per stream (not one per
//!   event);
//! - the **disconnect guard**: dropped before the task ended (the client went away, or a
//!   non-streaming request was abandoned), it cancels the task;
//! - the **keep-alive**: a comment after [`KEEP_ALIVE`] without events.
//!
//! It reads in batches: after each wake-up it takes every event that is ready, so a burst of
//! tokens leaves in one write ([`TaskStream::sse`]); a lone token is never held back. What the
//! events look like on the wire is the front door's [`Frames`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::stream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::DataPlane;
use super::log::CancelReason;
use super::task::{TaskEvent, TaskState};
use crate::error::ApiError;
use crate::sse;

/// Keep-alive comments while a task waits (proxies drop idle connections).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How a wait for events ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Events were taken (the last of them may be the final `end` or `error`).
    Events,
    /// The task was canceled: nothing more goes to the client.
    Canceled,
    /// The task's channel closed without a final event.
    Closed,
}

/// How a front door writes a task's events.
pub trait Frames: Send + 'static {
    /// Written as soon as the stream opens.
    fn opening(&mut self, _out: &mut Vec<u8>) {}
    /// One event that passed the cancel gate.
    fn event(&mut self, event: &TaskEvent, out: &mut Vec<u8>);
    /// The task was canceled while the client was reading (nothing, or a last error frame).
    fn canceled(&mut self, _task: &TaskState, _out: &mut Vec<u8>) {}
    /// The task's channel closed without a final event.
    fn closed(&mut self, _out: &mut Vec<u8>) {}
}

/// A task's event stream, held by the one client reading it.
pub struct TaskStream {
    task: Arc<TaskState>,
    dp: Arc<DataPlane>,
    rx: UnboundedReceiver<TaskEvent>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The final event was taken: a client that leaves now leaves a finished task.
    ended: bool,
}

impl TaskStream {
    /// Opens `task`'s stream; `409` when another client already reads it.
    pub fn open(dp: Arc<DataPlane>, task: Arc<TaskState>) -> Result<Self, ApiError> {
        let Some(rx) = task.take_events() else {
            return Err(
                ApiError::invalid(format!("task `{}`'s stream is already being read", task.id))
                    .status(axum::http::StatusCode::CONFLICT),
            );
        };
        let cancelled = Box::pin(task.cancellation().cancelled_owned());
        Ok(Self {
            task,
            dp,
            rx,
            cancelled,
            ended: false,
        })
    }

    /// The task.
    pub fn task(&self) -> &Arc<TaskState> {
        &self.task
    }

    /// True once the final event was taken.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Waits for the next event, then takes every event that is ready too (up to and
    /// including a final one), through the cancel gate, into `out`.
    pub async fn next_batch(&mut self, out: &mut Vec<TaskEvent>) -> Next {
        if self.ended {
            return Next::Closed;
        }
        let first = tokio::select! {
            biased;
            _ = &mut self.cancelled => return Next::Canceled,
            ev = self.rx.recv() => ev,
        };
        let Some(first) = first else { return Next::Closed };
        let start = out.len();
        let mut next = Some(first);
        while let Some(ev) = next.take() {
            let last = matches!(ev, TaskEvent::End(_) | TaskEvent::Error(_));
            out.push(ev);
            if last {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        let tokens: usize = out[start..]
            .iter()
            .map(|e| match e {
                TaskEvent::Tokens(t) => t.len(),
                TaskEvent::Delta { delta, .. } => usize::from(delta.content.is_some()),
                _ => 0,
            })
            .sum();
        // Race-free cancel: tokens pass the task's gate (which cancel also takes) before they
        // are handed out, so nothing follows an acknowledged cancel.
        let allowed = if tokens > 0 {
            self.task.admit_tokens(tokens as u32)
        } else {
            !self.task.is_canceled()
        };
        if !allowed {
            out.truncate(start);
            return Next::Canceled;
        }
        self.ended = matches!(out.last(), Some(TaskEvent::End(_) | TaskEvent::Error(_)));
        Next::Events
    }

    /// The stream as an SSE response: `frames`' opening, then one body chunk per wake-up
    /// holding every event that was ready, keep-alive comments while nothing comes.
    pub fn sse(self, frames: impl Frames) -> Response {
        let body = Body::from_stream(stream::unfold(Writer::new(self, frames), Writer::next));
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(sse::CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

impl Drop for TaskStream {
    fn drop(&mut self) {
        if !self.ended && !self.task.phase().is_final() {
            self.dp.cancel_because(&self.task.id, CancelReason::Disconnected);
        }
    }
}

/// The state of an SSE body being written.
struct Writer<F> {
    stream: TaskStream,
    frames: F,
    events: Vec<TaskEvent>,
    opened: bool,
    done: bool,
    /// When the last chunk went out; the keep-alive timer is moved only when it fires early
    /// (not on every chunk: the token path touches no timer).
    last_sent: tokio::time::Instant,
    keep_alive: Pin<Box<tokio::time::Sleep>>,
}

impl<F: Frames> Writer<F> {
    fn new(stream: TaskStream, frames: F) -> Self {
        Self {
            stream,
            frames,
            events: Vec::new(),
            opened: false,
            done: false,
            last_sent: tokio::time::Instant::now(),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        }
    }

    /// The next body chunk; `None` once the stream is over.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        if !std::mem::replace(&mut self.opened, true) {
            self.frames.opening(&mut out);
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), self));
            }
        }
        loop {
            let next = tokio::select! {
                biased;
                next = self.stream.next_batch(&mut self.events) => next,
                _ = &mut self.keep_alive => {
                    let due = self.last_sent + KEEP_ALIVE;
                    if tokio::time::Instant::now() < due {
                        self.keep_alive.as_mut().reset(due);
                        continue;
                    }
                    self.sent();
                    return Some((Ok(Bytes::from_static(sse::KEEP_ALIVE_COMMENT)), self));
                }
            };
            match next {
                Next::Events => {
                    for ev in self.events.drain(..) {
                        self.frames.event(&ev, &mut out);
                    }
                    self.done = self.stream.ended();
                }
                Next::Canceled => {
                    self.frames.canceled(&self.stream.task, &mut out);
                    self.done = true;
                }
                Next::Closed => {
                    self.frames.closed(&mut out);
                    self.done = true;
                }
            }
            if !out.is_empty() {
                self.sent();
                return Some((Ok(Bytes::from(out)), self));
            }
            if self.done {
                return None;
            }
        }
    }

    /// A chunk goes out now: the next keep-alive is due `KEEP_ALIVE` after it.
    fn sent(&mut self) {
        self.last_sent = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use axum::body::Body;
    use http_body_util::BodyExt;
    use llorch_manifests::api::Snapshot;
    use llorch_manifests::task::{End, Priority, Token};
    use tokio::sync::watch;

    use super::*;
    use crate::engine::{EngineClients, GenerateRequest};
    use crate::tasks::task::TaskMeta;
    use crate::tasks::telemetry::Telemetry;
    use crate::tasks::validate::ValidTask;

    /// `t <text>` per token, `end` at the end.
    struct Plain;

    impl Frames for Plain {
        fn event(&mut self, ev: &TaskEvent, out: &mut Vec<u8>) {
            match ev {
                TaskEvent::Tokens(ts) => ts
                    .iter()
                    .for_each(|t| out.extend_from_slice(format!("t {}\n", t.t).as_bytes())),
                TaskEvent::End(_) => out.extend_from_slice(b"end\n"),
                _ => {}
            }
        }
    }

    fn task() -> Arc<TaskState> {
        let request = ValidTask {
            generate: GenerateRequest::text("hi", 4),
            priority: Priority::Interactive,
            session_id: None,
            prompt_tokens: 1,
            workload: Default::default(),
            prompt_source: Default::default(),
        };
        TaskState::new(
            "p".into(),
            request,
            TaskMeta::default(),
            tracing::Span::none(),
            Telemetry::new(),
        )
    }

    async fn chunk(body: &mut Body) -> String {
        let frame = body.frame().await.unwrap().unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_keep_alives_and_ready_tokens_leave_in_one_chunk() {
        let (_publish, snapshot) = watch::channel(Arc::new(Snapshot::default()));
        let dp = DataPlane::new(snapshot, EngineClients::new());
        let task = task();
        let response = TaskStream::open(dp.clone(), task.clone()).unwrap().sse(Plain);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();

        tokio::time::advance(KEEP_ALIVE + Duration::from_millis(1)).await;
        assert_eq!(chunk(&mut body).await, ":\n\n", "a comment after a quiet KEEP_ALIVE");

        let tokens = (0..3).map(|i| Token { t: format!("w{i}"), i }).collect();
        assert!(task.emit_tokens(tokens));
        assert!(task.emit_tokens(vec![Token { t: "w3".into(), i: 3 }]));
        assert_eq!(
            chunk(&mut body).await,
            "t w0\nt w1\nt w2\nt w3\n",
            "every ready token, one chunk"
        );

        // Tokens keep the stream busy: no comment is due until KEEP_ALIVE after the last chunk.
        tokio::time::advance(KEEP_ALIVE - Duration::from_millis(10)).await;
        assert!(task.send(TaskEvent::End(End {
            tokens_out: 4,
            decode_time_ms: 1,
            finish_reason: Default::default(),
            tokens_in: 1,
        })));
        assert_eq!(chunk(&mut body).await, "end\n");
        assert!(body.frame().await.is_none(), "nothing follows the end");
    }

    #[test]
    fn a_tasks_count_at_the_end_is_the_engines_which_includes_what_was_not_text() {
        let task = task();
        assert!(task.emit_tokens(vec![Token { t: "a".into(), i: 0 }]));
        // Reasoning and tool-call arguments: counted by the engine, not streamed as text.
        task.step(super::super::lifecycle::Step::Ended {
            tokens_out: 5,
            decode_time_ms: 1,
            finish: Default::default(),
            tokens_in: Some(3),
        });
        assert_eq!(task.tokens_out(), 5, "a session budget is charged the engine's count");
        assert_eq!(task.phase(), llorch_manifests::task::TaskPhase::Done);
    }

    #[tokio::test]
    async fn a_second_reader_is_refused_and_a_dropped_stream_cancels_its_task() {
        let (_publish, snapshot) = watch::channel(Arc::new(Snapshot::default()));
        let dp = DataPlane::new(snapshot, EngineClients::new());
        let task = task();
        dp.insert_for_tests(task.clone());
        let stream = TaskStream::open(dp.clone(), task.clone()).unwrap();
        let again = TaskStream::open(dp.clone(), task.clone()).err().unwrap();
        assert_eq!(again.http_status().as_u16(), 409);
        drop(stream);
        assert!(task.is_canceled(), "a client that goes away cancels its task");
        assert!(!task.admit_tokens(1), "no token passes the gate after that");
    }
}
