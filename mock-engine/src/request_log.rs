//! The request report: the last [`REQUEST_LOG_CAPACITY`] POST bodies sent to the generation,
//! embedding and utility routes, served oldest first at `GET /debug/requests`, so that tests can
//! check that a relay passed request fields through unchanged.
//!
//! It keeps bodies as received (JSON when they parse, else the raw text as a JSON string) and
//! never alters the request the handlers see. It is bounded: old entries fall off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::state::AppState;

/// How many bodies the report keeps.
pub const REQUEST_LOG_CAPACITY: usize = 64;

/// Bodies larger than this are not buffered for the report (nor accepted).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The routes whose POST bodies are kept.
pub const RECORDED_PATHS: [&str; 10] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/embeddings",
    "/completion",
    "/tokenize",
    "/apply-template",
    "/generate",
    "/generate_stream",
    "/detokenize",
];

/// One kept request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub path: String,
    pub body: Value,
}

/// A bounded, thread-safe list of recent request bodies.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub fn record(&self, path: &str, body: &[u8]) {
        let body =
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == REQUEST_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(RecordedRequest {
            path: path.to_owned(),
            body,
        });
    }

    /// The kept requests, oldest first.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }
}

/// Middleware: keeps the body of each POST to a [`RECORDED_PATHS`] route, then passes the
/// request on with the same bytes.
pub async fn record_bodies(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if request.method() != Method::POST || !RECORDED_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::invalid_request(format!("request body could not be read: {err}")).into_response(),
    };
    state.requests.record(&path, &bytes);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// `GET /debug/requests`: `[{"path": …, "body": …}, …]`, oldest first.
pub async fn debug_requests(State(state): State<Arc<AppState>>) -> Json<Value> {
    let entries: Vec<Value> = state
        .requests
        .snapshot()
        .into_iter()
        .map(|entry| json!({ "path": entry.path, "body": entry.body }))
        .collect();
    Json(Value::Array(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_entries_oldest_first() {
        let log = RequestLog::default();
        for i in 0..REQUEST_LOG_CAPACITY + 3 {
            log.record("/completion", format!("{{\"n\":{i}}}").as_bytes());
        }
        let kept = log.snapshot();
        assert_eq!(kept.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(kept[0].body, json!({"n": 3}));
        assert_eq!(
            kept[REQUEST_LOG_CAPACITY - 1].body,
            json!({"n": REQUEST_LOG_CAPACITY + 2})
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text() {
        let log = RequestLog::default();
        log.record("/tokenize", b"not json");
        assert_eq!(log.snapshot()[0].body, json!("not json"));
    }
}
