//! An admitted task's reply to an OpenAI client, over the shared
//! [`TaskStream`](crate::tasks::stream::TaskStream) (which owns the cancel gate, the
//! disconnect guard and the keep-alive): as SSE `data:` frames ending in `[DONE]`
//! ([`OpenAiFrames`]), or collected into one reply ([`collect`]).

use llorch_manifests::task::{End, ErrorCode};

use super::reply::{Collected, Collector, Reply};
use super::response::{Envelope, Step, error_frames, frames_for};
use crate::error::ApiError;
use crate::sse;
use crate::tasks::stream::{Frames, Next, TaskStream};
use crate::tasks::task::{TaskEvent, TaskState};

fn closed() -> ApiError {
    ApiError::new(ErrorCode::Internal, "the task's event stream closed without an end").retriable()
}

/// A task canceled through `POST /v2/tasks/{id}/cancel` while an OpenAI client waited.
fn canceled(task_id: &str) -> ApiError {
    ApiError::new(ErrorCode::Canceled, format!("task `{task_id}` was canceled"))
}

/// Collects the whole reply and its `end`, or the error that stopped it.
pub async fn collect(mut stream: TaskStream) -> Result<(Reply, End), ApiError> {
    let mut collector = Collector::default();
    let mut events = Vec::new();
    loop {
        match stream.next_batch(&mut events).await {
            Next::Events => {
                for ev in events.drain(..) {
                    match collector.push(ev) {
                        None => {}
                        Some(Collected::Done(text, end)) => return Ok((text, end)),
                        Some(Collected::Failed(e)) => return Err(ApiError::from_task_error(e)),
                    }
                }
            }
            Next::Canceled => return Err(canceled(&stream.task().id)),
            Next::Closed => return Err(closed()),
        }
    }
}

/// OpenAI's stream frames: the opening role chunk, one chunk per token, then the finish
/// (and usage) chunks or an error line, then `[DONE]`.
pub struct OpenAiFrames {
    env: Envelope,
}

impl OpenAiFrames {
    /// Frames for the reply described by `env`.
    pub fn new(env: Envelope) -> Self {
        Self { env }
    }
}

fn write(out: &mut Vec<u8>, frames: Vec<String>) {
    for f in frames {
        sse::raw(out, &f);
    }
}

impl Frames for OpenAiFrames {
    fn opening(&mut self, out: &mut Vec<u8>) {
        write(out, self.env.opening());
    }

    fn event(&mut self, ev: &TaskEvent, out: &mut Vec<u8>) {
        match frames_for(&self.env, ev) {
            Step::More(f) | Step::Last(f) => write(out, f),
        }
    }

    fn canceled(&mut self, task: &TaskState, out: &mut Vec<u8>) {
        write(out, error_frames(&canceled(&task.id)));
    }

    fn closed(&mut self, out: &mut Vec<u8>) {
        write(out, error_frames(&closed()));
    }
}
