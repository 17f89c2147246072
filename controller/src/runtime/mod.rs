//! The container runtime edge: one narrow trait that the reconciler drives, with a Docker /
//! Podman implementation over bollard (`docker.rs`) and an in-memory fake for unit tests
//! (`fake.rs`). Nothing outside this module knows about bollard.
//!
//! Contract (both implementations, proven by the e2e runtime contract tests):
//! - `list` returns every container (running or not) carrying all of the given labels.
//! - `create_and_start` publishes `container_port` on 127.0.0.1 at an ephemeral host port and
//!   returns the started container, host port filled in.
//! - `remove` force-removes; a container that is already gone is success (cleanup is idempotent).
//! - `events` yields lifecycle events (`start`, `die`, `destroy`, …) of containers carrying the
//!   labels; the stream ends when the connection drops (the caller reconnects).
//! - `pids` gives the host pids of a replica's processes (its main process and everything
//!   below it, from `proc_tree`); empty when it does not run.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;

pub mod docker;
pub mod fake;
pub mod multi;
pub mod proc_tree;
pub mod process;

/// Errors from the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket could not be reached or answered garbage.
    #[error("cannot reach the container runtime at {socket}: {message}")]
    Connect {
        /// Socket URL.
        socket: String,
        /// Why.
        message: String,
    },
    /// The image is not present locally (and no registry is consulted).
    #[error("image `{image}` is not present in {runtime}; build or load it first (e.g. scripts/build-mock-image.sh)")]
    ImageMissing {
        /// Image reference.
        image: String,
        /// `docker` or `podman`.
        runtime: String,
    },
    /// Any other failed API call, named by the step that failed.
    #[error("{step} failed: {message}")]
    Api {
        /// `create container`, `start container`, `list containers`, …
        step: &'static str,
        /// The runtime's message.
        message: String,
    },
}

/// `Result` with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// A bind mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path on the host.
    pub host_path: String,
    /// Path inside the container.
    pub container_path: String,
    /// Mounted read-only (models always are).
    pub read_only: bool,
}

/// How GPUs reach the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuAttachment {
    /// No GPUs.
    None,
    /// Simulated GPUs: only `CUDA_VISIBLE_DEVICES` / `NVIDIA_VISIBLE_DEVICES` in the env
    /// (set by the caller); no device request, since there is no device.
    Simulated(Vec<u32>),
    /// Real NVIDIA GPUs by index: Docker device request (driver `nvidia`, these ids,
    /// capability `gpu`); Podman CDI devices `nvidia.com/gpu=<id>`.
    Nvidia(Vec<u32>),
}

/// What runs a replica: a container image on Docker/Podman, or a local executable spawned as a
/// plain process (`binary`, and `source`/`package` once built or installed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Launch {
    /// A container from [`ContainerSpec::image`].
    #[default]
    Image,
    /// A process from this executable (absolute path or a name on `PATH`); `{port}` in the
    /// args is filled with a free loopback port by the process runtime.
    Executable(String),
}

/// Everything needed to create one engine container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name (unique on the runtime).
    pub name: String,
    /// Image reference; must be present locally.
    pub image: String,
    /// Container or process.
    pub launch: Launch,
    /// Arguments passed after the image's entrypoint.
    pub args: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Labels (owner, instance, pool, replica, spec hash…).
    pub labels: BTreeMap<String, String>,
    /// Port inside the container, published on 127.0.0.1 at an ephemeral host port.
    pub container_port: u16,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// GPUs.
    pub gpus: GpuAttachment,
}

/// A container's state as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Being restarted by the runtime (we never ask for that, but report it).
    Restarting,
    /// Stopped, with its exit code.
    Exited(i64),
    /// Dead, paused, removing or anything else: not serving.
    Other(String),
}

impl ContainerState {
    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running)
    }
}

/// In words, for messages: `engine container is {state}`.
impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerState::Created => f.write_str("created but not started"),
            ContainerState::Running => f.write_str("running"),
            ContainerState::Restarting => f.write_str("restarting"),
            ContainerState::Exited(code) => write!(f, "exited with code {code}"),
            ContainerState::Other(what) => f.write_str(what),
        }
    }
}

/// One container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: ContainerState,
    /// Host port the container port is published on, when running.
    pub host_port: Option<u16>,
}

/// A lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// Container id.
    pub container_id: String,
    /// `start`, `die`, `destroy`, `kill`, `oom`, …
    pub action: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
}

/// Identity of the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeIdentity {
    /// `docker` or `podman`.
    pub kind: String,
    /// Socket URL.
    pub socket: String,
    /// Server version.
    pub version: String,
}

/// A boxed stream of runtime events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RuntimeEvent>> + Send>>;

/// A boxed stream of log lines (`logs_follow`).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<String>> + Send>>;

/// The container runtime as the reconciler sees it.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Which runtime this is.
    fn identity(&self) -> RuntimeIdentity;

    /// Every container (any state) carrying all of `labels`.
    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;

    /// Creates and starts a container; returns it with its host port.
    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<ContainerInfo>> + Send;

    /// Force-removes a container; already gone is success.
    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// The last `lines` lines of a container's stdout and stderr, oldest first.
    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The last `lines` lines of a container's stdout and stderr, then each line as it is
    /// written, until the container stops (the stream ends) or the stream is dropped. A
    /// runtime that cannot follow says so in the stream's only item.
    fn logs_follow(&self, id: &str, lines: usize) -> LogStream {
        let _ = (id, lines);
        let kind = self.identity().kind;
        Box::pin(futures_util::stream::once(std::future::ready(Err(RuntimeError::Api {
            step: "follow logs",
            message: format!("the {kind} runtime cannot follow logs; read them with --tail instead"),
        }))))
    }

    /// True when the image is present locally.
    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Pulls the image from its registry (only called when config `provisioning.allowImagePulls`
    /// is true).
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send;

    /// Lifecycle events of containers carrying all of `labels`.
    fn events(&self, labels: &[(String, String)]) -> EventStream;

    /// The host pids of a container's processes: its main process and every descendant,
    /// sorted; empty when it does not run. What the NotOnGpu check looks for in NVML's
    /// per-GPU process lists.
    fn pids(&self, id: &str) -> impl Future<Output = Result<Vec<u32>>> + Send;
}
