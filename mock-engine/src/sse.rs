//! Server-sent events as llama-server writes them: `data: <json>\n\n` lines, no `event:` names.
//!
//! The stream owns the [`Emitter`] (and so the slot): when the client hangs up, hyper drops the
//! stream and the slot is freed.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde_json::Value;

use crate::emitter::{Emitted, Emitter};

/// Streams `render(emitted)` for each step of `emitter`, then `data: [DONE]` when `done_marker`.
pub fn stream_response<F>(emitter: Emitter, render: F, done_marker: bool) -> Response
where
    F: FnMut(Emitted) -> Vec<Value> + Send + 'static,
{
    let chunks = stream::unfold(Some((emitter, render)), |state| async move {
        let (mut emitter, mut render) = state?;
        let emitted = emitter.next().await;
        let finished = matches!(emitted, Emitted::Done(_));
        let values = render(emitted);
        Some((values, (!finished).then_some((emitter, render))))
    })
    .flat_map(|values| stream::iter(values.into_iter().map(|value| value.to_string())));
    let done = stream::iter(done_marker.then(|| "[DONE]".to_owned()));
    let events = chunks
        .chain(done)
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Sse::new(events).into_response()
}

/// Streams a reply that is already complete (a tool call), then `data: [DONE]`.
pub fn stream_values(values: Vec<Value>) -> Response {
    let events = stream::iter(values.into_iter().map(|value| value.to_string()))
        .chain(stream::once(async { "[DONE]".to_owned() }))
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Sse::new(events).into_response()
}
