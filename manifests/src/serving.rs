//! The serving contract between the controller and the data plane: per Pool, everything the
//! data plane needs to admit a task and send it to an engine, already resolved from the
//! Pool, its Engine and its Model. The controller computes it once per pass and publishes it
//! in the [`Snapshot`](crate::api::Snapshot); the data plane reads it and never deserializes a
//! manifest.
//!
//! A Pool the controller cannot reconcile is [`Blocked`], with a typed reason. Blocked does
//! not mean closed: the controller leaves such a Pool's containers exactly as they are, so
//! the replicas that were Ready keep serving under the contract they were started with (the
//! last one resolved). Only a Pool that never had a contract in this daemon's life cannot
//! serve at all.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{GpuView, Snapshot};
use crate::engine::{ApiFlavour, EngineSpec};
use crate::identity::{Endpoint, ReplicaId};
use crate::meta::Kind;
use crate::model::ModelSpec;
use crate::pool::{PoolSpec, QueueSpec, SessionSpec};
use crate::status::{ReplicaPhase, ReplicaStatus};

/// One Pool as the data plane serves it. `Default` is for hand-built views (tests, fuzz
/// harnesses), which name what they set and leave the rest at its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingPool {
    /// The Pool's name.
    pub pool: String,
    /// The Model it declares (`spec.model`): what a task's `model` names.
    pub model: String,
    /// The Engine it declares (`spec.engine`).
    pub engine: String,
    /// What its replicas were started with; none while it never could be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<ServingContract>,
    /// Why the controller does not reconcile it now, if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    /// Concurrent sequences per replica.
    pub slots_per_replica: u32,
    /// The admission queue.
    pub queue: QueueSpec,
    /// Session lifetime and token budget.
    pub sessions: SessionSpec,
    /// The replicas tasks may be placed on: Ready, with an endpoint; by index.
    pub replicas: Vec<ServingReplica>,
    /// True when the Pool may have no replica and wakes when a task arrives
    /// (`scaling.minReplicas: 0`): a task is then queued, not refused, while none is Ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scales_to_zero: bool,
    /// For a Pool that may sleep: how long a wake is expected to take (its measured average,
    /// else a prior from its VRAM need), which a waking Pool's `predicted_start_ms` includes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start_ms: Option<u64>,
    /// For a Pool that may sleep and is waking: the replica failure that ended this wake (the
    /// engine's reason), until a replica is Ready or the Pool sleeps; the data plane ends the
    /// tasks queued for the wake with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_error: Option<crate::status::LastError>,
    /// A `Recreate` rollout stopped a replica to start its new revision: while none is Ready,
    /// a task is queued, not refused (the replica is coming back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recreating: bool,
    /// What it serves: generation or embeddings.
    #[serde(default, skip_serializing_if = "crate::Workload::is_default")]
    pub workload: crate::Workload,
    /// The Pool opted out of job records (`spec.records.enabled: false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub records_off: bool,
}

impl ServingPool {
    /// Pool `name`'s view: its spec's queue, sessions and slots, what its replicas run
    /// (`contract`), why it is not reconciled (`blocked`), and its Ready `replicas`.
    pub fn new(
        name: &str,
        spec: &PoolSpec,
        contract: Option<ServingContract>,
        blocked: Option<Blocked>,
        replicas: Vec<ServingReplica>,
    ) -> Self {
        Self {
            pool: name.to_string(),
            model: spec.model.clone(),
            engine: spec.engine.clone(),
            contract,
            blocked,
            slots_per_replica: spec.slots_per_replica,
            queue: spec.queue.clone(),
            sessions: spec.sessions.clone(),
            replicas,
            scales_to_zero: spec.scales_to_zero(),
            cold_start_ms: None,
            wake_error: None,
            recreating: false,
            workload: spec.workload,
            records_off: !spec.records.enabled,
        }
    }

    /// The contract, or why there is none (a 503 for the data plane).
    pub fn usable(&self) -> Result<&ServingContract, Unservable<'_>> {
        match &self.contract {
            Some(c) => Ok(c),
            None => Err(Unservable { pool: self }),
        }
    }

    /// `name version` of its engine, for error bodies and fingerprints.
    pub fn engine_label(&self) -> String {
        match &self.contract {
            Some(c) => format!("{} {}", self.engine, c.engine_version),
            None => self.engine.clone(),
        }
    }
}

/// A Pool that has no contract: it cannot take tasks. Displays why.
#[derive(Clone, Copy, Debug)]
pub struct Unservable<'a> {
    pool: &'a ServingPool,
}

impl fmt::Display for Unservable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pool.blocked {
            Some(why) => write!(f, "pool `{}` cannot serve: {why}", self.pool.pool),
            None => write!(f, "pool `{}` is not resolved yet", self.pool.pool),
        }
    }
}

/// What a Pool's replicas run, resolved from its Engine and Model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingContract {
    /// The Engine's version label.
    pub engine_version: String,
    /// The HTTP API the engine speaks.
    pub api: ApiFlavour,
    /// The effective context size per replica ([`PoolSpec::effective_ctx`]).
    ///
    /// [`PoolSpec::effective_ctx`]: crate::PoolSpec::effective_ctx
    pub ctx_size: u32,
    /// The Model's declared digest (`sha256:…`), when it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_digest: Option<String>,
    /// The model file on the host, when one is local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
}

impl ServingContract {
    /// What the replicas of a Pool with `pool`'s spec run, given its Engine and Model as
    /// declared and the model file the controller resolved.
    pub fn resolve(pool: &PoolSpec, engine: &EngineSpec, model: &ModelSpec, model_file: Option<String>) -> Self {
        Self {
            engine_version: engine.version.clone(),
            api: engine.api,
            ctx_size: pool.effective_ctx(model),
            model_digest: model.digest.clone(),
            model_file,
        }
    }
}

/// A Ready replica, with what placement needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingReplica {
    /// `<pool>-<index>`.
    pub id: ReplicaId,
    /// Where its engine answers.
    pub endpoint: Endpoint,
    /// Its container (or process) id; none for an external engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Its GPUs.
    #[serde(default)]
    pub gpus: Vec<u32>,
    /// Free VRAM on its GPUs, bytes, as of the pass.
    pub free_vram_bytes: u64,
}

impl ServingReplica {
    /// The row of a replica tasks may be placed on: Ready, with an endpoint; its free VRAM is
    /// the sum over its GPUs in `gpus`. `None` for any other replica.
    pub fn from_status(r: &ReplicaStatus, gpus: &[GpuView]) -> Option<Self> {
        if r.phase != ReplicaPhase::Ready {
            return None;
        }
        Some(Self {
            id: r.id.clone(),
            endpoint: r.endpoint.clone()?,
            container_id: r.container_id.clone(),
            gpus: r.gpus.clone(),
            free_vram_bytes: gpus
                .iter()
                .filter(|g| r.gpus.contains(&g.index))
                .map(|g| g.free_bytes)
                .sum(),
        })
    }
}

/// The serving view of every Pool in `snapshot`'s objects, resolved from the manifests and
/// replica rows it carries: a Pool whose Engine or Model is not among them is blocked without
/// a contract. For fixtures and tools that build a snapshot by hand; the daemon's controller
/// resolves its own each pass (with the model files and GPUs it checked).
pub fn from_objects(snapshot: &Snapshot) -> Vec<ServingPool> {
    fn spec<T: serde::de::DeserializeOwned>(snapshot: &Snapshot, kind: Kind, name: &str) -> Option<T> {
        let view = snapshot
            .objects
            .iter()
            .find(|o| o.object.kind == kind && o.object.name == name)?;
        let manifest = view.manifest.as_ref()?.get("spec")?;
        T::deserialize(manifest).ok()
    }
    let mut pools: Vec<ServingPool> = snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == Kind::Pool)
        .filter_map(|o| {
            let name = o.object.name.as_str();
            let pool: PoolSpec = spec(snapshot, Kind::Pool, name)?;
            let engine: Option<EngineSpec> = spec(snapshot, Kind::Engine, &pool.engine);
            let model: Option<ModelSpec> = spec(snapshot, Kind::Model, &pool.model);
            let (contract, blocked) = match (engine, model) {
                (Some(e), Some(m)) => (Some(ServingContract::resolve(&pool, &e, &m, None)), None),
                (None, _) => (
                    None,
                    Some(Blocked::EngineMissing {
                        engine: pool.engine.clone(),
                    }),
                ),
                (_, None) => (
                    None,
                    Some(Blocked::ModelMissing {
                        model: pool.model.clone(),
                    }),
                ),
            };
            let replicas = snapshot
                .replicas
                .iter()
                .filter(|r| r.pool == name)
                .filter_map(|r| ServingReplica::from_status(r, &snapshot.gpus))
                .collect();
            Some(ServingPool::new(name, &pool, contract, blocked, replicas))
        })
        .collect();
    pools.sort_by(|a, b| a.pool.cmp(&b.pool));
    pools
}

/// Why a Pool is not reconciled this pass. Either way its containers are left as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "PascalCase", rename_all_fields = "camelCase")]
pub enum Blocked {
    /// Its manifest (or one it depends on) has errors; the message names file and field.
    ManifestInvalid {
        /// The first error.
        message: String,
    },
    /// Its Engine is not declared.
    EngineMissing {
        /// The Engine it names.
        engine: String,
    },
    /// Its Model is not declared.
    ModelMissing {
        /// The Model it names.
        model: String,
    },
    /// Its Engine cannot be launched here (missing image or executable, provisioning refused).
    EngineUnusable {
        /// The Engine.
        engine: String,
        /// Why.
        message: String,
    },
    /// Its Model's artifact is not usable (failed fetch, wrong digest, not GGUF …).
    ModelUnusable {
        /// The Model.
        model: String,
        /// Why.
        message: String,
    },
    /// Its Model is still being fetched or verified: progress, not a failure.
    WaitingForModel {
        /// The Model.
        model: String,
        /// What is happening.
        message: String,
    },
    /// Its GPU selection cannot be met (a GPU that does not exist, too few GPUs).
    GpuSelection {
        /// Why.
        message: String,
    },
    /// The daemon has no GPUs (`gpus: none`) and its Engine is not `external`: nothing of it
    /// can run here.
    NoGpus {
        /// The Engine.
        engine: String,
        /// How it is provisioned (`container`, `binary`, …).
        provisioning: crate::engine::Provisioning,
    },
}

impl Blocked {
    /// True for a Model on its way (reported as Progressing, not Degraded).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Blocked::WaitingForModel { .. })
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::ManifestInvalid { message } => f.write_str(message),
            Blocked::EngineMissing { engine } => write!(f, "Engine `{engine}` does not exist"),
            Blocked::ModelMissing { model } => write!(f, "Model `{model}` does not exist"),
            Blocked::EngineUnusable { message, .. }
            | Blocked::ModelUnusable { message, .. }
            | Blocked::WaitingForModel { message, .. }
            | Blocked::GpuSelection { message } => f.write_str(message),
            Blocked::NoGpus { engine, provisioning } => write!(
                f,
                "this daemon has no GPUs (config `gpus: none`), so only Pools on `external` Engines run here, \
                 and Engine `{engine}` is `provisioning: {provisioning}`; run this Pool on a daemon with GPUs and \
                 point an `external` Engine here at it, or set `gpus: nvml` in config.yaml on a host with GPUs",
                provisioning = provisioning.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(contract: Option<ServingContract>, blocked: Option<Blocked>) -> ServingPool {
        ServingPool {
            pool: "chat".into(),
            model: "tiny".into(),
            engine: "mock".into(),
            contract,
            blocked,
            slots_per_replica: 2,
            queue: QueueSpec::default(),
            sessions: SessionSpec::default(),
            replicas: Vec::new(),
            ..ServingPool::default()
        }
    }

    fn contract() -> ServingContract {
        ServingContract {
            engine_version: "b1".into(),
            api: ApiFlavour::Llamacpp,
            ctx_size: 4096,
            model_digest: None,
            model_file: Some("/m/tiny.gguf".into()),
        }
    }

    #[test]
    fn a_pool_without_a_contract_says_why_it_cannot_serve() {
        let p = pool(None, Some(Blocked::EngineMissing { engine: "mock".into() }));
        let why = p.usable().unwrap_err().to_string();
        assert_eq!(why, "pool `chat` cannot serve: Engine `mock` does not exist");
        assert_eq!(p.engine_label(), "mock");
    }

    #[test]
    fn a_pool_blocked_for_want_of_gpus_says_why_and_what_to_do() {
        let why = Blocked::NoGpus {
            engine: "llama".into(),
            provisioning: crate::engine::Provisioning::Container,
        };
        let json = serde_json::to_value(&why).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"reason": "NoGpus", "engine": "llama", "provisioning": "container"})
        );
        let text = why.to_string();
        assert!(
            text.starts_with("this daemon has no GPUs (config `gpus: none`)"),
            "{text}"
        );
        assert!(text.contains("Engine `llama` is `provisioning: container`"), "{text}");
        assert!(text.contains("point an `external` Engine here"), "{text}");
    }

    #[test]
    fn a_blocked_pool_with_a_contract_still_serves() {
        let p = pool(Some(contract()), Some(Blocked::ModelMissing { model: "tiny".into() }));
        assert_eq!(p.usable().unwrap().ctx_size, 4096);
        assert_eq!(p.engine_label(), "mock b1");
    }

    #[test]
    fn blocked_reasons_are_tagged_on_the_wire() {
        let json = serde_json::to_value(Blocked::WaitingForModel {
            model: "tiny".into(),
            message: "fetching".into(),
        })
        .unwrap();
        assert_eq!(json["reason"], "WaitingForModel");
        assert_eq!(json["model"], "tiny");
        assert!(
            Blocked::WaitingForModel {
                model: "m".into(),
                message: "x".into()
            }
            .is_waiting()
        );
    }
}
