//! Control-plane wire types: what the daemon's `/v2` read endpoints return and `orchctl`
//! prints. The controller publishes a [`Snapshot`]; the API server only reads it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;
use crate::identity::ReplicaId;
use crate::meta::ObjectRef;
use crate::serving::ServingPool;
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
    /// Processes using the device (NVML), largest first. Empty also when NVML cannot list
    /// them: `processListing` tells the two apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<GpuProcess>,
    /// Whether `processes` is NVML's list or NVML could not give one (absent: listed).
    #[serde(default, skip_serializing_if = "ProcessListing::is_listed")]
    pub process_listing: ProcessListing,
    /// Driver or ECC problems; a device with any is unhealthy and its replicas are not Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Where the daemon's GPU inventory comes from: the config's `gpus:`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GpuSource {
    /// NVIDIA's management library: real GPUs.
    #[default]
    Nvml,
    /// The config's simulated list (tests and demos).
    Simulated,
    /// `gpus: none`: no GPUs; only Pools on `external` Engines run.
    None,
}

impl GpuSource {
    /// `nvml`, `simulated` or `none`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuSource::Nvml => "nvml",
            GpuSource::Simulated => "simulated",
            GpuSource::None => "none",
        }
    }
}

impl std::fmt::Display for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether NVML could list a device's processes. When it cannot (some vGPU and MIG setups,
/// containers without the host's PID namespace, old drivers), an empty list means nothing,
/// and checks that look for a process there cannot decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProcessListing {
    /// `processes` is the device's list (simulated devices: always, and always empty).
    #[default]
    Listed,
    /// NVML answered `NotSupported` (or the driver lacks the call).
    NotSupported,
    /// NVML answered `NoPermission`.
    NoPermission,
    /// The query failed otherwise (the device reports the error in `errors`).
    Failed,
}

impl ProcessListing {
    /// True when the list is NVML's answer.
    pub fn is_listed(&self) -> bool {
        *self == ProcessListing::Listed
    }

    /// Why there is no list, in words; `None` when listed.
    pub fn why_not(self) -> Option<&'static str> {
        match self {
            ProcessListing::Listed => None,
            ProcessListing::NotSupported => {
                Some("NVML does not support listing its processes (NotSupported; common on vGPU)")
            }
            ProcessListing::NoPermission => Some("NVML refuses to list its processes (NoPermission)"),
            ProcessListing::Failed => Some("listing its processes through NVML failed"),
        }
    }
}

/// A process holding memory on a GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuProcess {
    /// Process id (in the host's namespace).
    pub pid: u32,
    /// Device memory it holds, when the driver reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
}

/// A Model artifact in the local catalog (`GET /v2/catalog`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// `sha256:<hex>` of the content: the cache key.
    pub digest: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// The file in the content-addressed cache (or the user's own file for `file:` refs).
    pub path: String,
    /// The references it was fetched or read from.
    pub refs: Vec<String>,
    /// Models that declare it now.
    #[serde(default)]
    pub models: Vec<String>,
    /// `Active` while a Model declares it, `Retired` after.
    pub lifecycle: Lifecycle,
    /// When it entered the catalog (RFC 3339).
    pub added_at: String,
}

/// A catalog entry's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Lifecycle {
    /// Declared by at least one Model.
    Active,
    /// No Model declares it; kept in the cache until removed.
    Retired,
}

/// `GET /v2/pools/{id}/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolHealth {
    /// Pool name.
    pub pool: String,
    /// At least one replica process is up (running, whether or not Ready).
    pub live: bool,
    /// At least one replica is Ready and the pool admits tasks.
    pub ready: bool,
    /// Admission is stopped by a drain.
    pub draining: bool,
    /// Milliseconds left before a drain cancels what still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline_in_ms: Option<u64>,
    /// Tasks running on the pool's replicas.
    pub in_flight: u32,
    /// Tasks waiting in its queue.
    pub queued: u32,
    /// Of those, interactive ones in the queue.
    #[serde(default)]
    pub queued_interactive: u32,
    /// Of those, batch ones in the queue.
    #[serde(default)]
    pub queued_batch: u32,
    /// Replica slots the data plane places tasks on.
    #[serde(default)]
    pub slots_total: u32,
    /// Of those, slots running a task.
    #[serde(default)]
    pub slots_busy: u32,
    /// Predicted milliseconds before a task submitted now would start (behind everything
    /// queued), from the Pool's service-time estimate; absent before its first task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_wait_ms: Option<u64>,
    /// Replica counts.
    pub replicas: crate::status::ReplicaCounts,
    /// The current or last reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::status::Rollout>,
    /// The most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST /v2/pools/{id}/drain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// How long running tasks may take to finish before they are canceled.
    pub deadline_ms: u64,
}

/// `POST /v2/pools/{id}/reload`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// The Model to serve from now on; none reloads the current one (new replicas, same spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// `POST /v2/pools/{id}/scale`: a fixed Pool's new `replicas`, or new `scaling` bounds for a
/// Pool sized by demand (either or both). What is sent must fit how the Pool is sized.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// `spec.replicas` from now on (0–16), for a Pool of fixed size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `spec.scaling.minReplicas` from now on, for a Pool sized by demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// `spec.scaling.maxReplicas` from now on (1–16), for a Pool sized by demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
}

/// `POST /v2/pools/{id}/scale`'s 202 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScaleAccepted {
    /// Pool name.
    pub pool: String,
    /// The manifest file that holds its size (edited unless `from` equals `to`).
    pub file: String,
    /// Its size before, as its file declared it.
    pub from: crate::pool_size::PoolSize,
    /// Its size now.
    pub to: crate::pool_size::PoolSize,
    /// What happens next and how to follow it.
    pub message: String,
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
    /// What the data plane serves, per Pool, sorted by name: resolved once per pass.
    #[serde(default)]
    pub serving: Vec<ServingPool>,
    /// The GPU inventory.
    pub gpus: Vec<GpuView>,
    /// True when the GPU inventory is simulated.
    pub gpus_simulated: bool,
    /// Where the inventory comes from (`none`: this daemon has no GPUs at all).
    #[serde(default)]
    pub gpu_source: GpuSource,
    /// Errors that could not be tied to one object (unreadable files, syntax errors).
    pub file_errors: Vec<ManifestError>,
    /// The container runtime.
    pub runtime: RuntimeInfo,
}

impl Snapshot {
    /// Pool `name`'s serving view.
    pub fn serving(&self, name: &str) -> Option<&ServingPool> {
        self.serving
            .binary_search_by(|p| p.pool.as_str().cmp(name))
            .ok()
            .and_then(|i| self.serving.get(i))
    }
}

/// A page of events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<Event>,
}

/// `GET /v2/gpus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GpuList {
    /// True when the inventory is simulated: no real device behind any of these GPUs.
    pub simulated: bool,
    /// Where the inventory comes from (`none`: this daemon has no GPUs at all).
    #[serde(default)]
    pub source: GpuSource,
    /// The GPUs, by index.
    pub gpus: Vec<GpuView>,
}

/// `GET /v2/replicas/{id}/logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogTail {
    /// The replica id.
    pub replica: ReplicaId,
    /// Oldest first.
    pub lines: Vec<String>,
}

/// `POST /v2/models/{name}/pull`'s 202 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PullAccepted {
    /// The Model.
    pub model: String,
    /// Where to follow it.
    pub message: String,
}

/// How a reload is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadAction {
    /// `spec.model` was changed in the Pool's manifest file.
    Manifest,
    /// Same spec, new replicas (the Pool's reload counter was bumped).
    Restart,
}

/// `POST /v2/pools/{id}/reload`'s 202 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadAccepted {
    /// Pool name.
    pub pool: String,
    /// The Model the new replicas serve.
    pub model: String,
    /// How.
    pub action: ReloadAction,
    /// The manifest file changed, for `manifest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The pool's reload counter after the bump, for `restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<u64>,
    /// What happens next.
    pub message: String,
}

/// At most this many files in one [`ApplyRequest`].
pub const MAX_APPLY_FILES: usize = 64;

/// One manifest file sent to `POST /v2/manifests`: its name (for errors and the written file's
/// header) and its YAML text, parsed by the daemon exactly as a file in its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestText {
    /// How errors name it (the client's file name, or `stdin`); at most 256 bytes.
    pub name: String,
    /// The YAML, one or more documents; at most `MAX_MANIFEST_BYTES`.
    pub text: String,
}

/// `POST /v2/manifests`: apply these objects (`orchctl apply`/`diff` against a remote daemon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    /// The files, at most [`MAX_APPLY_FILES`].
    pub files: Vec<ManifestText>,
    /// Check and report what would change, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What applying one object does (or did).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// No such object before.
    Created,
    /// It existed and differed.
    Configured,
    /// It existed and was equal; its file was not touched.
    Unchanged,
}

impl ApplyAction {
    /// As kubectl prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyAction::Created => "created",
            ApplyAction::Configured => "configured",
            ApplyAction::Unchanged => "unchanged",
        }
    }
}

/// One object of an [`ApplyResult`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    /// Which object.
    pub object: ObjectRef,
    /// What happened to it.
    pub action: ApplyAction,
    /// The file on the daemon's machine that holds it.
    pub file: String,
    /// Its generation (`short_hash`), what `status.observedGeneration` reaches once acted on.
    pub generation: String,
    /// The object as written, as YAML, secrets redacted.
    pub yaml: String,
    /// The object as it was declared before, as YAML, secrets redacted; none when created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_yaml: Option<String>,
}

/// `POST /v2/manifests`'s 200 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// True when nothing was written.
    pub dry_run: bool,
    /// One entry per object: Engines, then Models, then Pools.
    pub objects: Vec<AppliedObject>,
    /// Worth saying, not blocking (problems the directory already had).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// True when the snapshot already shows every written object at its new generation (the
    /// daemon waits a few seconds for that); `orchctl wait` can follow at once either way.
    pub synced: bool,
}

/// `DELETE /v2/manifests/{kind}/{name}`'s 200 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    /// Which object.
    pub object: ObjectRef,
    /// The file that was removed.
    pub file: String,
    /// References this broke (the objects that name it now report them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// True when the snapshot no longer shows the object.
    pub synced: bool,
}

/// Why the write API wrote nothing. Each variant is one HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The request or its manifests do not parse or validate, or would break the directory
    /// (`422 INVALID_MANIFEST`); one entry per error, each naming file and field.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The daemon's config does not allow it (`403 POLICY_REFUSED`).
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// Files the API must not overwrite, or a file that holds other objects too
    /// (`409 CONFLICT`), with what to do by hand.
    #[error("{}", .0.join("\n"))]
    Conflict(Vec<String>),
    /// No such object (`404 NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing the directory failed (`500`).
    #[error("{0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_gpu_without_process_listing_on_the_wire_is_listed_and_an_unlisted_one_says_why() {
        let old =
            r#"{"index":0,"uuid":"GPU-1","name":"g","totalBytes":1,"usedBytes":0,"freeBytes":1,"simulated":false}"#;
        let g: GpuView = serde_json::from_str(old).unwrap();
        assert_eq!(g.process_listing, ProcessListing::Listed);
        assert!(!serde_json::to_string(&g).unwrap().contains("processListing"));
        let unlisted = GpuView {
            process_listing: ProcessListing::NotSupported,
            ..g
        };
        let json = serde_json::to_string(&unlisted).unwrap();
        assert!(json.contains(r#""processListing":"notSupported""#), "{json}");
        assert_eq!(serde_json::from_str::<GpuView>(&json).unwrap(), unlisted);
        assert!(ProcessListing::NoPermission.why_not().unwrap().contains("NoPermission"));
        assert_eq!(ProcessListing::Listed.why_not(), None);
    }
}
