//! The OpenAI-compatible routes (`/v1/models`, `/v1/chat/completions`, `/v1/completions`):
//! thin handlers that map a body with [`crate::openai`], admit it through the same
//! [`DataPlane`](crate::tasks::DataPlane) as `/v2/tasks`, and answer in OpenAI's shapes.
//! Every failure is an [`OpenAiError`]; a reply's task id is in `X-Llorch-Task-Id` (usable with
//! `/v2/tasks/{id}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::{ErrorCode, TaskError, TaskRequest};

use crate::AppState;
use crate::engine::Prompt;
use crate::openai::request::{Endpoint, OpenAiRequest, map_request, resolve_target};
use crate::openai::response::Envelope;
use crate::openai::stream::{DisconnectGuard, collect, sse};
use crate::openai::{OpenAiError, models};
use crate::tasks::pool_view::{PoolView, choose_pool};
use crate::tasks::validate::estimate_tokens;

/// Response header carrying the task behind a reply.
pub const TASK_ID_HEADER: &str = "x-llorch-task-id";

/// `GET /v1/models`.
pub(crate) async fn list_models(State(state): State<AppState>) -> Response {
    Json(models::list(&state.current())).into_response()
}

/// `GET /v1/models/{id}`.
pub(crate) async fn get_model(State(state): State<AppState>, id: Result<Path<String>, PathRejection>) -> Response {
    let Path(id) = match id {
        Ok(id) => id,
        Err(e) => return OpenAiError::invalid(Some("model"), e.body_text()).into_response(),
    };
    match models::entry(&state.current(), &id) {
        Some(entry) => Json(entry).into_response(),
        None => OpenAiError {
            status: StatusCode::NOT_FOUND,
            code: Some(ErrorCode::PoolUnavailable),
            ..OpenAiError::invalid(
                Some("model"),
                format!("no pool `{id}` that can serve; see GET /v1/models"),
            )
        }
        .into_response(),
    }
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(Endpoint::Chat, state, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(Endpoint::Completions, state, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Any other path under `/v1`.
pub(crate) async fn not_found(uri: Uri) -> Response {
    OpenAiError {
        status: StatusCode::NOT_FOUND,
        ..OpenAiError::invalid(
            None,
            format!(
                "no route for `{}`; served here: GET /v1/models, POST /v1/chat/completions, POST /v1/completions",
                uri.path()
            ),
        )
    }
    .into_response()
}

fn prompt_of(task: &TaskRequest) -> Prompt {
    match (&task.prompt, &task.messages) {
        (Some(p), _) => Prompt::Text(p.clone()),
        (None, Some(m)) => Prompt::Chat(m.clone()),
        (None, None) => Prompt::Text(String::new()),
    }
}

fn internal(message: &str) -> OpenAiError {
    OpenAiError::from_task_error(&TaskError {
        code: ErrorCode::Internal,
        message: message.into(),
        retriable: true,
        retry_after_ms: None,
        policy_label: None,
        engine: None,
    })
}

async fn complete(
    endpoint: Endpoint,
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let dp = state.data.clone().ok_or_else(OpenAiError::no_data_plane)?;
    let body = body.map_err(|e| OpenAiError {
        status: e.status(),
        ..OpenAiError::invalid(None, format!("request body: {}", e.body_text()))
    })?;
    let req: OpenAiRequest =
        serde_json::from_slice(&body).map_err(|e| OpenAiError::invalid(None, format!("request body: {e}")))?;
    let header_priority = match headers.get("x-priority") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| OpenAiError::invalid(Some("priority"), "header `X-Priority` is not text"))?,
        ),
    };
    let snapshot = state.current();
    let target = resolve_target(req.model.as_deref(), models::pool_names(&snapshot).into_iter());
    let mut mapped = map_request(endpoint, req, target, header_priority)?;
    if mapped.task.max_tokens == 0 {
        let pool = choose_pool(&snapshot, &mapped.task).map_err(OpenAiError::from_refusal)?;
        let view = PoolView::read(&snapshot, &pool).map_err(OpenAiError::from_refusal)?;
        mapped.fill_default_max_tokens(view.ctx_size, estimate_tokens(&prompt_of(&mapped.task)));
    }
    let correlation_id = crate::correlation::client_supplied(&headers).map(|id| id.to_string());
    let admitted = dp
        .submit_with(mapped.task.clone(), correlation_id)
        .await
        .map_err(OpenAiError::from_refusal)?;
    let task = dp
        .task(&admitted.task_id)
        .ok_or_else(|| internal("the admitted task vanished"))?;
    // From here on, a client that goes away cancels the task.
    let guard = DisconnectGuard::new(task.clone(), dp);
    let rx = task
        .take_events()
        .ok_or_else(|| internal("the task's stream is already being read"))?;
    let env = Envelope {
        fingerprint: PoolView::read(&snapshot, &task.pool)
            .ok()
            .map(|v| format!("{}@{}", v.engine, v.engine_version)),
        max_tokens: task.request.generate.max_tokens,
        prompt_tokens: task.request.prompt_tokens,
        include_usage: mapped.include_usage,
        ..Envelope::new(endpoint, &task.id, mapped.model.unwrap_or_else(|| task.pool.clone()))
    };
    let mut response = if mapped.stream {
        sse(rx, guard, env)
    } else {
        let (text, end) = collect(rx, guard).await?;
        Json(env.completion(&text, &end)).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&task.id) {
        response.headers_mut().insert(TASK_ID_HEADER, v);
    }
    Ok(response)
}
