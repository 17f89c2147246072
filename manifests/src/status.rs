//! What the controller observed and did, per object and per replica, and the event records it
//! emits. Kept by the daemon in its state directory, never in the user's manifest files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;
use crate::meta::ObjectRef;

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
    /// A CamelCase machine-readable reason, e.g. `ReplicasReady`, `EngineCrashLoop`.
    pub reason: String,
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
}

/// One replica of a Pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// `<pool>-<index>`.
    pub id: String,
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
    /// `http://127.0.0.1:<port>` where the engine answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
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
    pub replica: Option<String>,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: EventType,
    /// CamelCase reason, e.g. `ReplicaCreated`, `EngineCrashed`, `ManifestInvalid`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}
