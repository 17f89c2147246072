//! Extractors whose rejections are [`ApiError`]s, so a malformed query, path or body answers
//! with the same JSON error body as everything else instead of axum's plain-text rejection.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use llorch_manifests::task::ErrorCode;

use crate::error::ApiError;

/// A request body that could not be read: `413 PAYLOAD_TOO_LARGE` over the limit (named),
/// else `400 INVALID_PARAMS`.
pub fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {} bytes", crate::MAX_BODY_BYTES),
        )
    } else {
        ApiError::invalid(format!("request body: {}", e.body_text())).status(e.status())
    }
}

/// `Query<T>` with a JSON `INVALID_PARAMS` rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// `Path<T>` with a JSON `INVALID_PARAMS` rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}
