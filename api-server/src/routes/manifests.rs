//! The write API: `POST /v2/manifests` applies manifests (or, with `dryRun`, reports what
//! would change), `DELETE /v2/manifests/{kind}/{name}` removes one. This is how `orchctl
//! apply`, `diff` and `delete` work against a daemon on another machine. The route only
//! decodes, hands the request to the controller's writer ([`ManifestWrites`]) on a blocking
//! thread, and then waits a few seconds for the snapshot to show the change, so a `GET` or
//! `orchctl wait` that follows sees the new generation. The writer parses, validates, checks
//! the config's trust rules and writes the files atomically; the directory stays the
//! controller's.
//!
//! Like every route, these sit behind the front door (token, `Host`/`Origin` checks, JSON
//! content type); the request body is capped at [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use llorch_manifests::api::{ApplyRequest, ApplyResult, DeleteResult, Snapshot, WriteError};
use llorch_manifests::task::ErrorCode;
use llorch_manifests::{Kind, ObjectRef};
use tokio::sync::watch;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, body_error};
use crate::front_door::Identity;

/// How long a write waits for the controller to pick it up before answering `synced: false`.
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

fn api_error(e: WriteError) -> ApiError {
    let code = match &e {
        WriteError::Invalid(_) => ErrorCode::InvalidManifest,
        WriteError::Refused(_) => ErrorCode::PolicyRefused,
        WriteError::Conflict(_) => ErrorCode::Conflict,
        WriteError::NotFound(_) => ErrorCode::NotFound,
        WriteError::Failed(detail) => return ApiError::internal(detail.clone()),
    };
    ApiError::new(code, e.to_string())
}

/// Runs `write` on a blocking thread (it reads and writes files).
async fn blocking<T: Send + 'static>(
    write: impl FnOnce() -> Result<T, WriteError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| ApiError::internal(format!("the manifest write failed: {e}")))?
        .map_err(api_error)
}

/// Waits (at most [`SYNC_WAIT`]) until `done` holds on the snapshot; whether it did.
async fn synced(mut snapshot: watch::Receiver<Arc<Snapshot>>, done: impl Fn(&Snapshot) -> bool) -> bool {
    tokio::time::timeout(SYNC_WAIT, snapshot.wait_for(|s| done(s)))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// `POST /v2/manifests {files: [{name, text}], dryRun?}`.
pub(crate) async fn apply(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ApplyResult>, ApiError> {
    let body = body.map_err(body_error)?;
    let req: ApplyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "manifests body: {e}; send {{\"files\": [{{\"name\": \"pool.yaml\", \"text\": \"<YAML>\"}}], \"dryRun\": false}}"
        ))
    })?;
    let writer = identity.to_string();
    let writes = Arc::clone(&state.manifests);
    let who = writer.clone();
    let mut result = blocking(move || writes.apply(&req.files, req.dry_run, &who)).await?;
    let changed: Vec<(ObjectRef, String)> = result
        .objects
        .iter()
        .filter(|o| o.action != llorch_manifests::api::ApplyAction::Unchanged)
        .map(|o| (o.object.clone(), o.generation.clone()))
        .collect();
    if result.dry_run {
        return Ok(Json(result));
    }
    for o in &result.objects {
        tracing::info!(identity = %writer, object = %o.object, action = o.action.as_str(), file = %o.file,
            human = %format!("{} {} through the write API by {writer}", o.object, o.action.as_str()), "manifest applied");
    }
    state.manifests.wake();
    store_diff(&state, &writer, &result).await;
    result.synced = synced(state.snapshot.clone(), |s| {
        changed.iter().all(|(r, generation)| {
            s.objects
                .iter()
                .any(|v| &v.object == r && v.status.generation.as_deref() == Some(generation.as_str()))
        })
    })
    .await;
    Ok(Json(result))
}

/// Keeps what an apply changed as a `diff` artifact (when the server keeps artifacts); a
/// failure is logged, the apply stands.
async fn store_diff(state: &AppState, writer: &str, result: &ApplyResult) {
    let Some(records) = &state.records else { return };
    if result
        .objects
        .iter()
        .all(|o| o.action == llorch_manifests::api::ApplyAction::Unchanged)
    {
        return;
    }
    let content = serde_json::json!({ "appliedBy": writer, "objects": result.objects });
    let diff = llorch_manifests::records::Artifact::Diff(llorch_manifests::records::Document { content });
    match records.put(diff).await {
        Ok((id, _)) => tracing::info!(artifact = %id, identity = %writer, "applied diff stored"),
        Err(e) => tracing::warn!(error = %e, "applied diff not stored"),
    }
}

/// `DELETE /v2/manifests/{kind}/{name}` (`kind`: `pools`, `models`, `engines`, or singular).
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ApiPath((kind, name)): ApiPath<(String, String)>,
) -> Result<Json<DeleteResult>, ApiError> {
    let kind = Kind::parse_loose(kind.trim_end_matches('s')).ok_or_else(|| {
        ApiError::invalid(format!(
            "`{}` is not a kind; use /v2/manifests/pools/<name>, models/<name> or engines/<name>",
            llorch_manifests::text::cut(kind.clone(), 64)
        ))
    })?;
    if !llorch_manifests::validate::is_valid_name(&name) {
        return Err(ApiError::invalid(format!(
            "`{}` is not an object name (lowercase letters, digits and `-`)",
            llorch_manifests::text::cut(name, 64)
        )));
    }
    let object = ObjectRef::new(kind, name);
    let writes = Arc::clone(&state.manifests);
    let target = object.clone();
    let mut result = blocking(move || writes.delete(&target)).await?;
    tracing::info!(identity = %identity, object = %object, file = %result.file,
        human = %format!("{object} deleted through the write API by {identity}"), "manifest deleted");
    state.manifests.wake();
    result.synced = synced(state.snapshot.clone(), |s| s.objects.iter().all(|v| v.object != object)).await;
    Ok(Json(result))
}
