//! Request handlers, one file per concern. Handlers read the snapshot and sources in
//! [`AppState`](crate::AppState) and answer JSON; every failure is an [`ApiError`].

pub(crate) mod artifacts;
pub(crate) mod catalog;
pub(crate) mod event_stream;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod logs;
pub(crate) mod manifests;
pub(crate) mod metrics;
pub(crate) mod objects;
pub(crate) mod openai;
pub(crate) mod pools;
pub(crate) mod task_stream;
pub(crate) mod tasks;

use axum::http::Uri;

use crate::error::ApiError;

/// Any path no route matches.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for `{}`; the control-plane routes are under /v2 (e.g. /v2/pools)",
        uri.path()
    ))
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
