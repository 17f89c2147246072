//! `GET /v2/replicas/{id}/logs?tail=N`: the last lines of a replica's engine container, read
//! through the [`LogSource`](crate::LogSource). Unknown replicas are a 404.

use axum::Json;
use axum::extract::State;
use llorch_manifests::api::LogTail;
use llorch_manifests::task::ErrorCode;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

/// Lines returned when `tail` is not given.
pub const DEFAULT_TAIL: usize = 100;
/// The largest `tail` accepted.
pub const MAX_TAIL: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct LogsQuery {
    tail: Option<usize>,
}

pub(crate) async fn replica_logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogTail>, ApiError> {
    let tail = query.tail.unwrap_or(DEFAULT_TAIL);
    if tail == 0 || tail > MAX_TAIL {
        return Err(ApiError::invalid(format!(
            "`tail` is {tail}; it must be between 1 and {MAX_TAIL}"
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
    let lines = state
        .logs
        .tail(&id, tail)
        .await
        .map_err(|e| ApiError::new(ErrorCode::LogsUnavailable, e.to_string()))?;
    Ok(Json(LogTail { replica, lines }))
}
