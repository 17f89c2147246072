//! The one error type of the HTTP API. Each variant maps to an HTTP status and a stable `code`
//! in an [`ApiErrorBody`]; messages say what is wrong and what to do. Internal details are
//! logged, never put in a body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llorch_manifests::api::ApiErrorBody;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The named object, replica or route does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A query parameter or path segment is malformed or out of range.
    #[error("{0}")]
    InvalidParams(String),
    /// The controller has not finished its first scan, so an answer would be a guess.
    #[error("{0}")]
    NotReady(String),
    /// The log source could not produce the replica's logs.
    #[error("{0}")]
    LogsUnavailable(String),
    /// The route exists but not for this method.
    #[error(
        "method not allowed: control-plane reads are GETs; the writes are POST /v2/tasks, POST|DELETE /v2/pools/{{id}}/drain, POST /v2/pools/{{id}}/reload and POST /v2/models/{{name}}/pull (see docs/api.md)"
    )]
    MethodNotAllowed,
    /// A bug or an unexpected failure; the detail is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code (also usable as a metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::InvalidParams(_) => "INVALID_PARAMS",
            ApiError::NotReady(_) => "NOT_READY",
            ApiError::LogsUnavailable(_) => "LOGS_UNAVAILABLE",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidParams(_) => StatusCode::BAD_REQUEST,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::LogsUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ApiErrorBody {
        let message = match self {
            ApiError::Internal(_) => "internal error; see the daemon's log for details".to_string(),
            other => other.to_string(),
        };
        ApiErrorBody {
            code: self.code().to_string(),
            message,
        }
    }

    /// The message used while the controller has not finished its first scan.
    pub fn not_synced() -> Self {
        ApiError::NotReady("llama-orchd is still scanning manifests and containers; retry in a moment".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(code = self.code(), detail = %detail, "request failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}
