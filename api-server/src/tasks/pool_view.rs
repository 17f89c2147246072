//! What a Pool looks like to the data plane, read from the controller's snapshot: its Ready
//! replicas (with slots and free VRAM for placement), its limits and its engine's API.

use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ReplicaPhase;
use llorch_manifests::task::{ErrorCode, TaskRequest};
use llorch_manifests::{ApiFlavour, Engine, Kind, Model, Pool, QueueSpec};

use super::Refusal;
use crate::dataplane::Replica;

/// A Pool, for admission and dispatch.
#[derive(Clone, Debug)]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// Ready replicas with an endpoint, and their placement inputs.
    pub replicas: Vec<(Replica, String)>,
    /// The engine container of each Ready replica, by replica id.
    pub containers: std::collections::HashMap<String, String>,
    /// Context size per replica.
    pub ctx_size: u32,
    /// Slots per replica.
    pub slots: u32,
    /// Queue settings.
    pub queue: QueueSpec,
    /// Session lifetime and budget.
    pub sessions: llorch_manifests::SessionSpec,
    /// Engine name.
    pub engine: String,
    /// Engine version label.
    pub engine_version: String,
    /// Engine API.
    pub api: ApiFlavour,
    /// Model name.
    pub model: String,
}

fn object<T: serde::de::DeserializeOwned>(snapshot: &Snapshot, kind: Kind, name: &str) -> Option<T> {
    let view = snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == kind && o.object.name == name)?;
    // `&Value` is a deserializer: no clone of the manifest per request.
    T::deserialize(view.manifest.as_ref()?).ok()
}

fn unavailable(message: String) -> Refusal {
    Refusal::new(404, ErrorCode::PoolUnavailable, message, false)
}

/// The Pool a request targets: its pin (never another), else the Pool serving its model with
/// the most Ready replicas (name breaks ties), else the only Pool.
pub fn choose_pool(snapshot: &Snapshot, req: &TaskRequest) -> Result<String, Refusal> {
    let pools: Vec<Pool> = snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == Kind::Pool)
        .filter_map(|o| object(snapshot, Kind::Pool, &o.object.name))
        .collect();
    if let Some(pin) = &req.pool {
        return pools
            .iter()
            .find(|p| p.name() == pin)
            .map(|p| p.name().to_string())
            .ok_or_else(|| {
                unavailable(format!(
                    "no pool `{pin}` is declared; see `orchctl get pools` (a pinned task never runs elsewhere)"
                ))
            });
    }
    let ready = |name: &str| {
        snapshot
            .replicas
            .iter()
            .filter(|r| r.pool == name && r.phase == ReplicaPhase::Ready)
            .count()
    };
    if let Some(model) = &req.model {
        let mut serving: Vec<&Pool> = pools.iter().filter(|p| &p.spec.model == model).collect();
        serving.sort_by(|a, b| ready(b.name()).cmp(&ready(a.name())).then(a.name().cmp(b.name())));
        return serving
            .first()
            .map(|p| p.name().to_string())
            .ok_or_else(|| unavailable(format!("no pool serves model `{model}`; see `orchctl get pools`")));
    }
    match pools.as_slice() {
        [only] => Ok(only.name().to_string()),
        [] => Err(unavailable(
            "no pool is declared; apply one with `orchctl apply -f`".into(),
        )),
        _ => Err(Refusal::new(
            400,
            ErrorCode::InvalidParams,
            "several pools exist: name one with `pool` or a `model`",
            false,
        )),
    }
}

impl PoolView {
    /// Reads Pool `name` from `snapshot`.
    pub fn read(snapshot: &Snapshot, name: &str) -> Result<PoolView, Refusal> {
        let pool: Pool = object(snapshot, Kind::Pool, name).ok_or_else(|| unavailable(format!("no pool `{name}`")))?;
        let engine: Engine = object(snapshot, Kind::Engine, &pool.spec.engine)
            .ok_or_else(|| unavailable(format!("pool `{name}`'s engine `{}` is not declared", pool.spec.engine)))?;
        let model: Model = object(snapshot, Kind::Model, &pool.spec.model)
            .ok_or_else(|| unavailable(format!("pool `{name}`'s model `{}` is not declared", pool.spec.model)))?;
        let free = |gpus: &[u32]| {
            snapshot
                .gpus
                .iter()
                .filter(|g| gpus.contains(&g.index))
                .map(|g| g.free_bytes)
                .sum::<u64>()
        };
        let ready = || {
            snapshot
                .replicas
                .iter()
                .filter(|r| r.pool == name && r.phase == ReplicaPhase::Ready)
        };
        let containers = ready()
            .filter_map(|r| Some((r.id.clone(), r.container_id.clone()?)))
            .collect();
        let replicas = ready()
            .filter_map(|r| {
                let endpoint = r.endpoint.clone()?;
                Some((
                    Replica {
                        id: r.id.clone(),
                        slots: pool.spec.slots_per_replica,
                        free_vram_bytes: free(&r.gpus),
                    },
                    endpoint,
                ))
            })
            .collect();
        Ok(PoolView {
            name: name.to_string(),
            replicas,
            containers,
            ctx_size: pool.spec.ctx_size.unwrap_or(model.spec.ctx_max),
            slots: pool.spec.slots_per_replica,
            queue: pool.spec.queue.clone(),
            sessions: pool.spec.sessions.clone(),
            engine: engine.name().to_string(),
            engine_version: engine.spec.version.clone(),
            api: engine.spec.api,
            model: model.name().to_string(),
        })
    }
}
