//! The one error type of the HTTP API. Every refusal and failure — a bad query, a full queue,
//! an engine that dropped a stream — is an [`ApiError`]: made once, with a stable
//! [`ErrorCode`], an HTTP status (the code's, unless the error sets its own), a message that
//! says what is wrong and what to do, and retry advice. It is rendered three ways:
//!
//! - the native JSON body ([`TaskError`]) of `/v2` and the other routes: [`IntoResponse`];
//! - OpenAI's `{"error": {message, type, code, param}}` body for `/v1`: [`OpenAi`];
//! - an SSE `error` event, native ([`ApiError::sse_native`]) or OpenAI ([`ApiError::sse_openai`]),
//!   when a stream fails after it began.
//!
//! The retry headers (`Retry-After` in whole seconds, `X-Backoff-Ms`, `retry-after-ms`, which
//! the official OpenAI SDKs honour to the millisecond) are made in one place, [`ApiError::headers`].
//! Internal details go to the log, never into a body.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::{ErrorCode, TaskError};
use serde_json::{Value, json};

/// Why a request failed.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    body: TaskError,
    /// The request field at fault, when one is (OpenAI's `param`).
    param: Option<String>,
    /// What the log gets for an internal error; never shown to the client.
    detail: Option<String>,
}

impl ApiError {
    /// An error with `code`'s status, not retriable.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            body: TaskError {
                code,
                message: message.into(),
                retriable: false,
                retry_after_ms: None,
                policy_label: None,
                engine: None,
            },
            param: None,
            detail: None,
        }
    }

    /// A task's error (raised after admission, e.g. by its engine), with its code's status.
    pub fn from_task_error(body: TaskError) -> Self {
        Self {
            status: status_of(body.code),
            body,
            param: None,
            detail: None,
        }
    }

    /// `400 INVALID_PARAMS`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, message)
    }

    /// `400 INVALID_PARAMS` blaming request field `param`.
    pub fn invalid_field(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message).param(param)
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `503 NOT_READY` while the controller has not finished its first scan.
    pub fn not_synced() -> Self {
        Self::new(
            ErrorCode::NotReady,
            "llama-orchd is still scanning manifests and containers; retry in a moment",
        )
    }

    /// `405 METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed: control-plane reads are GETs; the writes are POST /v2/tasks, POST|DELETE \
             /v2/pools/{id}/drain, POST /v2/pools/{id}/reload|wake|scale, POST /v2/manifests, DELETE \
             /v2/manifests/{kind}/{name} and POST /v2/models/{name}/pull (see docs/api.md)",
        )
    }

    /// `500 INTERNAL`: the client is told to look at the log, where `detail` goes.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(ErrorCode::Internal, "internal error; see the daemon's log for details")
        }
    }

    /// Answers with `status` instead of the code's.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A retry of the same request may succeed.
    pub fn retriable(mut self) -> Self {
        self.body.retriable = true;
        self
    }

    /// Retry in `ms` (measured, or a deadline); also marks the error retriable.
    pub fn retry_after_ms(mut self, ms: u64) -> Self {
        self.body.retriable = true;
        self.body.retry_after_ms = Some(ms);
        self
    }

    /// The full-queue or budget policy that refused the request.
    pub fn policy(mut self, label: &str) -> Self {
        self.body.policy_label = Some(label.to_string());
        self
    }

    /// The engine involved (`name version`).
    pub fn engine(mut self, engine: &str) -> Self {
        self.body.engine = Some(engine.to_string());
        self
    }

    /// Blames request field `param`.
    pub fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.body.code
    }

    /// The HTTP status it answers with.
    pub fn http_status(&self) -> StatusCode {
        self.status
    }

    /// The native body (also a task's recorded error and its SSE `error` payload).
    pub fn body(&self) -> &TaskError {
        &self.body
    }

    /// The native body, by value.
    pub fn into_body(self) -> TaskError {
        self.body
    }

    /// The request field it blames, if any.
    pub fn field(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.body.message
    }

    /// `Retry-After` (whole seconds, at least 1), `X-Backoff-Ms` and `retry-after-ms`, when
    /// the error carries retry advice; none otherwise.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let Some(ms) = self.body.retry_after_ms else {
            return headers;
        };
        let secs = ms.div_ceil(1000).max(1).to_string();
        for (name, value) in [
            (header::RETRY_AFTER.as_str(), secs),
            ("x-backoff-ms", ms.to_string()),
            ("retry-after-ms", ms.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        headers
    }

    /// OpenAI's error body: its four fields plus our retry advice.
    pub fn openai_body(&self) -> Value {
        let mut error = json!({
            "message": self.body.message,
            "type": openai_type(self.status),
            "code": self.body.code.as_str(),
            "param": self.param,
            "retriable": self.body.retriable,
        });
        if let Some(ms) = self.body.retry_after_ms {
            error["retry_after_ms"] = json!(ms);
        }
        if let Some(p) = &self.body.policy_label {
            error["policy_label"] = json!(p);
        }
        json!({ "error": error })
    }

    /// The native SSE `error` event, framed, appended to `out`.
    pub fn sse_native(&self, out: &mut Vec<u8>) {
        crate::sse::frame(out, Some("error"), &self.body);
    }

    /// The OpenAI stream's error line, framed, appended to `out`.
    pub fn sse_openai(&self, out: &mut Vec<u8>) {
        crate::sse::frame(out, None, &self.openai_body());
    }

    fn log(&self) {
        if let Some(detail) = &self.detail {
            tracing::error!(code = self.body.code.as_str(), detail = %detail, "request failed");
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.body.code.as_str(),
            self.status.as_u16(),
            self.body.message
        )
    }
}

impl std::error::Error for ApiError {}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// OpenAI's `type` for a status.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

/// The native rendering: `status`, retry headers, the [`TaskError`] JSON body.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        (self.status, self.headers(), Json(self.body)).into_response()
    }
}

/// The OpenAI rendering of an [`ApiError`], for `/v1` routes.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAi(pub ApiError);

impl From<ApiError> for OpenAi {
    fn from(e: ApiError) -> Self {
        OpenAi(e)
    }
}

impl IntoResponse for OpenAi {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log();
        (e.status, e.headers(), Json(e.openai_body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn full_queue() -> ApiError {
        ApiError::new(ErrorCode::AdmissionReject, "queue full")
            .retry_after_ms(1500)
            .policy("reject")
    }

    async fn body_of(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn one_error_renders_as_native_json_openai_json_and_both_sse_events() {
        let e = full_queue();

        let native = e.clone().into_response();
        assert_eq!(native.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(native.headers()["retry-after"], "2");
        assert_eq!(native.headers()["x-backoff-ms"], "1500");
        assert_eq!(native.headers()["retry-after-ms"], "1500");
        let body = body_of(native).await;
        assert_eq!(body["code"], "ADMISSION_REJECT");
        assert_eq!(body["message"], "queue full");
        assert_eq!(body["retriable"], true);
        assert_eq!(body["retry_after_ms"], 1500);
        assert_eq!(body["policy_label"], "reject");

        let openai = OpenAi(e.clone()).into_response();
        assert_eq!(openai.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(openai.headers()["retry-after"], "2", "same headers, made once");
        assert_eq!(openai.headers()["retry-after-ms"], "1500");
        let body = body_of(openai).await;
        assert_eq!(body["error"]["code"], "ADMISSION_REJECT");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["message"], "queue full");
        assert_eq!(body["error"]["retry_after_ms"], 1500);
        assert!(body["error"]["param"].is_null());

        let mut native_sse = Vec::new();
        e.sse_native(&mut native_sse);
        let native_sse = String::from_utf8(native_sse).unwrap();
        let (head, data) = native_sse.split_once('\n').unwrap();
        assert_eq!(head, "event: error");
        let data: Value = serde_json::from_str(data.trim_end().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data, serde_json::to_value(e.body()).unwrap());
        assert!(native_sse.ends_with("\n\n"));

        let mut openai_sse = Vec::new();
        e.sse_openai(&mut openai_sse);
        let openai_sse = String::from_utf8(openai_sse).unwrap();
        let data: Value = serde_json::from_str(openai_sse.trim_end().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data, e.openai_body());
    }

    #[test]
    fn retry_after_is_at_least_one_second_and_absent_without_advice() {
        let e = ApiError::new(ErrorCode::AdmissionReject, "x").retry_after_ms(40);
        assert_eq!(e.headers()["retry-after"], "1");
        assert!(ApiError::invalid("x").headers().is_empty());
    }

    #[test]
    fn the_status_follows_the_code_unless_set() {
        assert_eq!(
            ApiError::new(ErrorCode::WorkerReset, "x").http_status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ApiError::new(ErrorCode::DecodeTimeout, "x").http_status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ApiError::new(ErrorCode::PoolDraining, "x").http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::new(ErrorCode::PoolUnavailable, "x").http_status(),
            StatusCode::NOT_FOUND
        );
        let e = ApiError::new(ErrorCode::InvalidParams, "x").status(StatusCode::CONFLICT);
        assert_eq!(e.http_status(), StatusCode::CONFLICT);
        assert_eq!(
            OpenAi(ApiError::new(ErrorCode::Internal, "x")).0.openai_body()["error"]["type"],
            "server_error"
        );
    }

    #[tokio::test]
    async fn an_internal_error_shows_no_detail() {
        let r = ApiError::internal("disk on fire at /secret/path").into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(r).await;
        assert_eq!(body["code"], "INTERNAL");
        assert!(!body.to_string().contains("/secret/path"));
    }

    #[test]
    fn invalid_params_name_the_field_for_openai() {
        let body = ApiError::invalid_field("n", "only n=1").openai_body();
        assert_eq!(body["error"]["code"], "INVALID_PARAMS");
        assert_eq!(body["error"]["param"], "n");
        assert_eq!(body["error"]["message"], "only n=1");
    }
}
