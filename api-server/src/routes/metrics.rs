//! `GET /metrics`: Prometheus text, rendered from the current snapshot on each scrape, with the
//! data plane's task series when the server has a data plane and the daemon's process series.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::ProcessSample;

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // A few reads of /proc/self: off the async workers.
    let process = tokio::task::spawn_blocking(ProcessSample::collect)
        .await
        .map_err(|e| ApiError::internal(format!("reading process metrics: {e}")))?;
    let telemetry = state.data.as_ref().map(|dp| dp.telemetry());
    let verifications = state.catalog.verifications();
    let text = crate::metrics::render_full(&state.current(), telemetry, &verifications, Some(&process))
        .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
