//! Errors in OpenAI's shape, `{"error": {"message", "type", "code", "param"}}`, carrying the
//! data plane's stable codes (`ADMISSION_REJECT`, `INVALID_PARAMS`, …) so a client can tell a
//! full queue from a bad request. The same body is an HTTP error before a stream exists and the
//! last `data:` line of a stream that fails after it began. A 429 carries `Retry-After`,
//! `X-Backoff-Ms` and `retry-after-ms` (which the official SDKs honour to the millisecond).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::{ErrorCode, TaskError};
use serde_json::{Value, json};

use crate::tasks::Refusal;

/// One error, ready to be an HTTP response or a stream's last frame.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAiError {
    /// HTTP status (before a stream exists).
    pub status: StatusCode,
    /// What happened and what to do.
    pub message: String,
    /// Our stable code; `None` only for a task canceled through the native API.
    pub code: Option<ErrorCode>,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// Whether retrying the same request may succeed.
    pub retriable: bool,
    /// When to retry.
    pub retry_after_ms: Option<u64>,
    /// The full-queue policy that refused the task.
    pub policy_label: Option<String>,
}

/// The HTTP status for a task error that carries no status of its own (one raised after
/// admission, e.g. by the engine).
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::AdmissionReject | ErrorCode::QueueFullDropLru => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InvalidParams => StatusCode::BAD_REQUEST,
        ErrorCode::PoolUnavailable => StatusCode::NOT_FOUND,
        ErrorCode::PoolUnready | ErrorCode::ReplicaExhausted | ErrorCode::PoolDraining => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::DecodeTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::WorkerReset => StatusCode::BAD_GATEWAY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's `type` for a status.
fn type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

impl OpenAiError {
    /// A 400 `INVALID_PARAMS` naming the field at fault.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: Some(ErrorCode::InvalidParams),
            param: param.map(str::to_string),
            retriable: false,
            retry_after_ms: None,
            policy_label: None,
        }
    }

    /// A server without a data plane.
    pub fn no_data_plane() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: Some(ErrorCode::Internal),
            ..Self::invalid(None, "this server has no data plane")
        }
    }

    /// A task error raised after admission (the status follows its code).
    pub fn from_task_error(e: &TaskError) -> Self {
        Self {
            status: status_for(e.code),
            message: e.message.clone(),
            code: Some(e.code),
            param: None,
            retriable: e.retriable,
            retry_after_ms: e.retry_after_ms,
            policy_label: e.policy_label.clone(),
        }
    }

    /// A refusal before enqueue, with its own status. A missing pool or model is blamed on
    /// `model`, the field that named it.
    pub fn from_refusal(r: Refusal) -> Self {
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut e = Self::from_task_error(&r.error);
        e.status = status;
        if r.error.code == ErrorCode::PoolUnavailable {
            e.param = Some("model".into());
        }
        e
    }

    /// A task canceled through `POST /v2/tasks/{id}/cancel` while an OpenAI client waited.
    pub fn canceled(task_id: &str) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: None,
            ..Self::invalid(None, format!("task `{task_id}` was canceled"))
        }
    }

    /// The JSON body: OpenAI's four fields plus our retry advice.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": type_for(self.status),
            "code": self.code.map(ErrorCode::as_str),
            "param": self.param,
            "retriable": self.retriable,
        });
        if let Some(ms) = self.retry_after_ms {
            error["retry_after_ms"] = json!(ms);
        }
        if let Some(p) = &self.policy_label {
            error["policy_label"] = json!(p);
        }
        json!({ "error": error })
    }

    /// `Retry-After` (whole seconds, at least 1), `X-Backoff-Ms` and `retry-after-ms`.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let Some(ms) = self.retry_after_ms else {
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
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, self.headers(), Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, code: ErrorCode, retry_after_ms: Option<u64>) -> Refusal {
        Refusal {
            status,
            error: TaskError {
                code,
                message: "queue full".into(),
                retriable: true,
                retry_after_ms,
                policy_label: Some("reject".into()),
                engine: None,
            },
        }
    }

    #[test]
    fn a_full_queue_is_a_429_rate_limit_error_with_our_code_and_retry_headers() {
        let e = OpenAiError::from_refusal(refusal(429, ErrorCode::AdmissionReject, Some(1500)));
        let body = e.body();
        assert_eq!(body["error"]["code"], "ADMISSION_REJECT");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["retry_after_ms"], 1500);
        assert_eq!(body["error"]["policy_label"], "reject");
        assert!(body["error"]["param"].is_null());
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(r.headers()["x-backoff-ms"], "1500");
        assert_eq!(r.headers()["retry-after-ms"], "1500");
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let r = OpenAiError::from_refusal(refusal(429, ErrorCode::AdmissionReject, Some(40))).into_response();
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn an_unknown_pool_or_model_is_a_404_blamed_on_model() {
        let e = OpenAiError::from_refusal(refusal(404, ErrorCode::PoolUnavailable, None));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body()["error"]["param"], "model");
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        assert!(e.into_response().headers().get("retry-after").is_none());
    }

    #[test]
    fn engine_failures_after_admission_map_to_gateway_statuses() {
        assert_eq!(status_for(ErrorCode::WorkerReset), StatusCode::BAD_GATEWAY);
        assert_eq!(status_for(ErrorCode::DecodeTimeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_for(ErrorCode::PoolUnready), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            OpenAiError::from_task_error(&refusal(0, ErrorCode::Internal, None).error).body()["error"]["type"],
            "server_error"
        );
    }

    #[test]
    fn invalid_params_name_the_field() {
        let body = OpenAiError::invalid(Some("n"), "only n=1").body();
        assert_eq!(body["error"]["code"], "INVALID_PARAMS");
        assert_eq!(body["error"]["param"], "n");
        assert_eq!(body["error"]["message"], "only n=1");
    }
}
