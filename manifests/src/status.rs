//! What the controller observed and did, per object and per replica, and the event records it
//! emits. Kept by the daemon in its state directory, never in the user's manifest files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;
use crate::identity::{Endpoint, ReplicaId};
use crate::meta::ObjectRef;
use crate::reason::Reason;

/// A condition's type (Kubernetes-style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum ConditionType {
    /// The object is serving as declared.
    Ready,
    /// The controller is working towards the declared state.
    Progressing,
    /// Something is wrong: see the condition's message and `lastError`.
    Degraded,
}

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which condition.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// Whether it holds.
    pub status: bool,
    /// Why, machine-readable, e.g. `ReplicasReady`, `EngineCrashLoop`.
    pub reason: Reason,
    /// A sentence for people.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

/// The restart circuit breaker of a replica slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    /// Restarts happen with exponential backoff.
    #[default]
    Closed,
    /// Too many consecutive failures: restarts are paused.
    Open,
    /// One trial start is allowed.
    HalfOpen,
}

/// The most recent failure, with the engine's own last words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// What failed.
    pub message: String,
    /// The engine's last log lines, when a container was involved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// Replica counts of a Pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicaCounts {
    /// `spec.replicas`.
    pub desired: u32,
    /// Replicas whose health probe passes.
    pub ready: u32,
}

/// Where a Pool sized by `scaling` stands, as of the controller's last pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    /// `spec.scaling.minReplicas`.
    pub min_replicas: u32,
    /// `spec.scaling.maxReplicas`.
    pub max_replicas: u32,
    /// Replicas the controller runs it at now.
    pub replicas: u32,
    /// True while it sleeps: no replica, no VRAM; the next task wakes it.
    pub asleep: bool,
    /// When it last had a task queued or running (RFC 3339); none since the daemon started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
    /// The Pool it was evicted to make room for, while it sleeps because of that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_for: Option<String>,
    /// Wakes since the daemon started.
    pub activations: u64,
    /// Times it was evicted since the daemon started.
    pub evictions: u64,
    /// How long a wake is expected to take (measured average, else a prior), milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start_ms: Option<u64>,
    /// Every measured wake since the daemon started, bucketed (the cold-start histogram).
    #[serde(default, skip_serializing_if = "WakeTimes::is_empty")]
    pub wake_times: WakeTimes,
}

/// Upper bounds of [`WakeTimes`]' buckets, milliseconds (a last, unbounded bucket follows).
pub const WAKE_BUCKETS_MS: [u64; 10] = [
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000,
];

/// Measured wakes of a Pool, bucketed by [`WAKE_BUCKETS_MS`]: what `/metrics` exposes as
/// the `llorch_pool_cold_start_seconds` histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WakeTimes {
    /// Wakes per bucket (not cumulative): `buckets[i]` took at most `WAKE_BUCKETS_MS[i]` and
    /// more than the bound before it; the last entry counts those above every bound.
    pub buckets: Vec<u64>,
    /// Wakes measured.
    pub count: u64,
    /// Their total duration, milliseconds.
    pub sum_ms: u64,
}

impl WakeTimes {
    /// Counts one wake that took `ms`.
    pub fn observe(&mut self, ms: u64) {
        self.buckets.resize(WAKE_BUCKETS_MS.len() + 1, 0);
        let i = WAKE_BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(WAKE_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// No wake measured yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Status of one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// Which object.
    pub object: ObjectRef,
    /// Hash of the manifest as last read (changes when the user edits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    /// Ready / Progressing / Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// For Pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaCounts>,
    /// Engine restarts after crashes, over the object's life (kept across daemon restarts).
    #[serde(default)]
    pub restarts: u64,
    /// The worst circuit state among the Pool's replica slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitState>,
    /// Delay before the next restart attempt, when one is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_in_ms: Option<u64>,
    /// The most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Problems with the object's manifest (parse, validation, references).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifest_errors: Vec<ManifestError>,
    /// For Models: the artifact's fetch, verification and VRAM figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelState>,
    /// For Pools: what one replica needs in VRAM and where replicas were placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram: Option<PoolVram>,
    /// For Pools: the last or current reload (model or engine change, or `reload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// For Pools sized by `scaling`: where they stand (docs/scaling.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
    /// When the status last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
}

impl ObjectStatus {
    /// An empty status for `object`.
    pub fn new(object: ObjectRef) -> Self {
        Self {
            object,
            generation: None,
            observed_generation: None,
            conditions: Vec::new(),
            replicas: None,
            restarts: 0,
            circuit: None,
            next_restart_in_ms: None,
            last_error: None,
            manifest_errors: Vec::new(),
            model: None,
            vram: None,
            rollout: None,
            scaling: None,
            updated_at: String::new(),
        }
    }

    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// True when the Ready condition holds.
    pub fn is_ready(&self) -> bool {
        self.condition(ConditionType::Ready).is_some_and(|c| c.status)
    }
}

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub enum ReplicaPhase {
    /// Container created; waiting for the health probe.
    Starting,
    /// Health probe passes: tasks may be placed here.
    Ready,
    /// Was Ready; probes are failing.
    Unhealthy,
    /// The engine exited; a restart is scheduled (see backoff).
    BackingOff,
    /// Restarts paused by the circuit breaker.
    CircuitOpen,
    /// Being removed (surplus, outdated or orphaned).
    Terminating,
    /// Replaced by a new revision in a reload: takes no new tasks, finishes the ones it runs,
    /// then goes.
    Draining,
    /// Its engine answers, but none of its processes computes on a GPU it was placed on (NVML
    /// lists none of them there) past `onGpuGrace`: it computes on the CPU. Out of service
    /// (no task is placed on it) but left running so its logs can be read; Ready again once
    /// its process shows up on every GPU.
    NotOnGpu,
}

/// One replica of a Pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// `<pool>-<index>`.
    pub id: ReplicaId,
    /// The Pool.
    pub pool: String,
    /// Replica index in the Pool (0-based).
    pub index: u32,
    /// Phase.
    pub phase: ReplicaPhase,
    /// Container id, when a container exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Container name, when a container exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Where the engine answers (`http://127.0.0.1:<port>`, or an external engine's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// GPU indices assigned.
    #[serde(default)]
    pub gpus: Vec<u32>,
    /// True when the GPUs are from the simulated inventory.
    #[serde(default)]
    pub gpus_simulated: bool,
    /// Engine version label.
    pub engine_version: String,
    /// Spec hash the container was created from.
    pub spec_hash: String,
    /// Restarts of this slot.
    #[serde(default)]
    pub restarts: u64,
    /// When it became Ready (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<String>,
    /// The share of the engine's KV cache in use, 0 to 1, as the engine last reported it
    /// (read every few seconds while the replica is healthy; absent when the engine's API
    /// reports none, as TGI's, or before the first reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage_ratio: Option<f64>,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// Expected progress.
    Normal,
    /// Something needs attention.
    Warning,
}

/// One state change, appended to `state/events.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When (RFC 3339).
    pub ts: String,
    /// The object concerned; none for daemon-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// The replica concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaId>,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: EventType,
    /// Why, machine-readable, e.g. `ReplicaCreated`, `EngineCrashed`, `ManifestInvalid`.
    pub reason: Reason,
    /// A sentence for people.
    pub message: String,
}

/// Where a Model's artifact is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModelPhase {
    /// Not looked at yet.
    #[default]
    Pending,
    /// Being downloaded into the cache (see `bytesDone` / `bytesTotal`).
    Fetching,
    /// Being hashed.
    Verifying,
    /// On disk, verified when a digest is declared, and measured.
    Ready,
    /// Unusable: see the Model's `lastError`; no Pool that uses it starts replicas.
    Failed,
    /// Not fetched, verified or measured here: every Pool that uses it runs elsewhere (on an
    /// `external` Engine, or anywhere under `gpus: none`), and the engine that serves it loads
    /// its own weights. Neither Ready nor Failed: this daemon holds no file for it.
    NotFetched,
}

/// A Model's artifact as the catalog sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelState {
    /// Where it is.
    pub phase: ModelPhase,
    /// The URL it is fetched from (credentials never included), for remote refs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// The file engines are given, once Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its sha256 (`sha256:<hex>`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bytes fetched (or hashed) so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// Total bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// What the GGUF header says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufInfo>,
    /// The VRAM figures placement uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram: Option<ModelVram>,
}

/// The parts of a GGUF header that size a model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GgufInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// Tensors in the file.
    pub tensor_count: u64,
    /// Transformer blocks (`<arch>.block_count`).
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention), = heads when absent.
    pub kv_heads: u32,
    /// Embedding width.
    pub embedding_length: u32,
    /// Trained context length.
    pub context_length: u32,
}

/// A Model's VRAM figures, independent of any Pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVram {
    /// `gguf` (from the header) or `override` (`spec.vramBytes`).
    pub source: String,
    /// Sum of the tensor sizes (gguf), or the override.
    pub weights_bytes: u64,
    /// KV-cache bytes per token of context per sequence (f16 K and V); 0 for overrides.
    pub kv_bytes_per_token: u64,
}

/// What one replica of a Pool needs, and the breakdown behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolVram {
    /// `gguf` or `override`.
    pub source: String,
    /// Model weights.
    pub weights_bytes: u64,
    /// KV cache at the Pool's context size (shared by its slots).
    pub kv_cache_bytes: u64,
    /// Compute buffers and the CUDA context.
    pub overhead_bytes: u64,
    /// Total per replica (spread over the replica's GPUs).
    pub per_replica_bytes: u64,
    /// Placement decisions for this Pool since the daemon started, by outcome (`placed`,
    /// `refused`): what `placement_decisions_total` counts. Counted when a replica's decision
    /// changes, not on every pass.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub decisions: std::collections::BTreeMap<String, u64>,
}

/// Where a reload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutPhase {
    /// New replicas are starting next to the old ones.
    Progressing,
    /// New replicas are Ready; old ones finish their tasks and go.
    Draining,
    /// Done: only new replicas serve.
    Complete,
    /// The new replicas failed; the old ones were kept and serve on.
    RolledBack,
}

/// A reload of a Pool from one revision (spec hash) to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Where it stands.
    pub phase: RolloutPhase,
    /// The revision being replaced.
    pub from_revision: String,
    /// The revision being rolled out.
    pub to_revision: String,
    /// The model before, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_model: Option<String>,
    /// The model after, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_model: Option<String>,
    /// A sentence for people (why it rolled back, what is left).
    pub message: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How the replicas are being replaced (`spec.rollout.strategy` resolved for this rollout).
    #[serde(default)]
    pub method: RolloutMethod,
}

/// How a rollout replaces replicas: what `spec.rollout.strategy` (`Auto`, `Surge`,
/// `Recreate`) came to for one rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutMethod {
    /// New replicas next to the old ones; a failure rolls back.
    #[default]
    Surge,
    /// Each old replica stops before its new one starts, one at a time; no rollback.
    Recreate,
}

impl std::fmt::Display for RolloutMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Surge => "Surge",
            Self::Recreate => "Recreate",
        })
    }
}
