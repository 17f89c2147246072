//! `/v2/artifacts`: job records, plans and diffs (see [`crate::records`]). List (newest
//! first, filtered, paged), get one by `sha256:…` or by task id, store a plan or a diff, and
//! replay a job record. A job record is its submitter's: another identity gets 403 and does
//! not see it in lists (without tokens everyone is `localhost`). Store I/O runs on blocking
//! threads.

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llorch_manifests::records::{
    Artifact, ArtifactCreated, ArtifactKind, ArtifactList, ArtifactPost, Document, MAX_LIST_LIMIT, ReplayReport,
};
use llorch_manifests::task::ErrorCode;
use serde::Deserialize;

use super::tasks::data_plane;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, body_error};
use crate::front_door::Identity;
use crate::records::index::{Cursor, IndexEntry, ListQuery};
use crate::records::store::{Lookup, StoreError};
use crate::records::{Records, job_of, replay};

/// Entries a list answers without `limit`.
pub const DEFAULT_LIMIT: usize = 50;

fn records(state: &AppState) -> Result<&std::sync::Arc<Records>, ApiError> {
    state
        .records
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "this server keeps no artifacts"))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidId(_) => ApiError::invalid(e.to_string()),
        StoreError::TooLarge { .. } => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
        StoreError::Io { .. } | StoreError::Encode(_) | StoreError::Corrupt { .. } => ApiError::internal(e.to_string()),
    }
}

/// `GET /v2/artifacts` query.
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    kind: Option<String>,
    pool: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// `GET /v2/artifacts?kind=&pool=&limit=&before=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ArtifactList>, ApiError> {
    let records = records(&state)?;
    let kind = p
        .kind
        .as_deref()
        .map(str::parse::<ArtifactKind>)
        .transpose()
        .map_err(|e| ApiError::invalid_field("kind", e))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ApiError::invalid_field(
            "limit",
            format!("`limit` {limit} is outside 1–{MAX_LIST_LIMIT}"),
        ));
    }
    let before = p
        .before
        .as_deref()
        .map(|c| {
            Cursor::parse(c)
                .ok_or_else(|| ApiError::invalid_field("before", "`before` is not a cursor a list answered (`next`)"))
        })
        .transpose()?;
    let query = ListQuery {
        kind,
        pool: p.pool,
        limit,
        before,
        viewer: Some(identity.to_string()),
    };
    Ok(Json(records.list(&query)))
}

/// The entry and bytes of `id`, if `identity` may read them.
async fn fetch(state: &AppState, id: &str, identity: &Identity) -> Result<(IndexEntry, Vec<u8>), ApiError> {
    let lookup = Lookup::parse(id).map_err(store_error)?;
    let found = records(state)?.get(lookup).await.map_err(store_error)?;
    let (entry, bytes) = found.ok_or_else(|| {
        ApiError::not_found(format!(
            "no artifact `{id}` (job records are written when a task ends, and removed by retention)"
        ))
    })?;
    if entry
        .identity
        .as_ref()
        .is_some_and(|owner| *owner != identity.to_string())
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("artifact `{id}` is the record of another identity's job"),
        ));
    }
    Ok((entry, bytes))
}

/// `GET /v2/artifacts/{id}`: the stored JSON as is; `{id}` is `sha256:…` or a task id.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (entry, bytes) = fetch(&state, &id, &identity).await?;
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&entry.id) {
        headers.insert("x-llorch-artifact-id", v);
    }
    Ok(response)
}

/// `POST /v2/artifacts {"kind": "plan"|"diff", "content": …}`: 201 and its id when stored
/// now, 200 and the same id when that content was stored already.
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let records = records(&state)?;
    let body = body.map_err(body_error)?;
    let post: ArtifactPost = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "artifact body: {e}; send {{\"kind\": \"plan\" or \"diff\", \"content\": <JSON>}}"
        ))
    })?;
    let document = Document { content: post.content };
    let artifact = match post.kind {
        ArtifactKind::Plan => Artifact::Plan(document),
        ArtifactKind::Diff => Artifact::Diff(document),
        ArtifactKind::Job => {
            return Err(ApiError::invalid_field(
                "kind",
                "job records are written by the daemon when a task ends; post a `plan` or a `diff`",
            ));
        }
    };
    let (id, new) = records.put(artifact).await.map_err(store_error)?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ArtifactCreated { id })).into_response())
}

/// `POST /v2/artifacts/{id}/replay`: re-runs a job record on its Pool and compares.
pub(crate) async fn replay(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReplayReport>, ApiError> {
    let (_, bytes) = fetch(&state, &id, &identity).await?;
    let record = job_of(&bytes)
        .ok_or_else(|| ApiError::invalid(format!("artifact `{id}` is not a job record; only jobs replay")))?;
    let dp = data_plane(&state)?;
    let snapshot = state.current();
    Ok(Json(replay::replay(&dp, &snapshot, &record, identity).await?))
}
