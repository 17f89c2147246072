//! Every machine-readable reason llama-orch gives, in events and in conditions: one enum, so
//! a reason is spelled once, a reader can match on it, and docs can list them all. On the wire
//! (status files, `events.jsonl`, the API) each is its CamelCase name, e.g. `ReplicaCreated`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Why an event happened or a condition holds (or not).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The reason as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$name => stringify!($name), )*
                }
            }
        }
    };
}

reasons! {
    // The daemon and its runtime.
    /// The reconcile loop started.
    ControllerStarted,
    /// The container runtime does not answer; nothing is changed until it does.
    RuntimeUnavailable,
    /// The container runtime answers again.
    RuntimeAvailable,

    // Manifests and objects.
    /// A manifest file or object was refused; the message names the file, document and field.
    ManifestInvalid,
    /// The object is no longer declared.
    Deleted,
    /// The object became Ready.
    Ready,
    /// The object stopped being Ready.
    NotReady,
    /// Valid and nothing more to do (Engines).
    Valid,
    /// Everything is as declared.
    AsExpected,
    /// A Pool refers to something that cannot be used; its containers are left as they are.
    Blocked,
    /// A Pool waits for its Model to be fetched or verified.
    WaitingForModel,

    // Replicas of a Pool.
    /// A replica's container or process was created.
    ReplicaCreated,
    /// A replica was recreated after a failure.
    ReplicaRestarted,
    /// A running container of a previous daemon was taken over, not restarted.
    ReplicaAdopted,
    /// A surplus replica was removed (scale down).
    ReplicaRemoved,
    /// A replica runs an older spec than the manifests declare.
    ReplicaOutdated,
    /// An old replica takes no new tasks and goes once idle (reload).
    ReplicaRetiring,
    /// An old replica went after a reload.
    ReplicaRetired,
    /// A second container in one replica slot was removed.
    DuplicateRemoved,
    /// A container no manifest declares was removed.
    OrphanRemoved,
    /// A container no readable manifest declares was kept: a manifest that cannot be read yet
    /// may declare it.
    OrphanKept,
    /// Creating a replica failed.
    CreateFailed,
    /// Removing a container failed.
    RemoveFailed,
    /// An engine failed (exited, never became healthy, or stayed unhealthy); its logs are kept.
    EngineFailed,
    /// An engine crashed and counts as a restart.
    EngineCrashed,
    /// A Pool's replicas keep crashing; restarts back off.
    EngineCrashLoop,
    /// Restarts are paused by the circuit breaker.
    CircuitOpen,
    /// All of a Pool's replicas are Ready.
    ReplicasReady,
    /// Some of a Pool's replicas are still starting.
    ReplicasStarting,
    /// Some of a Pool's replicas are not Ready.
    ReplicasNotReady,

    // Placement on GPUs.
    /// A replica does not fit on any GPU it may use; it is not started.
    PlacementRefused,
    /// A Pool's replicas need more VRAM than its GPUs have free.
    InsufficientVram,
    /// A Ready replica's processes do not appear on a GPU it was placed on (NVML), past
    /// `onGpuGrace`: it computes on the CPU. It is taken out of service, left running; the
    /// message names the GPU, the pids looked for and the fix.
    NotOnGpu,
    /// A replica that was NotOnGpu shows up on all its GPUs again and serves.
    OnGpu,
    /// NVML cannot list a GPU's processes (NotSupported, NoPermission): whether a replica
    /// computes on it cannot be checked, and is not.
    OnGpuUnchecked,

    // Scaling by demand.
    /// A Pool sized by `scaling` went without a task for its `idleTimeout`: its replicas are
    /// removed and its VRAM freed; the next task wakes it.
    ScaledToZero,
    /// A task arrived for a Pool that was scaled to zero: a replica starts.
    Activated,
    /// An idle Pool was scaled to zero before its `idleTimeout` to free VRAM for another
    /// Pool's activation (lowest `priority` first, then least recently used).
    Evicted,
    /// A Pool sized by `scaling` had tasks waiting for a slot for a while: one more replica
    /// (up to `maxReplicas`, when the VRAM fits).
    ScaledUp,
    /// A Pool sized by `scaling` had a replica's worth of slots idle for its `idleTimeout`:
    /// one replica fewer (down to `max(minReplicas, 1)` while awake).
    ScaledDown,

    // Reloads.
    /// A new revision starts next to the old one.
    RollingOut,
    /// A rollout began: the new revision's replicas start next to the old ones.
    RolloutStarted,
    /// A replica of the new revision was created next to the old one.
    RolloutReplicaCreated,
    /// Every new replica is Ready; the old ones finish their tasks before they go.
    RolloutDraining,
    /// The new revision took over.
    RolloutComplete,
    /// The new revision failed before the switch; the old one serves on.
    RolledBack,
    /// A rollout failed before the switch and was rolled back.
    RolloutFailed,
    /// A container of a rolled-back revision was removed.
    RollbackRemoved,

    // External engines.
    /// The external engine answers its health check.
    ExternalReady,
    /// The external engine does not answer its health check.
    ExternalNotReady,

    // Models.
    /// Not looked at yet.
    Pending,
    /// Being downloaded.
    Fetching,
    /// Being hashed.
    Verifying,
    /// A download began.
    FetchStarted,
    /// A download finished.
    FetchCompleted,
    /// A download failed: the server refused it, answered an error, or the connection broke.
    FetchFailed,
    /// The Model is on disk, verified and measured.
    ModelReady,
    /// The Model's artifact cannot be used.
    ModelUnavailable,
    /// The artifact's digest is not the declared one.
    DigestMismatch,
    /// The declared digest is not a `sha256:<64 hex>` digest.
    InvalidDigest,
    /// The artifact is not a GGUF file and the Model sets no `vramBytes`.
    NotGguf,
    /// Downloads are off in the config.
    DownloadsDisabled,
    /// The download's host is not in the config's allowlist.
    HostNotAllowed,
    /// There is no model cache to download into.
    NoModelCache,
    /// Reading or writing the model cache failed.
    CacheIoError,
    /// A reference the catalog cannot resolve.
    InvalidReference,
    /// A reference that could mean several artifacts.
    AmbiguousReference,
    /// Every Pool that uses the Model runs elsewhere (an `external` Engine, or `gpus: none`):
    /// it is not fetched or verified here.
    NotFetchedHere,

    // Provisioning Engines.
    /// An Engine is being provisioned (image pull, build, install).
    Provisioning,
    /// Provisioning failed.
    ProvisioningFailed,
    /// The config's policy does not allow this provisioning.
    ProvisioningNotAllowed,
    /// This host cannot provision the Engine this way.
    ProvisioningUnsupported,
    /// The Engine's provisioning fields are inconsistent.
    ProvisioningInvalid,
    /// The Engine's image is not present and pulls are not allowed.
    ImageMissing,
    /// The Engine's image is being pulled.
    ImagePulling,
    /// Pulling the Engine's image failed.
    ImagePullFailed,
    /// The Engine's executable is not there.
    ExecutableMissing,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_reason_is_its_name_on_the_wire_and_reads_back() {
        for r in Reason::ALL {
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *r);
        }
    }
}
