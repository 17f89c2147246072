//! `/healthz` (the process answers) and `/readyz` (the controller has finished its first full
//! scan, so what the API says is true).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Liveness: always 200.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 once the snapshot is synced, else 503 with the reason.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.current().synced {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::not_synced())
    }
}
