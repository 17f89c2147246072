//! `GET /v2/replicas/{id}/logs?tail=N[&follow=true]`: the last lines of a replica's engine
//! container, read through the [`LogSource`](crate::LogSource). Unknown replicas are a 404.
//!
//! With `follow=true` the answer is a server-sent-events stream instead: one `line` event per
//! line (its data the line as a JSON string), the last `tail` first, then each new one as the
//! engine writes it; an `error` event if reading fails on the way; a keep-alive comment after
//! [`KEEP_ALIVE`] of quiet. It ends when the container stops, when the client goes away (the
//! body is dropped, and the runtime's log stream with it) or when the server closes. Memory is
//! bounded: one line is read from the runtime only when the client has taken the previous
//! frame, and runtimes cut lines at a fixed length.

use std::convert::Infallible;
use std::pin::Pin;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use llorch_manifests::api::LogTail;
use llorch_manifests::task::ErrorCode;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::event_stream::KEEP_ALIVE;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::sources::LogLines;
use crate::{AppState, sse};

/// Lines returned when `tail` is not given.
pub const DEFAULT_TAIL: usize = 100;
/// The largest `tail` accepted.
pub const MAX_TAIL: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct LogsQuery {
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

pub(crate) async fn replica_logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let tail = query.tail.unwrap_or(DEFAULT_TAIL);
    if (tail == 0 && !query.follow) || tail > MAX_TAIL {
        return Err(ApiError::invalid(format!(
            "`tail` is {tail}; it must be between 1 and {MAX_TAIL} (0 only with `follow`)"
        )));
    }
    let snapshot = state.current();
    let Some(replica) = snapshot
        .replicas
        .iter()
        .find(|r| r.id.as_str() == id)
        .map(|r| r.id.clone())
    else {
        if !snapshot.synced {
            return Err(ApiError::not_synced());
        }
        return Err(ApiError::not_found(format!(
            "replica `{id}` not found; list them with `orchctl get replicas`"
        )));
    };
    drop(snapshot);
    let unavailable = |e: crate::LogsError| ApiError::new(ErrorCode::LogsUnavailable, e.to_string());
    if query.follow {
        let lines = state.logs.follow(&id, tail).await.map_err(unavailable)?;
        return Ok(Follow::new(&state, lines).response());
    }
    let lines = state.logs.tail(&id, tail).await.map_err(unavailable)?;
    Ok(Json(LogTail { replica, lines }).into_response())
}

/// One client's followed log.
struct Follow {
    lines: Option<LogLines>,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    keep_alive: Pin<Box<Sleep>>,
}

impl Follow {
    fn new(state: &AppState, lines: LogLines) -> Self {
        Self {
            lines: Some(lines),
            closing: Box::pin(state.closing.clone().cancelled_owned()),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        }
    }

    fn response(self) -> Response {
        let body = Body::from_stream(futures_util::stream::unfold(self, Follow::next));
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(sse::CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// The next frame; `None` once the log, the server or an error ended it.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        let lines = self.lines.as_mut()?;
        let mut out = Vec::new();
        tokio::select! {
            biased;
            () = &mut self.closing => return None,
            line = lines.next() => match line {
                Some(Ok(line)) => sse::frame(&mut out, Some("line"), &line),
                Some(Err(e)) => {
                    ApiError::new(ErrorCode::LogsUnavailable, e.to_string()).sse_native(&mut out);
                    self.lines = None;
                }
                None => return None,
            },
            () = &mut self.keep_alive => out.extend_from_slice(sse::KEEP_ALIVE_COMMENT),
        }
        self.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
        Some((Ok(Bytes::from(out)), self))
    }
}
