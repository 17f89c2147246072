//! The OpenAI-compatible routes (`/v1/models`, `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`):
//! thin handlers that map a body with [`crate::openai`], admit it through the same
//! [`DataPlane`](crate::tasks::DataPlane) as `/v2/tasks`, and answer in OpenAI's shapes.
//! Every failure is an [`ApiError`] rendered as [`OpenAi`]; a reply's task id is in
//! `X-Llorch-Task-Id` (usable with `/v2/tasks/{id}`).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::{ErrorCode, TaskRequest};

use crate::AppState;
use crate::engine::Prompt;
use crate::engine::fields::ClientFields;
use crate::error::{ApiError, OpenAi};
use crate::extract::body_error;
use crate::front_door::Identity;
use crate::openai::request::{Endpoint, map_request, parse, priority_of, resolve_target};
use crate::openai::response::Envelope;
use crate::openai::stream::{OpenAiFrames, collect};
use crate::openai::{embeddings, models};
use crate::tasks::route;
use crate::tasks::stream::TaskStream;
use crate::tasks::validate::estimate_tokens;
use crate::trace_context::{RemoteParent, TRACERESPONSE, traceparent_of};

/// Response header carrying the task behind a reply.
pub const TASK_ID_HEADER: &str = "x-llorch-task-id";

/// `GET /v1/models`.
pub(crate) async fn list_models(State(state): State<AppState>) -> Response {
    Json(models::list(&state.current())).into_response()
}

/// `GET /v1/models/{id}`.
pub(crate) async fn get_model(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, OpenAi> {
    let Path(id) = id.map_err(|e| ApiError::invalid_field("model", e.body_text()))?;
    let entry = models::entry(&state.current(), &id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PoolUnavailable,
            format!("no pool or model `{id}` that can serve; see GET /v1/models"),
        )
        .param("model")
    })?;
    Ok(Json(entry).into_response())
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAi> {
    Ok(complete(Endpoint::Chat, state, identity, headers, body).await?)
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAi> {
    Ok(complete(Endpoint::Completions, state, identity, headers, body).await?)
}

/// `POST /v1/embeddings`: queued and placed like any task, on a Pool with
/// `workload: embeddings`; the engine's answer is relayed whole, `model` echoed.
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAi> {
    Ok(embed(state, identity, headers, body).await?)
}

async fn embed(
    state: AppState,
    identity: Identity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let (req, fields) = embeddings::parse(&body)?;
    let priority = priority_of(req.priority.as_deref(), header_priority(&headers)?)?;
    let snapshot = state.current();
    let target = resolve_target(req.model.as_deref(), models::pool_names(&snapshot).into_iter());
    let echo = req.model.clone().filter(|m| !m.trim().is_empty());
    let task = embeddings::map_request(req, target, priority)?;
    let stream = admit(&state, task, fields, &headers, identity).await?;
    let task = stream.task().clone();
    let trace = traceparent_of(&task.spans.task());
    let (reply, _end) = collect(stream).await?;
    let mut answer = reply
        .embeddings
        .ok_or_else(|| ApiError::internal("the embeddings task ended without an answer"))?;
    if answer.is_object() {
        answer["model"] = echo.unwrap_or_else(|| task.pool.clone()).into();
    }
    Ok(with_trace(with_task_id(Json(answer).into_response(), &task.id), trace))
}

/// Admits `task` (relaying the client's `fields`) and opens its stream: from then on, a client
/// that goes away cancels it.
async fn admit(
    state: &AppState,
    mut task: TaskRequest,
    fields: ClientFields,
    headers: &HeaderMap,
    identity: Identity,
) -> Result<TaskStream, ApiError> {
    let dp = state
        .data
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "this server has no data plane"))?;
    task.record = header_record(headers)?;
    let correlation_id = crate::correlation::client_supplied(headers).map(|id| id.to_string());
    let parent = RemoteParent::from_headers(headers);
    let admitted = dp
        .submit_relaying(task, Some(fields), correlation_id, identity, parent)
        .await
        .map_err(blame_model)?;
    let task = dp
        .task(&admitted.task_id)
        .ok_or_else(|| ApiError::internal("the admitted task vanished"))?;
    TaskStream::open(dp, task)
}

/// `response` with the task behind it in [`TASK_ID_HEADER`].
fn with_task_id(mut response: Response, task_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(task_id) {
        response.headers_mut().insert(TASK_ID_HEADER, v);
    }
    response
}

/// `response` naming its task's trace in `traceresponse` (when traces are exported).
pub(crate) fn with_trace(mut response: Response, trace: Option<HeaderValue>) -> Response {
    if let Some(v) = trace {
        response.headers_mut().insert(TRACERESPONSE, v);
    }
    response
}

/// The `X-Priority` header, if any.
fn header_priority(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get("x-priority") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::invalid_field("priority", "header `X-Priority` is not text")),
    }
}

/// Header that opts a `/v1` request out of its job record: `X-Llorch-Record: off` (a `/v1`
/// body's own fields go to the engine, so the switch is a header).
pub const RECORD_HEADER: &str = "x-llorch-record";

/// The [`RECORD_HEADER`], if any: `off`/`false`/`0` or `on`/`true`/`1`.
fn header_record(headers: &HeaderMap) -> Result<Option<bool>, ApiError> {
    let Some(v) = headers.get(RECORD_HEADER) else {
        return Ok(None);
    };
    match v.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Ok("off" | "false" | "0") => Ok(Some(false)),
        Ok("on" | "true" | "1") => Ok(Some(true)),
        _ => Err(ApiError::invalid(
            "header `X-Llorch-Record` takes `off` (leave no job record) or `on`",
        )),
    }
}

/// Any other path under `/v1`.
pub(crate) async fn not_found(uri: Uri) -> OpenAi {
    OpenAi(
        ApiError::invalid(format!(
            "no route for `{}`; served here: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings",
            uri.path()
        ))
        .status(axum::http::StatusCode::NOT_FOUND),
    )
}

fn prompt_of(task: &TaskRequest) -> Prompt {
    match (&task.prompt, &task.messages) {
        (Some(p), _) => Prompt::Text(p.clone()),
        (None, Some(m)) => Prompt::Chat(m.clone()),
        (None, None) => Prompt::Text(String::new()),
    }
}

/// A refusal of the data plane; a missing pool or model is blamed on `model`, the field that
/// named it.
fn blame_model(e: ApiError) -> ApiError {
    if e.code() == ErrorCode::PoolUnavailable {
        e.param("model")
    } else {
        e
    }
}

async fn complete(
    endpoint: Endpoint,
    state: AppState,
    identity: Identity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let (req, fields) = parse(endpoint, &body)?;
    let header_priority = header_priority(&headers)?;
    let snapshot = state.current();
    let target = resolve_target(req.model.as_deref(), models::pool_names(&snapshot).into_iter());
    let mut mapped = map_request(endpoint, req, target, header_priority)?;
    if mapped.task.max_tokens == 0 {
        let pool =
            route::choose(&snapshot, mapped.task.pool.as_deref(), mapped.task.model.as_deref()).map_err(blame_model)?;
        if let Some(contract) = pool.contract.as_ref() {
            mapped.fill_default_max_tokens(contract.ctx_size, estimate_tokens(&prompt_of(&mapped.task)));
        }
    }
    let stream = admit(&state, mapped.task.clone(), fields, &headers, identity).await?;
    let task = stream.task().clone();
    let trace = traceparent_of(&task.spans.task());
    let fingerprint = snapshot
        .serving(&task.pool)
        .and_then(|p| Some(format!("{}@{}", p.engine, p.contract.as_ref()?.engine_version)));
    let env = Envelope {
        fingerprint,
        include_usage: mapped.include_usage,
        ..Envelope::new(endpoint, &task.id, mapped.model.unwrap_or_else(|| task.pool.clone()))
    };
    let response = if mapped.stream {
        stream.sse(OpenAiFrames::new(env))
    } else {
        let (reply, end) = collect(stream).await?;
        Json(env.completion(reply, &end)).into_response()
    };
    Ok(with_trace(with_task_id(response, &task.id), trace))
}
