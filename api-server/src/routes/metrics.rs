//! `GET /metrics`: Prometheus text, rendered from the current snapshot on each scrape, with the
//! data plane's task series when the server has a data plane.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let telemetry = state.data.as_ref().map(|dp| dp.telemetry());
    let verifications = state.catalog.verifications();
    let text = crate::metrics::render_full(&state.current(), telemetry, &verifications)
        .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
