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
                    self.rearm();
                    return Some((Ok(Bytes::from_static(sse::KEEP_ALIVE_COMMENT)), self));
                }
            };
            match next {
                Next::Events => {
                    for ev in self.events.drain(..) {
                        self.frames.event(&ev, &mut out);
                    }
                    self.done = self.stream.ended();
                    self.rearm();
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
                return Some((Ok(Bytes::from(out)), self));
            }
            if self.done {
                return None;
            }
        }
    }

    fn rearm(&mut self) {
        self.keep_alive.as_mut().reset(tokio::time::Instant::now() + KEEP_ALIVE);
    }
}
