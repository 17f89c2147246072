//! Control-plane reads of the snapshot: objects by kind, replicas, GPUs and the whole snapshot.
//!
//! A lookup that misses before the controller's first scan answers 503, not 404: "not found"
//! would be a guess, and `orchctl wait --for=delete` must not take it for an answer.

use axum::Json;
use axum::extract::State;
use llorch_manifests::Kind;
use llorch_manifests::api::{GpuList, ObjectView, Snapshot};
use llorch_manifests::status::ReplicaStatus;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

/// `GET /v2/snapshot`.
pub(crate) async fn snapshot(State(state): State<AppState>) -> Json<Snapshot> {
    Json(Snapshot::clone(&state.current()))
}

fn list(state: &AppState, kind: Kind) -> Json<Vec<ObjectView>> {
    let snapshot = state.current();
    Json(
        snapshot
            .objects
            .iter()
            .filter(|o| o.object.kind == kind)
            .cloned()
            .collect(),
    )
}

fn one(state: &AppState, kind: Kind, name: &str) -> Result<Json<ObjectView>, ApiError> {
    let snapshot = state.current();
    match snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == kind && o.object.name == name)
    {
        Some(view) => Ok(Json(view.clone())),
        None if !snapshot.synced => Err(ApiError::not_synced()),
        None => Err(not_found(kind, name)),
    }
}

/// The 404 for an object, naming it and the command that lists its kind.
pub(crate) fn not_found(kind: Kind, name: &str) -> ApiError {
    let lower = kind.lower();
    ApiError::not_found(format!(
        "{lower} `{name}` not found; list them with `orchctl get {lower}s`"
    ))
}

pub(crate) async fn list_pools(State(state): State<AppState>) -> Json<Vec<ObjectView>> {
    list(&state, Kind::Pool)
}

pub(crate) async fn get_pool(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ObjectView>, ApiError> {
    one(&state, Kind::Pool, &name)
}

pub(crate) async fn list_models(State(state): State<AppState>) -> Json<Vec<ObjectView>> {
    list(&state, Kind::Model)
}

pub(crate) async fn get_model(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ObjectView>, ApiError> {
    one(&state, Kind::Model, &name)
}

pub(crate) async fn list_engines(State(state): State<AppState>) -> Json<Vec<ObjectView>> {
    list(&state, Kind::Engine)
}

pub(crate) async fn get_engine(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ObjectView>, ApiError> {
    one(&state, Kind::Engine, &name)
}

/// `?pool=`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplicasQuery {
    pool: Option<String>,
}

/// `GET /v2/replicas[?pool=NAME]`. A pool that is neither declared nor has replicas is a 404,
/// so a typo does not look like an empty pool.
pub(crate) async fn list_replicas(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReplicasQuery>,
) -> Result<Json<Vec<ReplicaStatus>>, ApiError> {
    let snapshot = state.current();
    let Some(pool) = query.pool else {
        return Ok(Json(snapshot.replicas.clone()));
    };
    let replicas: Vec<ReplicaStatus> = snapshot.replicas.iter().filter(|r| r.pool == pool).cloned().collect();
    let declared = snapshot
        .objects
        .iter()
        .any(|o| o.object.kind == Kind::Pool && o.object.name == pool);
    if replicas.is_empty() && !declared {
        if !snapshot.synced {
            return Err(ApiError::not_synced());
        }
        return Err(not_found(Kind::Pool, &pool));
    }
    Ok(Json(replicas))
}

/// `GET /v2/gpus`.
pub(crate) async fn list_gpus(State(state): State<AppState>) -> Json<GpuList> {
    let snapshot = state.current();
    Json(GpuList {
        simulated: snapshot.gpus_simulated,
        source: snapshot.gpu_source,
        gpus: snapshot.gpus.clone(),
    })
}
