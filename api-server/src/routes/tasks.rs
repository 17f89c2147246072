//! The native task API (`/v2/tasks`, requirements §4): submit (202, or an HTTP error before
//! any stream exists — 429 with `Retry-After` and `X-Backoff-Ms` when the queue is full),
//! the SSE stream of a task, cancel, status, and capabilities discovery.
//!
//! A task carries the `X-Correlation-Id` of the request that submitted it. Its own routes
//! (status, stream, cancel) answer with that id when the client sends none, so the stream a
//! client reads and the daemon's log lines about the task can be matched.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use llorch_manifests::task::{DATA_API_VERSION, ErrorCode, TaskError, TaskRequest};
use serde_json::json;

use crate::AppState;
use crate::correlation::{self, CorrelationId};
use crate::tasks::log::CancelReason;
use crate::tasks::task::{TaskEvent, TaskState};
use crate::tasks::{DataPlane, Refusal};

/// Keep-alive comments while a task waits (proxies drop idle connections).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

fn refusal_response(r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if let Some(ms) = r.error.retry_after_ms {
        if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
            headers.insert("x-backoff-ms", v);
        }
    }
    (status, headers, Json(r.error)).into_response()
}

fn error(status: u16, code: ErrorCode, message: String) -> Response {
    refusal_response(Refusal {
        status,
        error: TaskError {
            code,
            message,
            retriable: false,
            retry_after_ms: None,
            policy_label: None,
            engine: None,
        },
    })
}

fn data_plane(state: &AppState) -> Result<Arc<DataPlane>, Response> {
    state
        .data
        .clone()
        .ok_or_else(|| error(503, ErrorCode::Internal, "this server has no data plane".into()))
}

/// Answers with the task's correlation id unless the client sent one (which the middleware
/// echoes).
fn with_task_correlation(mut response: Response, request: &HeaderMap, task: &TaskState) -> Response {
    if correlation::client_supplied(request).is_none()
        && let Ok(v) = HeaderValue::from_str(&task.meta.correlation_id)
    {
        response.headers_mut().insert(correlation::HEADER, v);
    }
    response
}

/// `POST /v2/tasks`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    correlation_id: Option<Extension<CorrelationId>>,
    body: Bytes,
) -> Response {
    let dp = match data_plane(&state) {
        Ok(dp) => dp,
        Err(r) => return r,
    };
    let correlation_id = correlation_id.map(|Extension(CorrelationId(id))| id);
    let req: TaskRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let refusal = Refusal {
                status: 400,
                error: TaskError {
                    code: ErrorCode::InvalidParams,
                    message: format!("request body: {e}"),
                    retriable: false,
                    retry_after_ms: None,
                    policy_label: None,
                    engine: None,
                },
            };
            dp.refused(&refusal, None, correlation_id.as_deref().unwrap_or_default(), None);
            return refusal_response(refusal);
        }
    };
    match dp.submit_with(req, correlation_id).await {
        Ok(admitted) => {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&admitted.events_url) {
                headers.insert(header::LOCATION, v);
            }
            (StatusCode::ACCEPTED, headers, Json(admitted)).into_response()
        }
        Err(r) => refusal_response(r),
    }
}

/// `GET /v2/tasks`.
pub(crate) async fn list(State(state): State<AppState>) -> Response {
    match data_plane(&state) {
        Ok(dp) => Json(dp.tasks().iter().map(|t| t.summary()).collect::<Vec<_>>()).into_response(),
        Err(r) => r,
    }
}

/// `GET /v2/tasks/{id}`.
pub(crate) async fn status(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let dp = match data_plane(&state) {
        Ok(dp) => dp,
        Err(r) => return r,
    };
    match dp.task(&id) {
        Some(t) => with_task_correlation(Json(t.summary()).into_response(), &headers, &t),
        None => error(
            404,
            ErrorCode::InvalidParams,
            format!("no task `{id}` (finished tasks are kept 5 minutes)"),
        ),
    }
}

/// `POST /v2/tasks/{id}/cancel`: once this answers, the task's stream carries no more tokens.
pub(crate) async fn cancel(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let dp = match data_plane(&state) {
        Ok(dp) => dp,
        Err(r) => return r,
    };
    let Some(task) = dp.task(&id) else {
        return error(404, ErrorCode::InvalidParams, format!("no task `{id}`"));
    };
    match dp.cancel_because(&id, CancelReason::Requested) {
        Some(c) => with_task_correlation(
            Json(json!({
                "task_id": id,
                "state": c.state,
                "previous_state": c.was,
                "tokens_streamed": c.tokens_streamed,
            }))
            .into_response(),
            &headers,
            &task,
        ),
        None => error(404, ErrorCode::InvalidParams, format!("no task `{id}`")),
    }
}

/// Cancels the task when the client goes away before its stream ended.
struct DisconnectGuard {
    task: Arc<TaskState>,
    dp: Arc<DataPlane>,
    /// The stream yielded `end` or `error`: a client that leaves now leaves a finished task.
    delivered_final: bool,
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if !self.delivered_final && !self.task.phase().is_final() {
            self.dp.cancel_because(&self.task.id, CancelReason::Disconnected);
        }
    }
}

fn sse_event(ev: &TaskEvent) -> Event {
    let (name, data) = match ev {
        TaskEvent::Started(p) => ("started", serde_json::to_string(p)),
        TaskEvent::Metrics(p) => ("metrics", serde_json::to_string(p)),
        TaskEvent::Token(p) => ("token", serde_json::to_string(p)),
        TaskEvent::End(p) => ("end", serde_json::to_string(p)),
        TaskEvent::Error(p) => ("error", serde_json::to_string(p)),
    };
    Event::default().event(name).data(data.unwrap_or_default())
}

/// `GET /v2/tasks/{id}/events`: `started`, `metrics`*, `token`*, then `end` or `error`.
pub(crate) async fn events(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let dp = match data_plane(&state) {
        Ok(dp) => dp,
        Err(r) => return r,
    };
    let Some(task) = dp.task(&id) else {
        return error(404, ErrorCode::InvalidParams, format!("no task `{id}`"));
    };
    let Some(rx) = task.take_events() else {
        return error(
            409,
            ErrorCode::InvalidParams,
            format!("task `{id}`'s stream is already being read"),
        );
    };
    let guard = DisconnectGuard {
        task: task.clone(),
        dp,
        delivered_final: false,
    };
    let response = Sse::new(stream(rx, guard))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    with_task_correlation(response, &headers, &task)
}

fn stream(
    rx: tokio::sync::mpsc::UnboundedReceiver<TaskEvent>,
    guard: DisconnectGuard,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // One owned cancellation future per stream, kept in the unfold state (not one per event).
    let cancelled = Box::pin(guard.task.cancellation().cancelled_owned());
    futures_util::stream::unfold(
        (rx, guard, false, cancelled),
        |(mut rx, mut guard, ended, mut cancelled)| async move {
            if ended {
                return None;
            }
            let ev = tokio::select! {
                biased;
                _ = &mut cancelled => return None,
                ev = rx.recv() => ev?,
            };
            // Race-free cancel: a token passes the task's gate (which cancel also takes) before it
            // is emitted, so nothing follows an acknowledged cancel.
            let allowed = match ev {
                TaskEvent::Token(_) => guard.task.admit_token(),
                _ => !guard.task.is_canceled(),
            };
            if !allowed {
                return None;
            }
            let last = matches!(ev, TaskEvent::End(_) | TaskEvent::Error(_));
            guard.delivered_final |= last;
            Some((Ok(sse_event(&ev)), (rx, guard, last, cancelled)))
        },
    )
}

/// `GET /v2/meta/capabilities` (ORCH-3095/3096).
pub(crate) async fn capabilities(State(state): State<AppState>) -> Response {
    let snapshot = state.current();
    let pools: Vec<_> = snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == llorch_manifests::Kind::Pool)
        .filter_map(|o| crate::tasks::pool_view::PoolView::read(&snapshot, &o.object.name).ok())
        .map(|v| {
            json!({
                "id": v.name,
                "engine": v.engine,
                "engine_version": v.engine_version,
                "api": v.api,
                "model": v.model,
                "ctx_max": v.ctx_size,
                "max_tokens_out": v.ctx_size,
                "slots": v.slots,
                "ready_replicas": v.replicas.len(),
                "workloads": ["completion", "chat"],
                "limits": { "queue_capacity": v.queue.capacity, "full_policy": crate::tasks::policy_label(v.queue.full_policy) },
            })
        })
        .collect();
    Json(json!({ "api_version": DATA_API_VERSION, "pools": pools })).into_response()
}
