//! The reconcile loop. File events, container events, probe changes and a resync timer only
//! *wake* it; every pass re-reads the whole truth (manifests, labelled containers, GPUs),
//! reconciles every object, writes status and publishes a [`Snapshot`]. Passes never overlap,
//! so no object is ever reconciled twice at once, and the first pass is a full scan of both
//! manifests and containers before anything is touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::api::{GpuView, Snapshot};
use llorch_manifests::status::{EventType, ModelPhase, ObjectStatus, ReplicaStatus};
use llorch_manifests::{AnyObject, Kind, ObjectRef};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::conditions;
use crate::gpu::GpuInventory;
use crate::labels;
use crate::manifest_store::{DesiredState, ManifestStore};
use crate::models::{ModelManager, ModelsHandle, ModelsSettings, OpenError};
use crate::placement::{self, PlacementMemory};
use crate::pool::{PoolContext, PoolInputs, SlotMemory, reconcile_pool};
use crate::probe::Probers;
use crate::provision::{EngineCheck, Provisioner};
use crate::reloads::ReloadCounters;
use crate::retire::{AlwaysIdle, ReplicaGate};
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::state_dir::{EventLog, StatusFiles};

mod book;
mod objects;

/// Events arriving within this window are handled by one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// Settings of the loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Instance label.
    pub instance: String,
    /// Periodic resync.
    pub resync: Duration,
}

/// The controller: owns the loop state. Build it, then [`Controller::run`] it.
pub struct Controller<R: ContainerRuntime> {
    runtime: Arc<R>,
    settings: Settings,
    store: ManifestStore,
    models: ModelManager,
    gpus: Box<dyn GpuInventory>,
    gpu_view: Vec<GpuView>,
    placements: PlacementMemory,
    probers: Probers,
    slots: HashMap<String, BTreeMap<u32, SlotMemory>>,
    statuses: BTreeMap<ObjectRef, ObjectStatus>,
    status_files: StatusFiles,
    events: Arc<EventLog>,
    known: HashSet<String>,
    reported_errors: HashSet<String>,
    kept_orphans: HashSet<String>,
    last_ready: HashMap<ObjectRef, bool>,
    runtime_down: bool,
    snapshot: watch::Sender<Arc<Snapshot>>,
    wake: Arc<Notify>,
    provisioner: Provisioner,
    engine_checks: HashMap<String, EngineCheck>,
    gate: Arc<dyn ReplicaGate>,
    reloads: Arc<ReloadCounters>,
}

impl<R: ContainerRuntime> Controller<R> {
    /// A controller over `store`, driving `runtime`.
    pub fn new(
        runtime: Arc<R>,
        settings: Settings,
        store: ManifestStore,
        gpus: Box<dyn GpuInventory>,
        status_files: StatusFiles,
        events: Arc<EventLog>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let (snapshot, _) = watch::channel(Arc::new(Snapshot {
            instance: settings.instance.clone(),
            ..Snapshot::default()
        }));
        Self {
            probers: Probers::new(wake.clone()),
            provisioner: Provisioner::new(Default::default(), wake.clone()),
            engine_checks: HashMap::new(),
            runtime,
            settings,
            store,
            models: ModelManager::local_only(wake.clone()),
            gpus,
            gpu_view: Vec::new(),
            placements: PlacementMemory::default(),
            slots: HashMap::new(),
            statuses: BTreeMap::new(),
            status_files,
            events,
            known: HashSet::new(),
            reported_errors: HashSet::new(),
            kept_orphans: HashSet::new(),
            last_ready: HashMap::new(),
            runtime_down: false,
            snapshot,
            wake,
            gate: Arc::new(AlwaysIdle),
            reloads: Arc::new(ReloadCounters::in_memory()),
        }
    }

    /// Retires old replicas of a rollout through `gate` (the data plane's in-flight count)
    /// instead of removing them at once.
    pub fn with_gate(mut self, gate: Arc<dyn ReplicaGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Reads explicit reload counters from `reloads` (bumped by the API's reload route).
    pub fn with_reloads(mut self, reloads: Arc<ReloadCounters>) -> Self {
        self.reloads = reloads;
        self
    }

    /// Provisions Engines under `policy` (config `provisioning`): image pulls, source builds,
    /// package installs. The default allows none of them.
    pub fn with_provisioning(mut self, policy: llorch_manifests::config::ProvisioningPolicy) -> Self {
        self.provisioner = Provisioner::new(policy, self.wake.clone());
        self
    }

    /// Fetches and catalogs models per `settings` (cache, index file, download policy)
    /// instead of the default: `file:` references only, catalog in memory.
    pub fn with_models(mut self, settings: ModelsSettings) -> Result<Self, OpenError> {
        self.models = ModelManager::new(settings, self.wake.clone())?;
        Ok(self)
    }

    /// The model catalog as the API sees it (entries, pulls, verification counts).
    pub fn models_handle(&self) -> ModelsHandle {
        self.models.handle()
    }

    /// Receives every published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// Wakes the loop for an early pass (file and container watchers call this).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs passes until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.events.emit(
            None,
            None,
            EventType::Normal,
            "ControllerStarted",
            format!(
                "controller started: instance `{}`, manifests in {}, runtime {} at {}",
                self.settings.instance,
                self.store.dir().display(),
                self.runtime.identity().kind,
                self.runtime.identity().socket
            ),
        );
        loop {
            let next = self.pass().await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = tokio::time::sleep(next) => {}
            }
        }
    }

    /// One full reconcile pass; returns when the next one is due at the latest.
    pub async fn pass(&mut self) -> Duration {
        let desired = self.store.scan();
        self.report_new_errors(&desired);
        match self.gpus.devices() {
            Ok(v) => self.gpu_view = v,
            Err(e) => tracing::error!(error = %e, "GPU inventory failed; keeping the last known devices"),
        }
        let selector = labels::instance_selector(&self.settings.instance);
        let containers = match self.runtime.list(&selector).await {
            Ok(c) => {
                if std::mem::take(&mut self.runtime_down) {
                    let msg = "the container runtime answers again".to_string();
                    self.events.emit(None, None, EventType::Normal, "RuntimeAvailable", msg);
                }
                c
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list containers; nothing is changed until the runtime answers");
                if !std::mem::replace(&mut self.runtime_down, true) {
                    self.events
                        .emit(None, None, EventType::Warning, "RuntimeUnavailable", e.to_string());
                }
                return Duration::from_secs(1);
            }
        };
        let mut by_pool: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
        for c in containers {
            match labels::read(&c.labels) {
                Some(l) if desired.get(Kind::Pool, &l.pool).is_some() => by_pool.entry(l.pool).or_default().push(c),
                Some(l) if !desired.unknown_sources.is_empty() => {
                    // A manifest we cannot read may declare this pool: keep its containers.
                    if self.kept_orphans.insert(c.id.clone()) {
                        let obj = ObjectRef::new(Kind::Pool, l.pool);
                        self.events.emit(
                            Some(&obj),
                            None,
                            EventType::Warning,
                            "OrphanKept",
                            format!(
                                "keeping container {} although no readable manifest declares {obj}: {} cannot be read yet",
                                c.name,
                                desired.unknown_sources.join(", ")
                            ),
                        );
                    }
                }
                _ => self.remove_orphan(&c).await,
            }
        }

        let mut requeue = self.settings.resync;
        let mut replicas: Vec<ReplicaStatus> = Vec::new();
        let mut external_probes: HashSet<String> = HashSet::new();
        self.reconcile_models_and_engines(&desired).await;
        let plan = self.plan_placement(&desired, &by_pool);
        let no_placement = BTreeMap::new();
        let pools: Vec<_> = desired.of_kind(Kind::Pool).cloned().collect();
        for entry in pools {
            let AnyObject::Pool(pool) = &entry.object else { continue };
            let obj = entry.object.object_ref();
            let containers = by_pool.remove(pool.name()).unwrap_or_default();
            let mut status = self.take_status(&obj);
            status.generation = Some(entry.generation.clone());
            status.manifest_errors = entry.errors.clone();
            status.vram = self.placements.vram(pool.name());
            if let Some(engine) = crate::external::engine_of(&desired, pool).filter(|_| entry.actionable) {
                // Nothing of ours runs for it: containers left from another mode go.
                for c in &containers {
                    self.remove_orphan(c).await;
                }
                let out = crate::external::reconcile(&mut self.probers, pool, &engine, &mut status);
                status.observed_generation = Some(entry.generation.clone());
                requeue = requeue.min(out.requeue);
                external_probes.insert(out.probe_id);
                replicas.push(out.replica);
                self.put_status(status);
                continue;
            }
            match self.pool_inputs(&desired, pool, &entry.file) {
                Ok((engine, model, model_path, selection)) if entry.actionable => {
                    let slots = self.slots.entry(pool.name().to_string()).or_default();
                    let ctx = PoolContext {
                        runtime: &self.runtime,
                        instance: &self.settings.instance,
                        probers: &mut self.probers,
                        events: &self.events,
                        slots,
                        known: &mut self.known,
                        gate: self.gate.as_ref(),
                    };
                    let inputs = PoolInputs {
                        pool,
                        engine: &engine,
                        model: &model,
                        model_path: &model_path,
                        gpu_selection: &selection,
                        placement: plan.pools.get(pool.name()).unwrap_or(&no_placement),
                        gpus: &self.gpu_view,
                        gpus_simulated: self.gpus.simulated(),
                        reload: self.reloads.get(pool.name()),
                    };
                    let out = reconcile_pool(ctx, inputs, containers, &mut status, self.settings.resync).await;
                    status.observed_generation = Some(entry.generation.clone());
                    requeue = requeue.min(out.requeue);
                    replicas.extend(out.replicas);
                }
                Err(Blocked::WaitingForModel(why)) if entry.actionable => {
                    // A download under way is progress, not a failure: Progressing, not
                    // Degraded. Its containers are left exactly as they are, as when blocked.
                    let untouched = self.untouched_replicas(pool, &containers);
                    crate::pool::waiting_for_model(&mut status, pool, &untouched, &why);
                    status.observed_generation = Some(entry.generation.clone());
                    replicas.extend(untouched);
                    requeue = requeue.min(Duration::from_secs(2));
                }
                blocked => {
                    // Leave its containers exactly as they are: a broken reference or a missing
                    // model must not disturb replicas that serve.
                    let why = match blocked {
                        Err(Blocked::WaitingForModel(why) | Blocked::Broken(why)) => why,
                        Ok(_) => entry.errors.first().map(ToString::to_string).unwrap_or_default(),
                    };
                    conditions::set_failed(&mut status, "Blocked", format!("not reconciling: {why}"));
                    status.observed_generation = Some(entry.generation.clone());
                    replicas.extend(self.untouched_replicas(pool, &containers));
                    requeue = requeue.min(Duration::from_secs(2));
                }
            }
            self.put_status(status);
        }
        self.forget_deleted(&desired);
        let mut live: HashSet<String> = replicas.iter().filter_map(|r| r.container_id.clone()).collect();
        live.extend(external_probes);
        self.probers.retain(&live);
        self.publish(&desired, replicas);
        requeue
    }

    #[allow(clippy::type_complexity)]
    fn pool_inputs(
        &mut self,
        desired: &DesiredState,
        pool: &llorch_manifests::Pool,
        _file: &std::path::Path,
    ) -> Result<
        (
            llorch_manifests::Engine,
            llorch_manifests::Model,
            std::path::PathBuf,
            Vec<u32>,
        ),
        Blocked,
    > {
        let Some(AnyObject::Engine(engine)) = desired.get(Kind::Engine, &pool.spec.engine).map(|e| &e.object) else {
            return Err(format!("Engine `{}` does not exist", pool.spec.engine).into());
        };
        let engine = &crate::provision::launchable(engine, self.engine_checks.get(engine.name()))?;
        let Some(model_entry) = desired.get(Kind::Model, &pool.spec.model) else {
            return Err(format!("Model `{}` does not exist", pool.spec.model).into());
        };
        let AnyObject::Model(model) = &model_entry.object else {
            return Err(format!("Model `{}` does not exist", pool.spec.model).into());
        };
        let model_path = self
            .models
            .usable(model.name())
            .map_err(|why| self.blocked_on(model, why))?;
        let available: Vec<u32> = self.gpu_view.iter().map(|g| g.index).collect();
        let selection = pool.spec.gpus.select(&available);
        placement::mask_problem(&self.gpu_view, &selection, pool.spec.gpus_per_replica)?;
        Ok((engine.clone(), model.clone(), model_path, selection))
    }

    /// Why `model` keeps a Pool back: still on its way (its status says pending, fetching or
    /// verifying, as set earlier this pass), or unusable.
    fn blocked_on(&self, model: &llorch_manifests::Model, why: String) -> Blocked {
        let phase = self
            .statuses
            .get(&ObjectRef::new(Kind::Model, model.name()))
            .and_then(|s| s.model.as_ref())
            .map(|m| m.phase);
        match phase {
            Some(ModelPhase::Pending | ModelPhase::Fetching | ModelPhase::Verifying) => Blocked::WaitingForModel(why),
            _ => Blocked::Broken(why),
        }
    }

    /// Places every Pool's replicas on the GPUs before any Pool is reconciled (see
    /// `placement.rs`): one ledger for the whole host, so Pools never double-book a device.
    fn plan_placement(
        &mut self,
        desired: &DesiredState,
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> placement::Plan {
        let mut demands = Vec::new();
        let pools: Vec<_> = desired.of_kind(Kind::Pool).cloned().collect();
        for entry in &pools {
            let AnyObject::Pool(pool) = &entry.object else { continue };
            let place = entry.actionable
                && crate::external::engine_of(desired, pool).is_none()
                && self.pool_inputs(desired, pool, &entry.file).is_ok();
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
        let only: Vec<placement::PoolDemand> = demands.iter().map(|(d, _)| d.clone()).collect();
        let plan = placement::plan(&self.gpu_view, accounting, &existing, &only);
        self.placements.record(&plan, &demands, &self.events);
        plan
    }

    fn untouched_replicas(&self, pool: &llorch_manifests::Pool, containers: &[ContainerInfo]) -> Vec<ReplicaStatus> {
        containers
            .iter()
            .filter_map(|c| {
                let l = labels::read(&c.labels)?;
                let ready = self.probers.state(&c.id).is_some_and(|p| p.healthy);
                Some(ReplicaStatus {
                    id: format!("{}-{}", pool.name(), l.index),
                    pool: pool.name().to_string(),
                    index: l.index,
                    phase: if ready {
                        llorch_manifests::status::ReplicaPhase::Ready
                    } else {
                        llorch_manifests::status::ReplicaPhase::Unhealthy
                    },
                    container_id: Some(c.id.clone()),
                    container_name: Some(c.name.clone()),
                    endpoint: c.host_port.map(|p| format!("http://127.0.0.1:{p}")),
                    gpus: c
                        .labels
                        .get(labels::GPUS_KEY)
                        .map(|g| g.split(',').filter_map(|x| x.parse().ok()).collect())
                        .unwrap_or_default(),
                    gpus_simulated: c.labels.get(labels::GPUS_SIMULATED_KEY).is_some_and(|v| v == "true"),
                    engine_version: c.labels.get(labels::ENGINE_VERSION_KEY).cloned().unwrap_or_default(),
                    spec_hash: l.spec_hash,
                    restarts: 0,
                    ready_since: None,
                })
            })
            .collect()
    }

    async fn remove_orphan(&mut self, c: &ContainerInfo) {
        let pool = c.labels.get(labels::POOL_KEY).cloned().unwrap_or_default();
        let obj = ObjectRef::new(Kind::Pool, pool);
        match self.runtime.remove(&c.id).await {
            Ok(()) => self.events.emit(
                Some(&obj),
                None,
                EventType::Normal,
                "OrphanRemoved",
                format!(
                    "removed {} {} ({}): no manifest declares it",
                    crate::pool::noun(c),
                    c.name,
                    crate::pool::short(&c.id)
                ),
            ),
            Err(e) => self.events.emit(
                Some(&obj),
                None,
                EventType::Warning,
                "RemoveFailed",
                format!("cannot remove orphan {}: {e}", c.name),
            ),
        }
        self.slots.remove(&obj.name);
    }
}

/// Why a Pool is not reconciled this pass; either way its containers are left as they are.
enum Blocked {
    /// Its Model is being fetched or verified: progress, reported as such.
    WaitingForModel(String),
    /// A broken reference, an unusable Model, a GPU that does not exist: Degraded/Blocked.
    Broken(String),
}

impl From<String> for Blocked {
    fn from(why: String) -> Self {
        Blocked::Broken(why)
    }
}
