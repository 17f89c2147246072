//! `GET /v2/events/stream?backlog=N`: the live view the status page reads, as server-sent
//! events — `snapshot` (the whole [`Snapshot`], first at once, then after each change, at most
//! every [`SNAPSHOT_MIN_INTERVAL`]), `event` (each new controller [`Event`], after the last
//! `backlog` ones), `lagged` (`{"missed": n}`: this client fell more than the source's
//! buffer behind and lost `n` events; it should re-read `/v2/events`), and a keep-alive
//! comment after [`KEEP_ALIVE`] of quiet.
//!
//! Memory is bounded whatever the client does: events wait in the source's one shared,
//! bounded channel (a slow reader is told it lagged, never buffered for), snapshots are the
//! controller's `Arc`, and a frame is only written when the client has taken the previous
//! one. The stream ends when the server closes ([`AppState::closing`]), so it never holds up
//! a graceful shutdown. It writes nothing about tasks or prompts: events and the snapshot only.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::stream;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::Event;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::events::MAX_LIMIT;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::sse;

/// Quiet time before a keep-alive comment (proxies drop idle connections).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The least time between two `snapshot` frames: a burst of changes (a rollout) becomes one
/// frame with the latest state, not one per change.
pub const SNAPSHOT_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Most events taken from the channel into one write.
const EVENTS_PER_WRITE: usize = 64;

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    backlog: Option<usize>,
}

/// `GET /v2/events/stream`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let backlog = query.backlog.unwrap_or(0);
    if backlog > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "`backlog` is {backlog}; it must be between 0 and {MAX_LIMIT}"
        )));
    }
    Ok(Feed::open(&state, backlog).response())
}

/// One client's feed.
struct Feed {
    events: Option<broadcast::Receiver<Event>>,
    snapshot: Option<watch::Receiver<Arc<Snapshot>>>,
    /// A change was seen and its frame waits for `next_snapshot_at`.
    snapshot_pending: bool,
    next_snapshot_at: Instant,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    keep_alive: Pin<Box<Sleep>>,
    out: Vec<u8>,
}

/// What woke the feed.
enum Wake {
    Closing,
    Event(Result<Event, RecvError>),
    SnapshotChanged(bool),
    SnapshotDue,
    Quiet,
}

impl Feed {
    /// Subscribes first, then reads the backlog: no event falls between the two (one may
    /// appear in both).
    fn open(state: &AppState, backlog: usize) -> Self {
        let events = state.events.subscribe();
        let mut feed = Self {
            events,
            snapshot: Some(state.snapshot.clone()),
            snapshot_pending: false,
            next_snapshot_at: Instant::now(),
            closing: Box::pin(state.closing.clone().cancelled_owned()),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
            out: Vec::new(),
        };
        feed.write_snapshot();
        if backlog > 0 {
            for event in state.events.recent(None, backlog) {
                sse::frame(&mut feed.out, Some("event"), &event);
            }
        }
        feed
    }

    fn response(self) -> Response {
        let body = Body::from_stream(stream::unfold(self, Feed::next));
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(sse::CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    fn write_snapshot(&mut self) {
        if let Some(rx) = self.snapshot.as_mut() {
            let current = Arc::clone(&rx.borrow_and_update());
            sse::frame(&mut self.out, Some("snapshot"), &*current);
        }
        self.snapshot_pending = false;
        self.next_snapshot_at = Instant::now() + SNAPSHOT_MIN_INTERVAL;
    }

    fn write_event(&mut self, received: Result<Event, RecvError>) {
        match received {
            Ok(event) => sse::frame(&mut self.out, Some("event"), &event),
            Err(RecvError::Lagged(missed)) => {
                sse::frame(&mut self.out, Some("lagged"), &serde_json::json!({ "missed": missed }));
            }
            Err(RecvError::Closed) => self.events = None,
        }
    }

    /// The next body chunk; `None` once the server closes.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            if !self.out.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut self.out));
                self.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
                return Some((Ok(chunk), self));
            }
            let wake = tokio::select! {
                biased;
                () = &mut self.closing => Wake::Closing,
                received = recv(&mut self.events) => Wake::Event(received),
                changed = changed(&mut self.snapshot), if !self.snapshot_pending => Wake::SnapshotChanged(changed),
                () = tokio::time::sleep_until(self.next_snapshot_at), if self.snapshot_pending => Wake::SnapshotDue,
                () = &mut self.keep_alive => Wake::Quiet,
            };
            match wake {
                Wake::Closing => return None,
                Wake::Event(received) => {
                    self.write_event(received);
                    for _ in 1..EVENTS_PER_WRITE {
                        let Some(rx) = self.events.as_mut() else { break };
                        match rx.try_recv() {
                            Ok(event) => self.write_event(Ok(event)),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                self.write_event(Err(RecvError::Lagged(n)));
                            }
                            Err(_) => break,
                        }
                    }
                }
                Wake::SnapshotChanged(true) => self.snapshot_pending = true,
                // The controller is gone: events may still come; no more snapshots.
                Wake::SnapshotChanged(false) => self.snapshot = None,
                Wake::SnapshotDue => self.write_snapshot(),
                Wake::Quiet => self.out.extend_from_slice(sse::KEEP_ALIVE_COMMENT),
            }
        }
    }
}

/// The next event, or never when there is no live source.
async fn recv(events: &mut Option<broadcast::Receiver<Event>>) -> Result<Event, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the snapshot changed (`false`: its sender is gone), or never without one.
async fn changed(snapshot: &mut Option<watch::Receiver<Arc<Snapshot>>>) -> bool {
    match snapshot {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
