//! Pool operations: drain (`POST`/`DELETE /v2/pools/{id}/drain`), reload
//! (`POST /v2/pools/{id}/reload`), wake (`POST /v2/pools/{id}/wake`, for a Pool that sleeps),
//! scale (`POST /v2/pools/{id}/scale`) and health (`GET /v2/pools/{id}/health`).
//!
//! A drain is the data plane's: admission stops at once (503 `POOL_DRAINING`), what is queued
//! or running may finish until the deadline, then ends with a `POOL_DRAINING` error. A reload is
//! the controller's rolling replacement, commanded through [`PoolControl`](crate::PoolControl):
//! with a `model`, the controller changes `spec.model` in the Pool's manifest file (which must
//! hold nothing but that Pool); without one, it bumps the Pool's reload counter, which rolls out
//! new replicas of the same spec. This route only checks, on the snapshot, that the Pool and
//! the Model exist and the Model is usable; it never touches a file itself. A scale is the
//! same kind of command: the route checks the new size against the Pool as the snapshot shows
//! it (the kind of sizing, the manifest limits, its Engine), then the controller writes it into
//! the Pool's manifest file and works to it like any manifest edit.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llorch_manifests::api::{
    DrainRequest, ObjectView, PoolHealth, ReloadAccepted, ReloadAction, ReloadRequest, ScaleAccepted, ScaleRequest,
    Snapshot,
};
use llorch_manifests::parse::Located;
use llorch_manifests::pool_size::{SizeChange, SizeError, describe_change};
use llorch_manifests::status::{ConditionType, ReplicaPhase};
use llorch_manifests::task::ErrorCode;
use llorch_manifests::{AnyObject, Engine, Kind, Model, Pool, PoolSpec};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, body_error};
use crate::sources::{PoolControl, PoolEditError};
use crate::tasks::worker::PoolLoad;

/// The longest drain deadline accepted: a day.
pub const MAX_DRAIN_DEADLINE_MS: u64 = 24 * 3600 * 1000;

fn names(snapshot: &Snapshot, kind: Kind) -> String {
    let all: Vec<&str> = snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == kind)
        .map(|o| o.object.name.as_str())
        .collect();
    if all.is_empty() {
        "none is declared".to_string()
    } else {
        format!("declared: {}", all.join(", "))
    }
}

/// The Pool's view, or the 404 (503 before the first scan) that lists the declared pools.
fn pool_view<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a ObjectView, ApiError> {
    match snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == Kind::Pool && o.object.name == name)
    {
        Some(v) => Ok(v),
        None if !snapshot.synced => Err(ApiError::not_synced()),
        None => Err(ApiError::not_found(format!(
            "pool `{name}` not found ({}); see `orchctl get pools`",
            names(snapshot, Kind::Pool)
        ))),
    }
}

fn health_of(snapshot: &Snapshot, view: &ObjectView, load: PoolLoad) -> PoolHealth {
    let name = &view.object.name;
    let replicas = || snapshot.replicas.iter().filter(|r| &r.pool == name);
    let live = replicas()
        .any(|r| r.container_id.is_some() && !matches!(r.phase, ReplicaPhase::BackingOff | ReplicaPhase::CircuitOpen));
    let any_ready = replicas().any(|r| r.phase == ReplicaPhase::Ready);
    let last_error = view.status.last_error.as_ref().map(|e| e.message.clone()).or_else(|| {
        view.status
            .condition(ConditionType::Degraded)
            .filter(|c| c.status)
            .map(|c| c.message.clone())
    });
    PoolHealth {
        pool: name.clone(),
        live,
        ready: any_ready && !load.draining,
        draining: load.draining,
        drain_deadline_in_ms: load.deadline_in_ms,
        in_flight: load.in_flight,
        queued: load.queued,
        queued_interactive: load.queued_interactive,
        queued_batch: load.queued_batch,
        slots_total: load.slots_total,
        slots_busy: load.slots_busy,
        predicted_wait_ms: load.predicted_wait_ms,
        replicas: view.status.replicas.unwrap_or_default(),
        rollout: view.status.rollout.clone(),
        last_error,
    }
}

async fn load(state: &AppState, pool: &str) -> PoolLoad {
    match &state.data {
        Some(dp) => dp.load(pool).await,
        None => PoolLoad::default(),
    }
}

/// `GET /v2/pools/{id}/health`.
pub(crate) async fn health(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PoolHealth>, ApiError> {
    let snapshot = state.current();
    let view = pool_view(&snapshot, &name)?;
    let load = load(&state, &name).await;
    Ok(Json(health_of(&snapshot, view, load)))
}

/// `POST /v2/pools/{id}/drain {deadline_ms}`: 202 with the pool's health (what is in flight).
pub(crate) async fn drain(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let snapshot = state.current();
    let view = pool_view(&snapshot, &name)?;
    let body = body.map_err(body_error)?;
    let req: DrainRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "drain body: {e}; send {{\"deadline_ms\": <milliseconds running tasks may take>}}"
        ))
    })?;
    if req.deadline_ms > MAX_DRAIN_DEADLINE_MS {
        return Err(ApiError::invalid(format!(
            "deadline_ms is {}; at most {MAX_DRAIN_DEADLINE_MS} (a day)",
            req.deadline_ms
        )));
    }
    let dp = state
        .data
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "this server has no data plane to drain"))?;
    let load = dp.drain(&name, Duration::from_millis(req.deadline_ms)).await;
    tracing::info!(pool = %name, deadline_ms = req.deadline_ms, in_flight = load.in_flight, queued = load.queued,
        human = %format!("draining pool {name}: {} running, {} queued, {} ms to finish", load.in_flight, load.queued, req.deadline_ms),
        "pool drain");
    Ok((StatusCode::ACCEPTED, Json(health_of(&snapshot, view, load))).into_response())
}

/// `DELETE /v2/pools/{id}/drain`: admission resumes.
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PoolHealth>, ApiError> {
    let snapshot = state.current();
    let view = pool_view(&snapshot, &name)?;
    let load = match &state.data {
        Some(dp) => dp.resume(&name).await,
        None => PoolLoad::default(),
    };
    tracing::info!(pool = %name, human = %format!("pool {name} admits tasks again"), "pool drain lifted");
    Ok(Json(health_of(&snapshot, view, load)))
}

/// `POST /v2/pools/{id}/wake`: 202 with the pool's health. A Pool that may sleep
/// (`scaling.minReplicas: 0`) wants a replica now, as if a task waited (evicting idle Pools
/// if it must), then stays up for its idle timeout; one already awake just counts as used now.
pub(crate) async fn wake(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let snapshot = state.current();
    let view = pool_view(&snapshot, &name)?;
    if !snapshot.serving(&name).is_some_and(|p| p.scales_to_zero) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "pool `{name}` does not sleep, so there is nothing to wake: only a Pool with \
                 `scaling: {{minReplicas: 0}}` scales to zero (docs/scaling.md)"
            ),
        ));
    }
    let dp = state
        .data
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "this server has no data plane to wake a pool"))?;
    dp.wake(&name);
    tracing::info!(pool = %name, human = %format!("pool {name}: a wake was asked for"), "pool wake");
    let load = dp.load(&name).await;
    Ok((StatusCode::ACCEPTED, Json(health_of(&snapshot, view, load))).into_response())
}

/// `POST /v2/pools/{id}/reload {model?}`: 202 once the change is handed to the controller;
/// `orchctl reload --wait` follows `status.rollout` to its end.
pub(crate) async fn reload(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("reload body: {e}; send {{}} or {{\"model\": \"<name>\"}}")))?
    };
    // Both ways write a file (the manifest, or the restart counter): off the async workers.
    let (pools, snapshot) = (Arc::clone(&state.pools), state.current());
    tokio::task::spawn_blocking(move || reload_now(pools.as_ref(), &snapshot, name, req))
        .await
        .map_err(|e| ApiError::internal(format!("the reload task failed: {e}")))?
}

fn reload_now(
    pools: &dyn PoolControl,
    snapshot: &Snapshot,
    name: String,
    req: ReloadRequest,
) -> Result<Response, ApiError> {
    let view = pool_view(snapshot, &name)?;
    let current = snapshot
        .serving(&name)
        .map(|p| p.model.clone())
        .ok_or_else(|| ApiError::internal(format!("pool `{name}` has no serving view in the snapshot")))?;
    match req.model.filter(|m| *m != current) {
        Some(model) => change_model(pools, snapshot, view, &current, &model),
        None => {
            let counter = pools.restart(&name).map_err(|e| ApiError::internal(e.to_string()))?;
            let accepted = ReloadAccepted {
                pool: name.clone(),
                model: current,
                action: ReloadAction::Restart,
                file: None,
                reload: Some(counter),
                message: format!(
                    "new replicas of pool `{name}` start next to the old ones; follow with `orchctl health pool/{name}`"
                ),
            };
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
    }
}

/// Checks `model` on the snapshot and has the controller write it into the Pool's manifest file.
fn change_model(
    control: &dyn PoolControl,
    snapshot: &Snapshot,
    view: &ObjectView,
    current: &str,
    model: &str,
) -> Result<Response, ApiError> {
    let name = view.object.name.as_str();
    let model_view = snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == Kind::Model && o.object.name == model)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "model `{model}` not found ({}); declare it first (`orchctl apply -f`)",
                names(snapshot, Kind::Model)
            ))
        })?;
    if let Some(bad) = model_view
        .status
        .condition(ConditionType::Degraded)
        .filter(|c| c.status)
    {
        return Err(ApiError::new(
            ErrorCode::ModelUnusable,
            format!(
                "model `{model}` is not usable: {}; see `orchctl describe model/{model}`",
                bad.message
            ),
        ));
    }
    let source = view.source.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            format!("pool `{name}` has no manifest file to edit"),
        )
    })?;
    match control.set_model(name, Path::new(&source.file), current, model) {
        Ok(()) => {
            tracing::info!(pool = %name, model = %model, file = %source.file,
                human = %format!("reloading pool {name} onto model {model}: edited {}", source.file), "pool reload");
            let accepted = ReloadAccepted {
                pool: name.to_string(),
                model: model.to_string(),
                action: ReloadAction::Manifest,
                file: Some(source.file.clone()),
                reload: None,
                message: format!(
                    "spec.model of pool `{name}` is now `{model}` in {}; new replicas start next to the old ones, \
                     which serve until the new ones are Ready (and stay if they fail)",
                    source.file
                ),
            };
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
        Err(error) => Err(edit_error(error)),
    }
}

/// A refused edit is the user's to resolve (409, with what to do); a failed one is ours (500).
fn edit_error(error: PoolEditError) -> ApiError {
    match error {
        PoolEditError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
        PoolEditError::Failed(message) => ApiError::internal(message),
    }
}

/// What a scale body may hold.
const SCALE_BODY: &str = "send {\"replicas\": N} for a Pool of fixed size, or {\"min_replicas\": A, \"max_replicas\": B} \
                          (either or both) for one sized by demand";

/// `POST /v2/pools/{id}/scale {replicas} | {min_replicas?, max_replicas?}`: 202 once the new
/// size is in the Pool's manifest file; the controller works to it from its next pass.
pub(crate) async fn scale(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let change = requested_size(&body.map_err(body_error)?)?;
    // The controller edits the manifest file: off the async workers.
    let (pools, snapshot) = (Arc::clone(&state.pools), state.current());
    tokio::task::spawn_blocking(move || scale_now(pools.as_ref(), &snapshot, &name, change))
        .await
        .map_err(|e| ApiError::internal(format!("the scale task failed: {e}")))?
}

/// The body as a [`SizeChange`]: some size, and only one kind of it.
fn requested_size(body: &[u8]) -> Result<SizeChange, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(format!("scale body is empty; {SCALE_BODY}")));
    }
    let req: ScaleRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("scale body: {e}; {SCALE_BODY}")))?;
    match req {
        ScaleRequest {
            replicas: None,
            min_replicas: None,
            max_replicas: None,
        } => Err(ApiError::invalid(format!("scale body names no size; {SCALE_BODY}"))),
        ScaleRequest {
            replicas: Some(n),
            min_replicas: None,
            max_replicas: None,
        } => Ok(SizeChange::Replicas(n)),
        ScaleRequest {
            replicas: None,
            min_replicas,
            max_replicas,
        } => Ok(SizeChange::Bounds {
            min: min_replicas,
            max: max_replicas,
        }),
        ScaleRequest { replicas: Some(_), .. } => Err(ApiError::invalid_field(
            "replicas",
            "scale body has both replicas and min_replicas/max_replicas: send `replicas` for a Pool of fixed size, \
             or `min_replicas`/`max_replicas` for one sized by demand, not both",
        )),
    }
}

/// Checks `change` against Pool `name` as the snapshot shows it and has the controller write it.
fn scale_now(
    control: &dyn PoolControl,
    snapshot: &Snapshot,
    name: &str,
    change: SizeChange,
) -> Result<Response, ApiError> {
    let view = pool_view(snapshot, name)?;
    let source = view.source.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            format!("pool `{name}` has no manifest file to edit (its file is gone: the pool is being removed)"),
        )
    })?;
    let declared: Pool = declared(view).ok_or_else(|| {
        ApiError::internal(format!(
            "pool `{name}`'s manifest in the snapshot does not read as a Pool"
        ))
    })?;
    let wanted = change.apply(name, &declared.spec).map_err(|e| match e {
        SizeError::OutOfRange { .. } => ApiError::invalid(e.to_string()),
        SizeError::SizedByDemand { .. } | SizeError::FixedSize { .. } => {
            ApiError::new(ErrorCode::Conflict, e.to_string())
        }
    })?;
    check_with_references(snapshot, source.file.as_str(), &declared, wanted)?;
    let (from, to) = control
        .set_size(name, Path::new(&source.file), change)
        .map_err(edit_error)?;
    let changed = describe_change(&from, &to);
    let message = if from == to {
        format!("pool `{name}` already has {to} in {}; nothing was written", source.file)
    } else {
        tracing::info!(pool = %name, file = %source.file, human = %format!("scaling pool {name}: {changed} in {}", source.file),
            "pool scale");
        format!(
            "pool `{name}`: {changed} in {}; the controller works to the new size from its next pass (a replica it \
             removes first finishes its tasks); follow with `orchctl get pools`",
            source.file
        )
    };
    let accepted = ScaleAccepted {
        pool: name.to_string(),
        file: source.file.clone(),
        from,
        to,
        message,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// An object's manifest as the snapshot shows it, typed.
fn declared<T: serde::de::DeserializeOwned>(view: &ObjectView) -> Option<T> {
    serde_json::from_value(view.manifest.clone()?).ok()
}

/// The rules across objects that a new size can break (an external Engine serves one
/// replica, `validate::check_set`), checked with the Pool's Engine and Model as the snapshot
/// shows them. An Engine or Model it cannot read is left to the controller, which checks the
/// whole directory again.
fn check_with_references(snapshot: &Snapshot, file: &str, pool: &Pool, wanted: PoolSpec) -> Result<(), ApiError> {
    let find = |kind: Kind, name: &str| {
        snapshot
            .objects
            .iter()
            .find(|o| o.object.kind == kind && o.object.name == name)
    };
    let engine = find(Kind::Engine, &pool.spec.engine).and_then(declared::<Engine>);
    let model = find(Kind::Model, &pool.spec.model).and_then(declared::<Model>);
    let (Some(engine), Some(model)) = (engine, model) else {
        return Ok(());
    };
    let located = |object: AnyObject| Located {
        file: file.to_string(),
        document: 0,
        object,
    };
    let set = [
        located(AnyObject::Engine(engine)),
        located(AnyObject::Model(model)),
        located(AnyObject::Pool(Pool {
            spec: wanted,
            ..pool.clone()
        })),
    ];
    let broken: Vec<String> = llorch_manifests::validate::check_set(&set)
        .into_iter()
        .filter(|e| {
            e.field
                .as_deref()
                .is_some_and(|f| f == "spec.replicas" || f.starts_with("spec.scaling"))
        })
        .map(|e| format!("{}: {}; {}", e.field.as_deref().unwrap_or_default(), e.message, e.hint))
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "pool `{}` cannot be scaled so: {}",
            pool.name(),
            broken.join("; ")
        )))
    }
}
