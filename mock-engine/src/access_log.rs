//! One stderr line per request — method, path, status, tokens generated, duration — so that
//! `docker logs` tells what the engine did. Streamed responses are logged when the stream ends
//! (or the client hangs up), so the line carries the final token count. Successful `/health`
//! probes and the orchestrator's `GET /metrics` and `/slots` readings are not logged.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::Stream;

/// Tokens generated for one request; handlers find it in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct TokenTally(Arc<AtomicU64>);

impl TokenTally {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Middleware: installs a [`TokenTally`] and logs the request when its response is done.
/// The orchestrator's periodic reads: health and KV-cache usage.
fn is_probe(method: &Method, path: &str) -> bool {
    path == "/health" || (method == Method::GET && (path == "/metrics" || path == "/slots"))
}

pub async fn log_requests(mut request: Request, next: Next) -> Response {
    let line = LogLine {
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        started: Instant::now(),
        tally: TokenTally::default(),
    };
    request.extensions_mut().insert(line.tally.clone());
    let response = next.run(request).await;
    let status = response.status();
    // Successful health probes arrive every second from the orchestrator, and its KV-cache
    // readings (`/metrics`, `/slots`) every few: keep them out of the log so its tail shows
    // what the engine did.
    if is_probe(&line.method, &line.path) && status.is_success() {
        return response;
    }
    if response.body().size_hint().exact().is_some() {
        line.print(status, "");
        return response;
    }
    let (parts, body) = response.into_parts();
    let logged = LoggedStream {
        inner: body.into_data_stream(),
        line: Some((line, status)),
        finished: false,
    };
    Response::from_parts(parts, Body::from_stream(logged))
}

struct LogLine {
    method: Method,
    path: String,
    started: Instant,
    tally: TokenTally,
}

impl LogLine {
    fn print(&self, status: StatusCode, note: &str) {
        eprintln!(
            "srv  log_server_r: request: {} {} {} tokens={} ms={}{}",
            self.method,
            self.path,
            status.as_u16(),
            self.tally.get(),
            self.started.elapsed().as_millis(),
            note
        );
    }
}

/// A streamed body that logs its request once it ends or is dropped.
struct LoggedStream {
    inner: BodyDataStream,
    line: Option<(LogLine, StatusCode)>,
    finished: bool,
}

impl Stream for LoggedStream {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.finished = true;
        }
        polled
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        if let Some((line, status)) = self.line.take() {
            line.print(status, if self.finished { "" } else { " (client disconnected)" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_kv_readings_are_probes_and_generation_is_not() {
        assert!(is_probe(&Method::GET, "/health"));
        assert!(is_probe(&Method::GET, "/metrics"));
        assert!(is_probe(&Method::GET, "/slots"));
        assert!(!is_probe(&Method::POST, "/slots"));
        assert!(!is_probe(&Method::POST, "/completion"));
    }
}
