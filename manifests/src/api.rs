//! Control-plane wire types: what the daemon's `/v2` read endpoints return and `orchctl`
//! prints. The controller publishes a [`Snapshot`]; the API server only reads it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;
use crate::meta::ObjectRef;
use crate::status::{Event, ObjectStatus, ReplicaStatus};

/// Where an object was declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceRef {
    /// File path.
    pub file: String,
    /// Document index in the file.
    pub document: usize,
}

/// One object: its manifest (as last accepted), where it came from, and its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectView {
    /// Which object.
    pub object: ObjectRef,
    /// Where it is declared; none when its file is gone but the object is still being cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    /// The manifest as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
    /// Its status.
    pub status: ObjectStatus,
}

/// One GPU as the daemon sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuView {
    /// Device index.
    pub index: u32,
    /// Device UUID (`GPU-…`; `SIM-GPU-<n>` when simulated).
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Total VRAM, bytes.
    pub total_bytes: u64,
    /// Used VRAM, bytes.
    pub used_bytes: u64,
    /// Free VRAM, bytes.
    pub free_bytes: u64,
    /// GPU utilisation, percent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_pct: Option<u32>,
    /// True for the simulated inventory: no real device behind it.
    pub simulated: bool,
}

/// The container runtime the daemon drives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeInfo {
    /// `docker` or `podman`.
    pub kind: String,
    /// Socket URL.
    pub socket: String,
    /// Server version string.
    pub version: String,
}

/// Everything the control plane shows, as of one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// True once the first full scan of manifests and containers is done.
    pub synced: bool,
    /// This daemon's instance label.
    pub instance: String,
    /// All objects, sorted by kind then name.
    pub objects: Vec<ObjectView>,
    /// All replicas, sorted by pool then index.
    pub replicas: Vec<ReplicaStatus>,
    /// The GPU inventory.
    pub gpus: Vec<GpuView>,
    /// True when the GPU inventory is simulated.
    pub gpus_simulated: bool,
    /// Errors that could not be tied to one object (unreadable files, syntax errors).
    pub file_errors: Vec<ManifestError>,
    /// The container runtime.
    pub runtime: RuntimeInfo,
}

/// A page of events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<Event>,
}

/// The JSON body of every control-plane error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiErrorBody {
    /// Stable code, e.g. `NOT_FOUND`, `INVALID_PARAMS`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}
