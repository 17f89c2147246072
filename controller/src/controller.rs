//! The reconcile loop. File events, container events, probe changes and a resync timer only
//! *wake* it; every pass re-reads the whole truth (manifests, labelled containers, GPUs),
//! reconciles every object, writes status and publishes a [`Snapshot`]. Passes never overlap,
//! so no object is ever reconciled twice at once, and the first pass is a full scan of both
//! manifests and containers before anything is touched.
//!
//! This file owns the loop and the order of a pass's steps; each step lives in a submodule:
//! `containers` (listing and orphans), `objects` (Models and Engines), `pools` (resolving,
//! placing and reconciling Pools), `book` (status, events, the published snapshot). It never
//! serves HTTP and never reads the data plane's state beyond the retirement gate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::api::{GpuView, Snapshot};
use llorch_manifests::status::{EventType, ObjectStatus};
use llorch_manifests::{ObjectRef, Reason};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::gpu::GpuInventory;
use crate::manifest_store::ManifestStore;
use crate::models::{ModelManager, ModelsHandle, ModelsSettings, OpenError};
use crate::placement::PlacementMemory;
use crate::pool::SlotMemory;
use crate::probe::Probers;
use crate::provision::{EngineCheck, Provisioner};
use crate::reloads::ReloadCounters;
use crate::retire::{AlwaysIdle, ReplicaGate};
use crate::runtime::ContainerRuntime;
use crate::serving::ServingBook;
use crate::state_dir::{EventLog, StatusFiles};

mod book;
mod containers;
mod eviction;
mod objects;
mod pools;
mod sizing;

/// Events arriving within this window are handled by one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// The next pass after the runtime did not answer.
const RUNTIME_RETRY: Duration = Duration::from_secs(1);

/// Settings of the loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Instance label.
    pub instance: String,
    /// Periodic resync.
    pub resync: Duration,
}

/// The NotOnGpu grace when none is configured (as config `onGpuGrace`'s default).
pub const DEFAULT_ON_GPU_GRACE: Duration = Duration::from_secs(60);

/// The controller: owns the loop state. Build it, then [`Controller::run`] it.
pub struct Controller<R: ContainerRuntime> {
    runtime: Arc<R>,
    settings: Settings,
    /// Scanned on a blocking thread (file reads must not stall the async workers).
    store: Arc<std::sync::Mutex<ManifestStore>>,
    manifests_dir: std::path::PathBuf,
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
    demand: Arc<dyn crate::scaling::DemandSource>,
    scale: crate::scaling::ScaleBook,
    /// This pass's size of each Pool with `spec.scaling`.
    sizes: HashMap<String, crate::scaling::Sized>,
    /// How long each sleeping Pool takes to wake.
    cold: crate::cold_start::ColdStarts,
    reloads: Arc<ReloadCounters>,
    serving: ServingBook,
    /// How long a Ready replica on NVML GPUs may go without its processes on them.
    on_gpu_grace: Duration,
    /// Passes run so far (the `reconcile pass` span's `pass`).
    passes: u64,
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
            manifests_dir: store.dir().to_path_buf(),
            store: Arc::new(std::sync::Mutex::new(store)),
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
            demand: Arc::new(crate::scaling::NoDemand),
            scale: crate::scaling::ScaleBook::default(),
            sizes: HashMap::new(),
            cold: crate::cold_start::ColdStarts::default(),
            reloads: Arc::new(ReloadCounters::in_memory()),
            serving: ServingBook::default(),
            on_gpu_grace: DEFAULT_ON_GPU_GRACE,
            passes: 0,
        }
    }

    /// Publishes into `publish`, a channel made before the controller (so the data plane can
    /// hold its receiver first), instead of the controller's own.
    pub fn publishing_to(mut self, publish: watch::Sender<Arc<Snapshot>>) -> Self {
        self.snapshot = publish;
        self
    }

    /// Retires old replicas of a rollout through `gate` (the data plane's in-flight count)
    /// instead of removing them at once.
    pub fn with_gate(mut self, gate: Arc<dyn ReplicaGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Marks a Ready replica on NVML GPUs NotOnGpu once its processes have been missing from
    /// one of its GPUs for `grace` (config `onGpuGrace`; default [`DEFAULT_ON_GPU_GRACE`]).
    pub fn with_on_gpu_grace(mut self, grace: Duration) -> Self {
        self.on_gpu_grace = grace;
        self
    }

    /// Sizes Pools with `spec.scaling` by `demand` (the data plane's queues) instead of
    /// seeing no demand anywhere.
    pub fn with_demand(mut self, demand: Arc<dyn crate::scaling::DemandSource>) -> Self {
        self.demand = demand;
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
            Reason::ControllerStarted,
            format!(
                "controller started: instance `{}`, manifests in {}, runtime {} at {}",
                self.settings.instance,
                self.manifests_dir.display(),
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

    /// One full reconcile pass; returns when the next one is due at the latest. The pass is
    /// one `reconcile pass` span: its number, the Pools declared, the containers it created
    /// and removed, and the replicas Ready after it.
    pub async fn pass(&mut self) -> Duration {
        self.passes += 1;
        let span = tracing::info_span!(
            "reconcile pass",
            pass = i64::try_from(self.passes).unwrap_or(i64::MAX),
            pools = Empty,
            containers_created = Empty,
            containers_removed = Empty,
            replicas_ready = Empty,
        );
        self.reconcile(&span).instrument(span.clone()).await
    }

    async fn reconcile(&mut self, span: &tracing::Span) -> Duration {
        let store = Arc::clone(&self.store);
        let scanned = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            store.scan()
        })
        .await;
        let desired = match scanned {
            Ok(desired) => desired,
            Err(e) => {
                // A panic in the scan is a bug; the next pass scans again (the store's last good
                // copies survive: its lock recovers from poison).
                tracing::error!(error = %e, "the manifest scan failed; retrying");
                return RUNTIME_RETRY;
            }
        };
        self.report_new_errors(&desired);
        self.read_gpus();
        let Some(containers) = self.list_containers().await else {
            return RUNTIME_RETRY;
        };
        let before: HashSet<String> = containers.iter().map(|c| c.id.clone()).collect();
        let mut by_pool = self.claim_containers(&desired, containers).await;
        self.reconcile_models_and_engines(&desired).await;
        let resolutions = self.resolve_pools(&desired);
        // Pools sized by demand are seen at this pass's size from here on (placement and
        // reconcile); the snapshot publishes the manifests as written.
        let mut sized = self.size_pools(&desired, &by_pool);
        let mut inputs = self.placement_inputs(&sized, &resolutions, &by_pool);
        let evicted = self.evict_for_activations(&mut sized, &mut inputs, &by_pool);
        let plan = self.plan_placement(&inputs);
        self.time_wakes(&inputs, &plan, &by_pool);
        let pools = self
            .reconcile_pools(&sized, resolutions, (&inputs, &plan), &mut by_pool, &evicted)
            .await;
        self.time_ready(&pools.replicas);
        record_pass(span, &desired, &before, &pools.replicas);
        self.forget_deleted(&desired);
        self.probers.retain(&pools.live());
        let mut replicas = pools.replicas;
        self.probers.annotate(&mut replicas);
        self.publish(&desired, replicas);
        pools.requeue
    }

    /// The GPU inventory; when it cannot be read, the last known devices stay.
    fn read_gpus(&mut self) {
        match self.gpus.devices() {
            Ok(v) => self.gpu_view = v,
            Err(e) => tracing::error!(error = %e, "GPU inventory failed; keeping the last known devices"),
        }
    }
}

/// What a pass did, on its span: Pools declared, containers that appeared and went (from the
/// pass's container list to the replicas it published), replicas Ready.
fn record_pass(
    span: &tracing::Span,
    desired: &crate::manifest_store::DesiredState,
    before: &HashSet<String>,
    replicas: &[llorch_manifests::status::ReplicaStatus],
) {
    let after: HashSet<&str> = replicas.iter().filter_map(|r| r.container_id.as_deref()).collect();
    let created = after.iter().filter(|id| !before.contains(**id)).count();
    let removed = before.iter().filter(|id| !after.contains(id.as_str())).count();
    let ready = replicas
        .iter()
        .filter(|r| r.phase == llorch_manifests::status::ReplicaPhase::Ready)
        .count();
    let pools = desired
        .objects
        .keys()
        .filter(|r| r.kind == llorch_manifests::Kind::Pool)
        .count();
    // As i64: tracing-opentelemetry turns a u64 or usize into a string attribute.
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    span.record("pools", count(pools));
    span.record("containers_created", count(created));
    span.record("containers_removed", count(removed));
    span.record("replicas_ready", count(ready));
}
