//! Drives one admitted task's event channel to an OpenAI client: as SSE `data:` frames ending in
//! `[DONE]`, or collected into one reply. The same approach as the native stream
//! (`routes/tasks.rs`): every token passes the task's cancel gate before it is sent, so none
//! follows an acknowledged cancel, and a [`DisconnectGuard`] cancels the task when the client
//! goes away — whether it drops the stream or a non-streaming request while it waits.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream;
use llorch_manifests::task::{End, ErrorCode, TaskError};
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::OpenAiError;
use super::response::{Collected, Collector, Envelope, Step, error_frames, frames_for};
use crate::tasks::DataPlane;
use crate::tasks::task::{TaskEvent, TaskState};

/// Keep-alive comments while a task waits (proxies drop idle connections), as on `/v2`.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Cancels the task when dropped before its reply ended (the client went away).
pub struct DisconnectGuard {
    task: Arc<TaskState>,
    dp: Arc<DataPlane>,
    ended: bool,
}

impl DisconnectGuard {
    /// Guards `task`.
    pub fn new(task: Arc<TaskState>, dp: Arc<DataPlane>) -> Self {
        Self { task, dp, ended: false }
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        // `ended` covers the moment between the runner sending `end` and marking the task done.
        if !self.ended && !self.task.phase().is_final() {
            self.dp
                .cancel_because(&self.task.id, crate::tasks::log::CancelReason::Disconnected);
        }
    }
}

enum Next {
    Event(TaskEvent),
    Canceled,
    Closed,
}

/// The next event that may reach the client.
async fn next(rx: &mut UnboundedReceiver<TaskEvent>, task: &TaskState) -> Next {
    let cancel = task.cancellation();
    let ev = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Next::Canceled,
        ev = rx.recv() => ev,
    };
    let Some(ev) = ev else { return Next::Closed };
    let allowed = match ev {
        TaskEvent::Token(_) => task.admit_token(),
        _ => !task.is_canceled(),
    };
    if allowed { Next::Event(ev) } else { Next::Canceled }
}

fn closed() -> OpenAiError {
    OpenAiError::from_task_error(&TaskError {
        code: ErrorCode::Internal,
        message: "the task's event stream closed without an end".into(),
        retriable: true,
        retry_after_ms: None,
        policy_label: None,
        engine: None,
    })
}

/// Collects the whole reply: its text and `end`, or the error that stopped it.
pub async fn collect(
    mut rx: UnboundedReceiver<TaskEvent>,
    mut guard: DisconnectGuard,
) -> Result<(String, End), OpenAiError> {
    let mut collector = Collector::default();
    loop {
        match next(&mut rx, &guard.task).await {
            Next::Event(ev) => match collector.push(ev) {
                None => {}
                Some(done) => {
                    guard.ended = true;
                    return match done {
                        Collected::Done(text, end) => Ok((text, end)),
                        Collected::Failed(e) => Err(OpenAiError::from_task_error(&e)),
                    };
                }
            },
            Next::Canceled => return Err(OpenAiError::canceled(&guard.task.id)),
            Next::Closed => return Err(closed()),
        }
    }
}

struct Streaming {
    rx: UnboundedReceiver<TaskEvent>,
    guard: DisconnectGuard,
    env: Envelope,
}

/// The next batch of frames; `None` once the last was sent.
async fn step(mut s: Streaming) -> Option<(Vec<String>, Streaming)> {
    if s.guard.ended {
        return None;
    }
    loop {
        let frames = match next(&mut s.rx, &s.guard.task).await {
            Next::Event(ev) => match frames_for(&s.env, &ev) {
                Step::More(f) if f.is_empty() => continue,
                Step::More(f) => f,
                Step::Last(f) => {
                    s.guard.ended = true;
                    f
                }
            },
            Next::Canceled => {
                s.guard.ended = true;
                error_frames(&OpenAiError::canceled(&s.guard.task.id))
            }
            Next::Closed => {
                s.guard.ended = true;
                error_frames(&closed())
            }
        };
        return Some((frames, s));
    }
}

/// The SSE response: the opening frames at once, then one frame per token, then the finish
/// (and usage) chunks or an error line, then `[DONE]`. Keep-alive comments while it waits.
pub fn sse(rx: UnboundedReceiver<TaskEvent>, guard: DisconnectGuard, env: Envelope) -> Response {
    let opening = env.opening();
    let frames = stream::iter([opening])
        .chain(stream::unfold(Streaming { rx, guard, env }, step))
        .flat_map(|frames| {
            stream::iter(
                frames
                    .into_iter()
                    .map(|f| Ok::<_, Infallible>(Event::default().data(f))),
            )
        });
    Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}
