//! The native task API (`/v2/tasks`, requirements §4): submit (202, or an [`ApiError`] before
//! any stream exists — 429 with `Retry-After` and `X-Backoff-Ms` when the queue is full),
//! cancel, status, and capabilities discovery. A task's SSE stream is `task_stream`'s.
//!
//! A task carries the `X-Correlation-Id` of the request that submitted it. Its own routes
//! (status, stream, cancel) answer with that id when the client sends none, so the stream a
//! client reads and the daemon's log lines about the task can be matched.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::{CancelAck, DATA_API_VERSION, ErrorCode, TaskRequest};
use serde_json::json;

use crate::AppState;
use crate::correlation::{self, CorrelationId};
use crate::error::ApiError;
use crate::extract::{ApiPath, body_error};
use crate::front_door::Identity;
use crate::tasks::log::CancelReason;
use crate::tasks::log::Requester;
use crate::tasks::task::TaskState;
use crate::tasks::{DataPlane, policy_label};
use crate::trace_context::{RemoteParent, TRACERESPONSE, traceparent_of};

pub(crate) fn data_plane(state: &AppState) -> Result<Arc<DataPlane>, ApiError> {
    state
        .data
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "this server has no data plane"))
}

pub(crate) fn no_task(id: &str) -> ApiError {
    ApiError::invalid(format!("no task `{id}` (finished tasks are kept 5 minutes)")).status(StatusCode::NOT_FOUND)
}

/// The task `id`, if `identity` submitted it: another identity's task is 403 (its stream,
/// status and cancel belong to its submitter; without tokens everyone is `localhost`).
pub(crate) fn own_task(dp: &DataPlane, id: &str, identity: &Identity) -> Result<Arc<TaskState>, ApiError> {
    let task = dp.task(id).ok_or_else(|| no_task(id))?;
    if task.meta.identity != *identity {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("task `{id}` was submitted by another identity; only its submitter can read or cancel it"),
        ));
    }
    Ok(task)
}

/// Answers with the task's correlation id unless the client sent one (which the middleware
/// echoes).
pub(crate) fn with_task_correlation(mut response: Response, request: &HeaderMap, task: &TaskState) -> Response {
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
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let dp = data_plane(&state)?;
    let correlation_id = correlation_id.map(|Extension(CorrelationId(id))| id);
    let parent = RemoteParent::from_headers(&headers);
    let parsed = body.map_err(body_error).and_then(|b| {
        serde_json::from_slice::<TaskRequest>(&b).map_err(|e| ApiError::invalid(format!("request body: {e}")))
    });
    let req = match parsed {
        Ok(r) => r,
        Err(refusal) => {
            let who = Requester {
                correlation_id: correlation_id.as_deref().unwrap_or_default(),
                session_id: None,
                identity: &identity,
            };
            dp.refused(&refusal, None, who);
            return Err(refusal);
        }
    };
    let admitted = dp.submit_with(req, correlation_id, identity, parent).await?;
    let mut headers = HeaderMap::new();
    if let Some(v) = dp.task(&admitted.task_id).and_then(|t| traceparent_of(&t.spans.task())) {
        headers.insert(TRACERESPONSE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&admitted.events_url) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(admitted)).into_response())
}

/// `GET /v2/tasks`: the caller's own tasks.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Result<Response, ApiError> {
    let dp = data_plane(&state)?;
    let own = dp.tasks().into_iter().filter(|t| t.meta.identity == identity);
    Ok(Json(own.map(|t| t.summary()).collect::<Vec<_>>()).into_response())
}

/// `GET /v2/tasks/{id}`.
pub(crate) async fn status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dp = data_plane(&state)?;
    let task = own_task(&dp, &id, &identity)?;
    Ok(with_task_correlation(
        Json(task.summary()).into_response(),
        &headers,
        &task,
    ))
}

/// `POST /v2/tasks/{id}/cancel`: once this answers, the task's stream carries no more tokens.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dp = data_plane(&state)?;
    let task = own_task(&dp, &id, &identity)?;
    let c = dp
        .cancel_because(&id, CancelReason::Requested)
        .ok_or_else(|| no_task(&id))?;
    let ack = CancelAck {
        task_id: id,
        state: c.state,
        previous_state: c.was,
        tokens_streamed: c.tokens_streamed,
    };
    Ok(with_task_correlation(Json(ack).into_response(), &headers, &task))
}

/// `GET /v2/meta/capabilities` (ORCH-3095/3096).
pub(crate) async fn capabilities(State(state): State<AppState>) -> Response {
    let snapshot = state.current();
    let pools: Vec<_> = snapshot
        .serving
        .iter()
        .filter_map(|p| Some((p, p.contract.as_ref()?)))
        .map(|(p, c)| {
            json!({
                "id": p.pool,
                "engine": p.engine,
                "engine_version": c.engine_version,
                "api": c.api,
                "model": p.model,
                "ctx_max": c.ctx_size,
                "max_tokens_out": c.ctx_size,
                "slots": p.slots_per_replica,
                "ready_replicas": p.replicas.len(),
                "workloads": ["completion", "chat"],
                "limits": { "queue_capacity": p.queue.capacity, "full_policy": policy_label(p.queue.full_policy) },
            })
        })
        .collect();
    Json(json!({
        "api_version": DATA_API_VERSION,
        // llama-orchd's own version (`orchctl version`); every crate shares the workspace's.
        "server_version": env!("CARGO_PKG_VERSION"),
        "pools": pools,
    }))
    .into_response()
}
