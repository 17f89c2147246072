//! `GET /v2/tasks/{id}/events`: a task's SSE stream in native frames — `started`,
//! `metrics`*, `token`*, then `end` (with the engine's `finish_reason` and `tokens_in`) or
//! `error` — over the shared
//! [`TaskStream`](crate::tasks::stream::TaskStream), which owns the cancel gate, the
//! disconnect guard, the keep-alive and the batching (every token ready at a wake-up leaves in
//! one write).

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::tasks::{data_plane, own_task, with_task_correlation};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::front_door::Identity;
use crate::tasks::native_frames;
use crate::tasks::stream::{Frames, TaskStream};
use crate::tasks::task::TaskEvent;

/// The native frames: `event: <name>` and the payload as JSON, one event per token.
struct Native;

impl Frames for Native {
    fn event(&mut self, ev: &TaskEvent, out: &mut Vec<u8>) {
        native_frames::render(ev, out);
    }
}

/// `GET /v2/tasks/{id}/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dp = data_plane(&state)?;
    let task = own_task(&dp, &id, &identity)?;
    let stream = TaskStream::open(dp, task.clone())?;
    Ok(with_task_correlation(stream.sse(Native), &headers, &task))
}
