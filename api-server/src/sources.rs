//! The narrow edges the API reads besides the snapshot: recent events, engine log tails and
//! the model catalog, and the ones it commands through: pool reloads and scales, manifest
//! writes and the drains kept across restarts.
//! The controller implements them; tests use fakes. Nothing here does I/O itself.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::SystemTime;

use llorch_manifests::ObjectRef;
use llorch_manifests::api::{ApplyResult, CatalogEntry, DeleteResult, ManifestText, WriteError};
use llorch_manifests::pool_size::{PoolSize, SizeChange};
use llorch_manifests::status::Event;

/// A boxed, sendable future (what an object-safe async trait method returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where recent events come from.
pub trait EventSource: Send + Sync {
    /// At most `limit` of the most recent events, oldest first; only those about `object`
    /// when given.
    fn recent(&self, object: Option<&ObjectRef>, limit: usize) -> Vec<Event>;

    /// Every event from now on, through a bounded channel (a receiver that falls behind is
    /// told how many it lost); `None` when this source has no live feed.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Event>> {
        None
    }
}

/// A replica's log lines as its engine writes them (`logs -f`); ends when its container stops.
pub type LogLines = Pin<Box<dyn futures_util::Stream<Item = Result<String, LogsError>> + Send>>;

/// Where engine container logs come from.
pub trait LogSource: Send + Sync {
    /// The last `lines` lines the replica's container wrote, oldest first, or why they cannot
    /// be read (no container, runtime unreachable).
    fn tail(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>>;

    /// The last `lines` lines, then each new line until the container stops; or why its logs
    /// cannot be followed. Not served unless the source says otherwise.
    fn follow(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<LogLines, LogsError>> {
        let _ = lines;
        let replica = replica_id.to_string();
        Box::pin(async move { Err(LogsError::NotServed { replica }) })
    }
}

/// Why a replica's logs cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// No replica has this id.
    #[error("no replica `{replica}`; see `orchctl get replicas`")]
    NoReplica {
        /// The id asked for.
        replica: String,
    },
    /// The replica exists but runs no container now.
    #[error("replica `{replica}` has no container right now (it is backing off or starting)")]
    NoContainer {
        /// The replica.
        replica: String,
    },
    /// The runtime could not produce them.
    #[error("{0}")]
    Runtime(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The replica's logs can be read but not followed (an engine run as a local process).
    #[error("replica `{replica}` runs as a local process, whose log cannot be followed yet; read it without -f")]
    CannotFollow {
        /// The replica.
        replica: String,
    },
    /// This server has no way to read logs.
    #[error("logs of replica `{replica}` are not available from this server")]
    NotServed {
        /// The replica.
        replica: String,
    },
}

/// Why a Pool's reload counter was not bumped.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// This server has no controller to command.
    #[error("this server cannot reload pool `{pool}`: it has no controller")]
    NoController {
        /// The Pool.
        pool: String,
    },
    /// The counter could not be persisted.
    #[error("{0}")]
    Save(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Commands from the API to the controller for one Pool.
pub trait PoolControl: Send + Sync {
    /// A rolling restart of `pool` on its unchanged spec: bumps its reload counter (which the
    /// controller folds into every replica's spec hash) and wakes the controller. Returns the
    /// new counter, or why it could not be saved.
    fn restart(&self, pool: &str) -> Result<u64, RestartError>;

    /// Changes `spec.model` of `pool` from `from` to `to` in `file`, its manifest file (as the
    /// snapshot names it), which must hold nothing but that Pool. The controller picks the
    /// change up like any manifest edit. The API checks beforehand that the Pool and the Model
    /// exist; this only edits the file.
    fn set_model(&self, pool: &str, file: &Path, from: &str, to: &str) -> Result<(), PoolEditError>;

    /// Makes `change` to the size of `pool` in `file`, its manifest file (as the snapshot
    /// names it), which must hold nothing but that Pool: `spec.replicas` of a Pool of fixed
    /// size, `spec.scaling`'s bounds of one sized by demand. Returns its size before and after
    /// as the file declares it, and wakes the controller when the file changed. The API checks
    /// the change against the snapshot beforehand; this checks it again against the file.
    fn set_size(&self, pool: &str, file: &Path, change: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError>;
}

/// Why a Pool's manifest file was not edited (`spec.model`, or its size); nothing was
/// written either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolEditError {
    /// The file cannot be edited automatically (it does not parse, or holds more than the
    /// Pool), or the change does not fit the Pool as the file declares it: `409 CONFLICT`,
    /// with this message saying what to do.
    Conflict(String),
    /// Reading, checking or writing the file failed: `500`, the detail logged.
    Failed(String),
}

/// The write API's edge (`POST /v2/manifests`, `DELETE /v2/manifests/{kind}/{name}`): the
/// controller's manifest writer. Blocking file I/O: the routes call it on a blocking thread.
pub trait ManifestWrites: Send + Sync {
    /// Checks `files` and, unless `dry_run`, writes their objects; `writer` names who asked
    /// (an identity, for the written files' header).
    fn apply(&self, files: &[ManifestText], dry_run: bool, writer: &str) -> Result<ApplyResult, WriteError>;
    /// Removes `object`'s manifest file.
    fn delete(&self, object: &ObjectRef) -> Result<DeleteResult, WriteError>;
    /// Asks the controller to read the directory now (after a write).
    fn wake(&self);
}

/// A server without a manifests directory to write (tests, a bare API server).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoManifestWrites;

impl NoManifestWrites {
    fn refusal() -> WriteError {
        WriteError::Failed("this server has no manifests directory to write".into())
    }
}

impl ManifestWrites for NoManifestWrites {
    fn apply(&self, _: &[ManifestText], _: bool, _: &str) -> Result<ApplyResult, WriteError> {
        Err(Self::refusal())
    }
    fn delete(&self, _: &ObjectRef) -> Result<DeleteResult, WriteError> {
        Err(Self::refusal())
    }
    fn wake(&self) {}
}

/// Where drains are kept across daemon restarts (`<state>/drains.json` in the daemon).
/// Blocking file I/O: the data plane calls it on a blocking thread.
pub trait DrainStore: Send + Sync {
    /// Every drain recorded and not lifted: the Pool and its deadline.
    fn load(&self) -> Vec<(String, SystemTime)>;
    /// `pool` drains until `deadline` (replacing an earlier drain of it).
    fn record(&self, pool: &str, deadline: SystemTime) -> std::io::Result<()>;
    /// `pool`'s drain was lifted.
    fn lift(&self, pool: &str) -> std::io::Result<()>;
}

/// Drains held in memory only: a restart lifts them (tests, a bare API server).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDrainStore;

impl DrainStore for NoDrainStore {
    fn load(&self) -> Vec<(String, SystemTime)> {
        Vec::new()
    }
    fn record(&self, _: &str, _: SystemTime) -> std::io::Result<()> {
        Ok(())
    }
    fn lift(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server that cannot command the controller (tests, a bare API server).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPoolControl;

impl PoolControl for NoPoolControl {
    fn restart(&self, pool: &str) -> Result<u64, RestartError> {
        Err(RestartError::NoController { pool: pool.to_string() })
    }

    fn set_model(&self, pool: &str, _file: &Path, _from: &str, to: &str) -> Result<(), PoolEditError> {
        Err(PoolEditError::Failed(format!(
            "this server cannot move pool `{pool}` to model `{to}`: it has no controller"
        )))
    }

    fn set_size(&self, pool: &str, _file: &Path, _change: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError> {
        Err(PoolEditError::Failed(format!(
            "this server cannot scale pool `{pool}`: it has no controller"
        )))
    }
}

/// An event source with nothing in it, for wiring before the controller's is ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSource for NoEvents {
    fn recent(&self, _object: Option<&ObjectRef>, _limit: usize) -> Vec<Event> {
        Vec::new()
    }
}

/// A log source that has no logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLogs;

impl LogSource for NoLogs {
    fn tail(&self, replica_id: &str, _lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        let replica = replica_id.to_string();
        Box::pin(async move { Err(LogsError::NotServed { replica }) })
    }
}

/// The model catalog: its entries, a way to start a Model's fetch now, and verification counts
/// for `/metrics`. The controller's ModelManager implements it (through llama-orchd).
pub trait CatalogSource: Send + Sync {
    /// Every catalog entry.
    fn entries(&self) -> Vec<CatalogEntry>;
    /// Starts (or refreshes) Model `model`'s fetch on the controller's next pass.
    fn pull(&self, model: &str) -> Result<(), PullRefusal>;
    /// `(result, count)` of digest verifications: `ok`, `mismatch`.
    fn verifications(&self) -> Vec<(&'static str, u64)>;
}

/// Why a pull was not started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullRefusal {
    /// No such Model.
    NotFound(String),
    /// The download policy forbids it; the message names the setting.
    Policy(String),
}

/// A server without a model catalog.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCatalog;

impl CatalogSource for NoCatalog {
    fn entries(&self) -> Vec<CatalogEntry> {
        Vec::new()
    }
    fn pull(&self, model: &str) -> Result<(), PullRefusal> {
        Err(PullRefusal::NotFound(format!(
            "this server has no model catalog, so model `{model}` cannot be pulled"
        )))
    }
    fn verifications(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
