//! `GET /v2/events?kind=&name=&limit=`: recent events from the [`EventSource`](crate::EventSource),
//! oldest first.

use axum::Json;
use axum::extract::State;
use llorch_manifests::api::EventList;
use llorch_manifests::{Kind, ObjectRef};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;

/// Events returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1_000;
/// How far back a kind-only filter looks (the source filters by object, not by kind).
const KIND_SCAN: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    kind: Option<String>,
    name: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn list_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "`limit` is {limit}; it must be between 1 and {MAX_LIMIT}"
        )));
    }
    let kind = match query.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(
            Kind::parse_loose(k)
                .ok_or_else(|| ApiError::invalid(format!("`kind` is `{k}`; expected one of pool, model, engine")))?,
        ),
    };
    let name = query.name.filter(|n| !n.is_empty());
    let events = match (kind, name) {
        (Some(kind), Some(name)) => state.events.recent(Some(&ObjectRef::new(kind, name)), limit),
        (Some(kind), None) => {
            let mut matching: Vec<_> = state
                .events
                .recent(None, KIND_SCAN)
                .into_iter()
                .filter(|e| e.object.as_ref().is_some_and(|o| o.kind == kind))
                .collect();
            let skip = matching.len().saturating_sub(limit);
            matching.drain(..skip);
            matching
        }
        (None, Some(name)) => {
            return Err(ApiError::invalid(format!(
                "`name` is `{name}` but `kind` is missing; add e.g. `kind=pool`"
            )));
        }
        (None, None) => state.events.recent(None, limit),
    };
    Ok(Json(EventList { events }))
}
