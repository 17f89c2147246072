//! `X-Correlation-Id` on every response (OC-CTRL-2052): a well-formed id sent by the client is
//! echoed, otherwise one is generated. The id is also put in the request's extensions for
//! handlers and logs.
//!
//! A handler may answer with an id of its own when the client sent none: the task routes use
//! the id the task was submitted with, so a task's stream carries the same id as its logs. The
//! middleware leaves such a header alone.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header's name.
pub const HEADER: &str = "x-correlation-id";

/// Longest client-supplied id that is echoed; longer ones are replaced.
pub const MAX_LEN: usize = 128;

/// The request's correlation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// True for ids safe to echo and log: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh id: 16 hex digits, unique within this process and unpredictable across processes.
pub fn generate() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = SEED.get_or_init(RandomState::new).hash_one(n);
    format!("{hash:016x}")
}

/// The well-formed id the client sent, if any.
pub fn client_supplied(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
}

/// The middleware.
pub async fn correlation_id(mut request: Request, next: Next) -> Response {
    let id = client_supplied(request.headers()).map_or_else(generate, String::from);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if !response.headers().contains_key(HEADER)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(HEADER, value);
    }
    let echoed = response
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&id);
    tracing::debug!(correlation_id = %echoed, %method, %path, status = response.status().as_u16(), "request");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_unsafe_characters_or_excess_length_are_not_echoed() {
        assert!(is_acceptable("req-42.a:b_c"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("new\nline"));
        assert!(!is_acceptable(&"x".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn only_a_well_formed_header_counts_as_client_supplied() {
        let mut headers = HeaderMap::new();
        assert_eq!(client_supplied(&headers), None);
        headers.insert(HEADER, HeaderValue::from_static("bad id"));
        assert_eq!(client_supplied(&headers), None);
        headers.insert(HEADER, HeaderValue::from_static("agent-7:turn-2"));
        assert_eq!(client_supplied(&headers), Some("agent-7:turn-2"));
    }

    #[test]
    fn generated_ids_are_acceptable_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_acceptable(&a));
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
