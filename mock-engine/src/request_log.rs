//! The request report: the last [`REQUEST_LOG_CAPACITY`] POST bodies sent to the generation,
//! embedding and utility routes, served oldest first at `GET /debug/requests`, so that tests can
//! check that a relay passed request fields through unchanged. With each body go the W3C
//! trace headers it came with ([`RECORDED_HEADERS`]: `traceparent`, `tracestate`), so a test
//! can check that a trace reached the engine; no other header is kept.
//!
//! It keeps bodies as received (JSON when they parse, else the raw text as a JSON string) and
//! never alters the request the handlers see. It is bounded: old entries fall off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
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

/// The request headers kept with a body.
pub const RECORDED_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// One kept request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub path: String,
    pub body: Value,
    /// Its [`RECORDED_HEADERS`] that were sent, by name.
    pub headers: serde_json::Map<String, Value>,
}

/// A bounded, thread-safe list of recent request bodies.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub fn record(&self, path: &str, headers: &HeaderMap, body: &[u8]) {
        let headers = RECORDED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?;
                Some((
                    name.to_string(),
                    Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
                ))
            })
            .collect();
        let body =
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == REQUEST_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(RecordedRequest {
            path: path.to_owned(),
            body,
            headers,
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
    state.requests.record(&path, &parts.headers, &bytes);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// `GET /debug/requests`: `[{"path": …, "body": …}, …]`, oldest first; `"headers":
/// {"traceparent": …}` with a request that sent trace headers.
pub async fn debug_requests(State(state): State<Arc<AppState>>) -> Json<Value> {
    let entries: Vec<Value> = state
        .requests
        .snapshot()
        .into_iter()
        .map(|entry| {
            let mut report = json!({ "path": entry.path, "body": entry.body });
            if !entry.headers.is_empty() {
                report["headers"] = Value::Object(entry.headers);
            }
            report
        })
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
            log.record("/completion", &HeaderMap::new(), format!("{{\"n\":{i}}}").as_bytes());
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
        log.record("/tokenize", &HeaderMap::new(), b"not json");
        assert_eq!(log.snapshot()[0].body, json!("not json"));
    }

    #[test]
    fn only_the_trace_headers_are_kept() {
        let log = RequestLog::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        log.record("/completion", &headers, b"{}");
        let kept = &log.snapshot()[0].headers;
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept["traceparent"],
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
