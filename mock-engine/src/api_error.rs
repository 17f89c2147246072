//! The one error body every endpoint returns, in llama-server's shape:
//! `{"error":{"code":<status>,"message":"…","type":"…"}}` (which the OpenAI SDK also reads).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// Extra fields for `exceed_context_size_error`: (n_prompt_tokens, n_ctx).
    context: Option<(u32, u32)>,
}

impl ApiError {
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            context: None,
        }
    }

    /// 501, as llama-server answers a feature it was not started with.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_IMPLEMENTED,
            kind: "not_supported_error",
            message: message.into(),
            context: None,
        }
    }

    pub fn loading() -> Self {
        Self::unavailable("Loading model")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable_error",
            message: message.into(),
            context: None,
        }
    }

    pub fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message: format!("File Not Found: {path}"),
            context: None,
        }
    }

    pub fn exceeds_context(n_prompt_tokens: u32, n_ctx: u32) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "exceed_context_size_error",
            message: format!(
                "the request exceeds the available context size ({n_prompt_tokens} prompt tokens, {n_ctx} in a slot), try increasing it"
            ),
            context: Some((n_prompt_tokens, n_ctx)),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.status.as_u16(), "message": self.message, "type": self.kind });
        if let Some((n_prompt_tokens, n_ctx)) = self.context {
            error["n_prompt_tokens"] = json!(n_prompt_tokens);
            error["n_ctx"] = json!(n_ctx);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_matches_llama_servers_body() {
        let e = ApiError::loading();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.body(),
            json!({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})
        );
    }

    #[test]
    fn context_errors_carry_the_counts() {
        let body = ApiError::exceeds_context(9, 4).body();
        assert_eq!(body["error"]["type"], "exceed_context_size_error");
        assert_eq!(
            (
                body["error"]["n_prompt_tokens"].as_u64(),
                body["error"]["n_ctx"].as_u64()
            ),
            (Some(9), Some(4))
        );
    }
}
