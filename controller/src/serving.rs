//! What each Pool serves, resolved once per pass: [`resolve`] turns a Pool and what it names
//! (its Engine as launched, its Model's file, its GPU selection) into the inputs its replicas
//! are reconciled with, or into the typed reason it is [`Blocked`]; [`ServingBook`] keeps the
//! last [`ServingContract`] each Pool was reconciled with and builds the [`ServingPool`]s the
//! snapshot publishes for the data plane.
//!
//! Pure: no runtime, no I/O. What the Models look like comes in through [`ModelFiles`]. It
//! never acts on a Pool: the controller decides what a resolution means for its containers.

use std::collections::HashMap;
use std::path::PathBuf;

use llorch_manifests::api::{GpuSource, GpuView};
use llorch_manifests::status::{ModelPhase, ReplicaStatus};
use llorch_manifests::{
    AnyObject, Blocked, Engine, Kind, Model, Pool, Provisioning, ServingContract, ServingPool, ServingReplica,
};

use crate::manifest_store::{DesiredState, Entry};
use crate::models::Unusable;
use crate::placement;
use crate::provision::{self, EngineCheck};

/// A Pool whose references all resolve: what its replicas are made from.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Its Engine as launched ([`provision::launchable`]).
    pub engine: Engine,
    /// Its Model.
    pub model: Model,
    /// The Model's file on the host.
    pub model_path: PathBuf,
    /// The GPU indices it may use.
    pub gpu_selection: Vec<u32>,
}

impl Resolved {
    /// The contract `pool`'s replicas run under.
    pub fn contract(&self, pool: &Pool) -> ServingContract {
        ServingContract::resolve(
            &pool.spec,
            &self.engine.spec,
            &self.model.spec,
            Some(self.model_path.display().to_string()),
        )
    }
}

/// What the Models look like this pass.
pub trait ModelFiles {
    /// Model `name`'s file, or why a Pool cannot use it.
    fn file(&self, name: &str) -> Result<PathBuf, Unusable>;
    /// Model `name`'s phase as its status says this pass (none when it has no status yet).
    fn phase(&self, name: &str) -> Option<ModelPhase>;
}

/// Everything [`resolve`] reads.
pub struct Sources<'a> {
    /// The manifests.
    pub desired: &'a DesiredState,
    /// Each Engine's check of this pass, by name.
    pub engine_checks: &'a HashMap<String, EngineCheck>,
    /// The Models.
    pub models: &'a dyn ModelFiles,
    /// The GPU inventory.
    pub gpus: &'a [GpuView],
    /// Where it comes from: under `gpus: none` only Pools on `external` Engines run.
    pub gpu_source: GpuSource,
}

/// Resolves `pool`'s Engine, Model and GPUs, in that order; the first that fails blocks it.
/// Under `gpus: none` a Pool whose Engine is not `external` is blocked right after its Engine
/// is found: nothing of it can run on this daemon, so nothing else about it matters here.
pub fn resolve(pool: &Pool, from: &Sources<'_>) -> Result<Resolved, Blocked> {
    let Some(AnyObject::Engine(engine)) = from.desired.get(Kind::Engine, &pool.spec.engine).map(|e| &e.object) else {
        return Err(Blocked::EngineMissing {
            engine: pool.spec.engine.clone(),
        });
    };
    if !servable_here(from.gpu_source, engine.spec.provisioning) {
        return Err(Blocked::NoGpus {
            engine: engine.name().to_string(),
            provisioning: engine.spec.provisioning,
        });
    }
    let engine =
        provision::launchable(engine, from.engine_checks.get(engine.name())).map_err(|e| Blocked::EngineUnusable {
            engine: engine.name().to_string(),
            message: e.to_string(),
        })?;
    let Some(AnyObject::Model(model)) = from.desired.get(Kind::Model, &pool.spec.model).map(|e| &e.object) else {
        return Err(Blocked::ModelMissing {
            model: pool.spec.model.clone(),
        });
    };
    let model_path = from.models.file(model.name()).map_err(|why| {
        let (model, message) = (model.name().to_string(), why.to_string());
        match from.models.phase(&model) {
            // Still on its way (as its status says this pass): progress, not a failure.
            Some(ModelPhase::Pending | ModelPhase::Fetching | ModelPhase::Verifying) => {
                Blocked::WaitingForModel { model, message }
            }
            _ => Blocked::ModelUnusable { model, message },
        }
    })?;
    let available: Vec<u32> = from.gpus.iter().map(|g| g.index).collect();
    let gpu_selection = pool.spec.gpus.select(&available);
    placement::mask_problem(from.gpus, &gpu_selection, pool.spec.gpus_per_replica)
        .map_err(|e| Blocked::GpuSelection { message: e.to_string() })?;
    Ok(Resolved {
        engine,
        model: model.clone(),
        model_path,
        gpu_selection,
    })
}

/// True when this daemon, whose GPUs come from `gpus`, can serve a Pool on an Engine
/// provisioned as `provisioning`: on an `external` one always (nothing of it runs here), on any
/// other only where there are GPUs (`nvml` or a simulated list) — never under `gpus: none`.
pub fn servable_here(gpus: GpuSource, provisioning: Provisioning) -> bool {
    provisioning == Provisioning::External || gpus != GpuSource::None
}

/// True when such a Pool's engine runs on this host and so reads its Model's file here: a
/// servable Pool whose Engine is not `external`.
pub fn runs_locally(gpus: GpuSource, provisioning: Provisioning) -> bool {
    provisioning != Provisioning::External && servable_here(gpus, provisioning)
}

/// `resolution`, unless `entry`'s manifest errors make its Pool not actionable: then it is
/// blocked by the first of them (what failed to resolve still comes first).
pub fn actionable(entry: &Entry, resolution: Result<Resolved, Blocked>) -> Result<Resolved, Blocked> {
    match resolution {
        Ok(_) if !entry.actionable => Err(Blocked::ManifestInvalid {
            message: entry.errors.first().map(ToString::to_string).unwrap_or_default(),
        }),
        other => other,
    }
}

/// The contract of a Pool on an `external` Engine: the Engine's version and API, the context
/// from the Pool and its Model. None without the Model (validation requires it, so this only
/// guards against a manifest set that is not actionable).
pub fn external_contract(pool: &Pool, engine: &Engine, desired: &DesiredState) -> Option<ServingContract> {
    let Some(AnyObject::Model(model)) = desired.get(Kind::Model, &pool.spec.model).map(|e| &e.object) else {
        return None;
    };
    // Someone else's engine loads its own model: no file of ours.
    Some(ServingContract::resolve(&pool.spec, &engine.spec, &model.spec, None))
}

/// The serving view across passes.
#[derive(Debug, Default)]
pub struct ServingBook {
    /// The last contract each Pool was reconciled with; kept while it is blocked, because its
    /// containers are left running as they were.
    contracts: HashMap<String, ServingContract>,
    /// Why each blocked Pool is blocked, this pass.
    blocked: HashMap<String, Blocked>,
}

impl ServingBook {
    /// Forgets the previous pass's reasons; contracts stay.
    pub fn start_pass(&mut self) {
        self.blocked.clear();
    }

    /// `pool` was reconciled this pass, with `contract` when it resolved to one.
    pub fn reconciled(&mut self, pool: &str, contract: Option<ServingContract>) {
        if let Some(contract) = contract {
            self.contracts.insert(pool.to_string(), contract);
        }
    }

    /// `pool` is not reconciled this pass, for `why`.
    pub fn blocked(&mut self, pool: &str, why: Blocked) {
        self.blocked.insert(pool.to_string(), why);
    }

    /// `pool` is no longer declared.
    pub fn forget(&mut self, pool: &str) {
        self.contracts.remove(pool);
        self.blocked.remove(pool);
    }

    /// One [`ServingPool`] per Pool in `pools`, sorted by name, with its Ready replicas that
    /// have an endpoint and the free VRAM of their GPUs in `gpus` (the published view).
    pub fn view<'a>(
        &self,
        pools: impl IntoIterator<Item = &'a Pool>,
        replicas: &[ReplicaStatus],
        gpus: &[GpuView],
    ) -> Vec<ServingPool> {
        let mut out: Vec<ServingPool> = pools
            .into_iter()
            .map(|pool| {
                ServingPool::new(
                    pool.name(),
                    &pool.spec,
                    self.contracts.get(pool.name()).cloned(),
                    self.blocked.get(pool.name()).cloned(),
                    serving_replicas(pool.name(), replicas, gpus),
                )
            })
            .collect();
        out.sort_by(|a, b| a.pool.cmp(&b.pool));
        out
    }
}

fn serving_replicas(pool: &str, replicas: &[ReplicaStatus], gpus: &[GpuView]) -> Vec<ServingReplica> {
    let mut out: Vec<(u32, ServingReplica)> = replicas
        .iter()
        .filter(|r| r.pool == pool)
        .filter_map(|r| Some((r.index, ServingReplica::from_status(r, gpus)?)))
        .collect();
    out.sort_by_key(|(index, _)| *index);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;
