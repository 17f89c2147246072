//! The Pools of a pass: resolving each one ([`crate::serving::resolve`]), placing every
//! Pool's replicas on the GPUs at once, then reconciling each Pool — through
//! [`crate::pool::reconcile_pool`], the external engine's probe, or not at all while it is
//! blocked or waits for its Model (its containers then stay exactly as they are). Each Pool's
//! status and serving contract is recorded here; the container work itself is `pool`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use llorch_manifests::api::GpuSource;
use llorch_manifests::identity::ReplicaLabels;
use llorch_manifests::status::{ModelPhase, ObjectStatus, ReplicaPhase, ReplicaStatus};
use llorch_manifests::{AnyObject, Blocked, Endpoint, Kind, ObjectRef, Pool, Reason};

use super::Controller;
use crate::conditions;
use crate::manifest_store::{DesiredState, Entry};
use crate::models::{ModelManager, Unusable};
use crate::placement;
use crate::pool::{PoolContext, PoolInputs, PoolOutcome, reconcile_pool};
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::serving::{self, ModelFiles, Resolved, Sources};

/// How soon a Pool that is blocked or waits for its Model is looked at again.
const BLOCKED_REQUEUE: Duration = Duration::from_secs(2);

/// Each Pool's resolution this pass, by name.
pub(super) type Resolutions = BTreeMap<String, Result<Resolved, Blocked>>;

/// What the placement planner is given in one pass.
pub(super) struct PlacementInputs {
    /// The GPUs (with the VRAM of Pools evicted this pass counted free).
    pub devices: Vec<llorch_manifests::api::GpuView>,
    /// How their free VRAM relates to our replicas.
    pub accounting: placement::Accounting,
    /// Our containers (but those of Pools evicted this pass).
    pub existing: Vec<placement::Existing>,
    /// What each Pool asks for, and its VRAM breakdown.
    pub demands: Vec<(placement::PoolDemand, llorch_manifests::status::PoolVram)>,
}

impl PlacementInputs {
    /// The demands alone.
    pub fn only(&self) -> Vec<placement::PoolDemand> {
        self.demands.iter().map(|(d, _)| d.clone()).collect()
    }
}

/// What reconciling the Pools produced.
pub(super) struct PoolsOutcome {
    /// When the next pass is due at the latest.
    pub requeue: Duration,
    /// Every Pool's replica rows.
    pub replicas: Vec<ReplicaStatus>,
    /// The probe keys of external replicas.
    external_probes: HashSet<String>,
}

impl PoolsOutcome {
    /// The probe keys to keep: containers of the rows, and external replicas.
    pub fn live(&self) -> HashSet<String> {
        let mut live: HashSet<String> = self.replicas.iter().filter_map(|r| r.container_id.clone()).collect();
        live.extend(self.external_probes.iter().cloned());
        live
    }
}

/// The Models as this pass saw them: files from the manager, phases from their status.
struct ModelsThisPass<'a> {
    manager: &'a ModelManager,
    statuses: &'a BTreeMap<ObjectRef, ObjectStatus>,
}

impl ModelFiles for ModelsThisPass<'_> {
    fn file(&self, name: &str) -> Result<PathBuf, Unusable> {
        self.manager.usable(name)
    }

    fn phase(&self, name: &str) -> Option<ModelPhase> {
        self.statuses
            .get(&ObjectRef::new(Kind::Model, name))
            .and_then(|s| s.model.as_ref())
            .map(|m| m.phase)
    }
}

impl<R: ContainerRuntime> Controller<R> {
    /// Resolves every Pool (after its Models and Engines were looked at this pass).
    pub(super) fn resolve_pools(&self, desired: &DesiredState) -> Resolutions {
        let models = ModelsThisPass {
            manager: &self.models,
            statuses: &self.statuses,
        };
        let sources = Sources {
            desired,
            engine_checks: &self.engine_checks,
            models: &models,
            gpus: &self.gpu_view,
            gpu_source: self.gpus.source(),
        };
        desired
            .of_kind(Kind::Pool)
            .filter_map(|entry| match &entry.object {
                AnyObject::Pool(pool) => {
                    let resolution = serving::actionable(entry, serving::resolve(pool, &sources));
                    Some((pool.name().to_string(), resolution))
                }
                _ => None,
            })
            .collect()
    }

    /// The planner's inputs for this pass: what each Pool asks of the GPUs, and our containers.
    pub(super) fn placement_inputs(
        &self,
        desired: &DesiredState,
        resolutions: &Resolutions,
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> PlacementInputs {
        let mut demands = Vec::new();
        for entry in desired.of_kind(Kind::Pool) {
            let AnyObject::Pool(pool) = &entry.object else { continue };
            let place = crate::external::engine_of(desired, pool).is_none()
                && resolutions.get(pool.name()).is_some_and(Result::is_ok);
            let model = match desired.get(Kind::Model, &pool.spec.model).map(|e| &e.object) {
                Some(AnyObject::Model(m)) => Some(m),
                _ => None,
            };
            let figures = model
                .and_then(|m| self.statuses.get(&ObjectRef::new(Kind::Model, m.name())))
                .and_then(|s| s.model.as_ref())
                .and_then(|m| m.vram.as_ref());
            demands.push(placement::memory::demand(pool, model, figures, &self.gpu_view, place));
        }
        let existing: Vec<placement::Existing> = by_pool
            .values()
            .flatten()
            .filter_map(|c| {
                // Loaded once Ready; a container first seen this pass (adopted after a
                // restart) has been running before us and counts as loaded.
                let loaded = self.probers.state(&c.id).is_none_or(|p| p.ever_healthy);
                placement::memory::existing(c, loaded)
            })
            .collect();
        let accounting = if self.gpus.simulated() {
            placement::Accounting::Simulated
        } else {
            placement::Accounting::Measured
        };
        PlacementInputs {
            devices: self.gpu_view.clone(),
            accounting,
            existing,
            demands,
        }
    }

    /// Places every Pool's replicas on the GPUs before any Pool is reconciled (see
    /// `placement.rs`): one ledger for the whole host, so Pools never double-book a device.
    pub(super) fn plan_placement(&mut self, inputs: &PlacementInputs) -> placement::Plan {
        let only = inputs.only();
        let plan = placement::plan(&inputs.devices, inputs.accounting, &inputs.existing, &only);
        self.placements.record(&plan, &inputs.demands, &self.events);
        plan
    }

    /// Reconciles every declared Pool (each has a resolution), in name order, and records what
    /// each serves.
    pub(super) async fn reconcile_pools(
        &mut self,
        desired: &DesiredState,
        resolutions: Resolutions,
        placed: (&PlacementInputs, &placement::Plan),
        by_pool: &mut BTreeMap<String, Vec<ContainerInfo>>,
        evicted: &[String],
    ) -> PoolsOutcome {
        let (inputs, plan) = placed;
        let mut out = PoolsOutcome {
            requeue: self.settings.resync,
            replicas: Vec::new(),
            external_probes: HashSet::new(),
        };
        self.serving.start_pass();
        // Evicted Pools first: their replicas are gone before the Pool they made room for starts.
        let mut resolutions: Vec<_> = resolutions.into_iter().collect();
        resolutions.sort_by_key(|(name, _)| !evicted.contains(name));
        for (name, resolution) in resolutions {
            let Some(entry) = desired.get(Kind::Pool, &name) else {
                continue;
            };
            let AnyObject::Pool(pool) = &entry.object else { continue };
            let containers = by_pool.remove(&name).unwrap_or_default();
            let mut status = self.take_status(&entry.object.object_ref());
            status.generation = Some(entry.generation.clone());
            status.manifest_errors = entry.errors.clone();
            status.vram = self.placements.vram(&name);
            if let Some(engine) = crate::external::engine_of(desired, pool).filter(|_| entry.actionable) {
                // Nothing of ours runs for it: containers left from another mode go.
                for c in &containers {
                    self.remove_orphan(c).await;
                }
                let external = crate::external::reconcile(&mut self.probers, pool, &engine, &mut status);
                self.serving
                    .reconciled(&name, serving::external_contract(pool, &engine, desired));
                out.requeue = out.requeue.min(external.requeue);
                out.external_probes.insert(external.probe_id);
                out.replicas.push(external.replica);
            } else {
                let servable = resolution.is_ok();
                let room = crate::pool::SurgeRoom {
                    free: plan.free.clone(),
                    shares: inputs
                        .demands
                        .iter()
                        .find(|(d, _)| d.name == name)
                        .map(|(d, _)| d.shares(d.gpus_per_replica as usize))
                        .unwrap_or_default(),
                };
                let done = self
                    .reconcile_resolved(entry, pool, resolution, (plan, room), containers, &mut status)
                    .await;
                out.requeue = out.requeue.min(done.requeue);
                if let Some(idle_in) = self.sized_status(pool, servable, &mut status) {
                    out.requeue = out.requeue.min(idle_in.max(Duration::from_millis(100)));
                }
                out.replicas.extend(done.replicas);
            }
            status.observed_generation = Some(entry.generation.clone());
            self.put_status(status);
        }
        out
    }

    /// Reconciles a Pool on containers of ours by its resolution, or leaves it alone.
    async fn reconcile_resolved(
        &mut self,
        entry: &Entry,
        pool: &Pool,
        resolution: Result<Resolved, Blocked>,
        (plan, room): (&placement::Plan, crate::pool::SurgeRoom),
        containers: Vec<ContainerInfo>,
        status: &mut ObjectStatus,
    ) -> PoolOutcome {
        match resolution {
            Ok(resolved) => {
                let no_placement = BTreeMap::new();
                let ctx = PoolContext {
                    runtime: &self.runtime,
                    instance: &self.settings.instance,
                    probers: &mut self.probers,
                    events: &self.events,
                    slots: self.slots.entry(pool.name().to_string()).or_default(),
                    known: &mut self.known,
                    gate: self.gate.as_ref(),
                };
                let inputs = PoolInputs {
                    pool,
                    engine: &resolved.engine,
                    model: &resolved.model,
                    model_path: &resolved.model_path,
                    gpu_selection: &resolved.gpu_selection,
                    placement: plan.pools.get(pool.name()).unwrap_or(&no_placement),
                    gpus: &self.gpu_view,
                    gpus_simulated: self.gpus.simulated(),
                    reload: self.reloads.get(pool.name()),
                    room,
                    // Only NVML lists processes: simulated and absent GPUs are never checked.
                    on_gpu_grace: (self.gpus.source() == GpuSource::Nvml).then_some(self.on_gpu_grace),
                    weights_bytes: status
                        .vram
                        .as_ref()
                        .filter(|v| v.source == placement::vram::SOURCE_GGUF)
                        .map(|v| v.weights_bytes),
                };
                let done = reconcile_pool(ctx, inputs, containers, status, self.settings.resync).await;
                self.serving.reconciled(pool.name(), Some(resolved.contract(pool)));
                done
            }
            Err(why) if why.is_waiting() && entry.actionable => {
                // A download under way is progress, not a failure: Progressing, not
                // Degraded. Its containers are left exactly as they are, as when blocked.
                let untouched = self.untouched_replicas(pool, &containers);
                crate::pool::waiting_for_model(status, pool, &untouched, &why.to_string());
                self.serving.blocked(pool.name(), why);
                PoolOutcome {
                    replicas: untouched,
                    requeue: BLOCKED_REQUEUE,
                }
            }
            Err(why) => {
                // Leave its containers exactly as they are: a broken reference or a missing
                // model must not disturb replicas that serve.
                conditions::set_failed(status, Reason::Blocked, format!("not reconciling: {why}"));
                self.serving.blocked(pool.name(), why);
                PoolOutcome {
                    replicas: self.untouched_replicas(pool, &containers),
                    requeue: BLOCKED_REQUEUE,
                }
            }
        }
    }

    /// The rows of a Pool's containers as they are: Ready while their probe passes.
    fn untouched_replicas(&self, pool: &Pool, containers: &[ContainerInfo]) -> Vec<ReplicaStatus> {
        containers
            .iter()
            .filter_map(|c| {
                let l = ReplicaLabels::read(&c.labels)?;
                let ready = self.probers.state(&c.id).is_some_and(|p| p.healthy);
                Some(ReplicaStatus {
                    id: l.id(),
                    pool: pool.name().to_string(),
                    index: l.index,
                    phase: if ready {
                        ReplicaPhase::Ready
                    } else {
                        ReplicaPhase::Unhealthy
                    },
                    container_id: Some(c.id.clone()),
                    container_name: Some(c.name.clone()),
                    endpoint: c.host_port.map(Endpoint::loopback),
                    gpus: l.gpus,
                    gpus_simulated: l.gpus_simulated,
                    engine_version: l.engine_version,
                    spec_hash: l.spec_hash,
                    restarts: 0,
                    ready_since: None,
                    kv_cache_usage_ratio: None,
                })
            })
            .collect()
    }
}
