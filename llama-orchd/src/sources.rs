//! Adapts the controller's event log, container runtime, model catalog, pool reloads and
//! manifest writer to the API server's `EventSource`, `LogSource`, `CatalogSource`,
//! `PoolControl` and `ManifestWrites` edges.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use llorch_api::sources::{
    BoxFuture, CatalogSource, EventSource, LogLines, LogSource, LogsError, PoolEditError, PullRefusal, RestartError,
};
use llorch_controller::manifest_edit::{self, EditError};
use llorch_controller::models::{ModelsHandle, PullError};
use llorch_controller::runtime::ContainerRuntime;
use llorch_controller::state_dir::EventLog;
use llorch_manifests::ObjectRef;
use llorch_manifests::api::{CatalogEntry, Snapshot};
use llorch_manifests::pool_size::{PoolSize, SizeChange};
use llorch_manifests::status::Event;
use tokio::sync::watch;

/// The controller's event log.
pub struct Events(pub Arc<EventLog>);

impl EventSource for Events {
    fn recent(&self, object: Option<&ObjectRef>, limit: usize) -> Vec<Event> {
        self.0.recent(object, limit)
    }
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Event>> {
        Some(self.0.subscribe())
    }
}

/// The data plane as the controller's retirement gate (a replica is retired only once no task
/// runs on it, and no task starts on it after) and as its source of demand (queues sizing
/// Pools with `spec.scaling`).
pub struct DataPlaneGate(pub Arc<llorch_api::tasks::DataPlane>);

impl llorch_controller::scaling::DemandSource for DataPlaneGate {
    fn demand(&self, pool: &str) -> llorch_controller::scaling::Demand {
        let (busy, last_busy, woken) = self.0.demand(pool);
        llorch_controller::scaling::Demand { busy, last_busy, woken }
    }
    fn wake_when_idle(&self, pools: &[String]) {
        self.0.wake_when_idle(pools);
    }
}

impl llorch_controller::retire::ReplicaGate for DataPlaneGate {
    fn close_if_idle(&self, container_id: &str) -> bool {
        self.0.close_if_idle(container_id)
    }
    fn reopen(&self, container_id: &str) {
        self.0.reopen(container_id);
    }
}

/// Explicit reloads and scales: bump the pool's persisted counter, or edit the pool's
/// `spec.model` or size in its manifest file; then wake the controller (the manifest watcher
/// would too, a moment later).
pub struct Reloads {
    /// The counters the controller folds into spec hashes.
    pub counters: Arc<llorch_controller::reloads::ReloadCounters>,
    /// The controller's waker.
    pub wake: Arc<tokio::sync::Notify>,
}

impl llorch_api::PoolControl for Reloads {
    fn restart(&self, pool: &str) -> Result<u64, RestartError> {
        let n = self.counters.bump(pool).map_err(|e| RestartError::Save(Box::new(e)))?;
        self.wake.notify_one();
        Ok(n)
    }

    fn set_model(&self, pool: &str, file: &Path, from: &str, to: &str) -> Result<(), PoolEditError> {
        manifest_edit::set_model(file, pool, from, to).map_err(edit_error)?;
        self.wake.notify_one();
        Ok(())
    }

    fn set_size(&self, pool: &str, file: &Path, change: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError> {
        let (from, to) = manifest_edit::set_size(file, pool, change).map_err(edit_error)?;
        if from != to {
            self.wake.notify_one();
        }
        Ok((from, to))
    }
}

/// The file's refusals (and a size that does not fit the Pool in it) are the user's to
/// resolve; a failed read or write is ours.
fn edit_error(e: EditError) -> PoolEditError {
    match e {
        EditError::Refused(_) | EditError::Size(_) => PoolEditError::Conflict(e.to_string()),
        EditError::Failed(m) => PoolEditError::Failed(m),
    }
}

/// Drains kept in `<state>/drains.json`.
pub struct Drains(pub llorch_controller::drains::DrainRecords);

impl llorch_api::sources::DrainStore for Drains {
    fn load(&self) -> Vec<(String, std::time::SystemTime)> {
        self.0.all()
    }
    fn record(&self, pool: &str, deadline: std::time::SystemTime) -> std::io::Result<()> {
        self.0.record(pool, deadline).map_err(std::io::Error::other)
    }
    fn lift(&self, pool: &str) -> std::io::Result<()> {
        self.0.lift(pool).map_err(std::io::Error::other)
    }
}

/// Container logs, by replica id, through the runtime.
pub struct Logs<R> {
    /// The runtime.
    pub runtime: Arc<R>,
    /// Where replica ids map to containers.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl<R: ContainerRuntime> Logs<R> {
    /// The replica's container: `None` for no such replica, `Some(None)` when it has none now.
    fn container(&self, replica_id: &str) -> Option<Option<String>> {
        self.snapshot
            .borrow()
            .replicas
            .iter()
            .find(|r| r.id.as_str() == replica_id)
            .map(|r| r.container_id.clone())
    }
}

impl<R: ContainerRuntime> LogSource for Logs<R> {
    fn follow(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<LogLines, LogsError>> {
        let container = self.container(replica_id);
        let replica = replica_id.to_string();
        Box::pin(async move {
            match container {
                None => Err(LogsError::NoReplica { replica }),
                Some(None) => Err(LogsError::NoContainer { replica }),
                // A process's log is a file the runtime does not follow (yet): say so up front.
                Some(Some(id)) if llorch_controller::runtime::process::ProcessRuntime::owns(&id) => {
                    Err(LogsError::CannotFollow { replica })
                }
                Some(Some(id)) => {
                    let lines = self
                        .runtime
                        .logs_follow(&id, lines)
                        .map(|line| line.map_err(|e| LogsError::Runtime(Box::new(e))));
                    Ok(Box::pin(lines) as LogLines)
                }
            }
        })
    }

    fn tail(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        let container = self.container(replica_id);
        let replica = replica_id.to_string();
        Box::pin(async move {
            match container {
                None => Err(LogsError::NoReplica { replica }),
                Some(None) => Err(LogsError::NoContainer { replica }),
                Some(Some(id)) => self
                    .runtime
                    .logs_tail(&id, lines)
                    .await
                    .map_err(|e| LogsError::Runtime(Box::new(e))),
            }
        })
    }
}

/// The controller's model catalog.
pub struct Catalog(pub ModelsHandle);

impl CatalogSource for Catalog {
    fn entries(&self) -> Vec<CatalogEntry> {
        self.0.entries()
    }

    fn pull(&self, model: &str) -> Result<(), PullRefusal> {
        self.0.pull(model).map(|_| ()).map_err(|e| match e {
            PullError::NotFound(m) => PullRefusal::NotFound(m),
            PullError::Policy(m) => PullRefusal::Policy(m),
        })
    }

    fn verifications(&self) -> Vec<(&'static str, u64)> {
        self.0.verifications()
    }
}

/// The write API's manifest writer: the controller's, over the manifests directory, checked
/// against the config's trust root; a write wakes the controller at once.
pub struct ManifestWrites {
    /// The writer.
    pub writer: llorch_controller::manifest_dir::writes::ManifestWriter,
    /// The controller's waker.
    pub wake: Arc<tokio::sync::Notify>,
}

impl llorch_api::sources::ManifestWrites for ManifestWrites {
    fn apply(
        &self,
        files: &[llorch_manifests::api::ManifestText],
        dry_run: bool,
        writer: &str,
    ) -> Result<llorch_manifests::api::ApplyResult, llorch_manifests::api::WriteError> {
        self.writer.apply(files, dry_run, writer)
    }

    fn delete(
        &self,
        object: &ObjectRef,
    ) -> Result<llorch_manifests::api::DeleteResult, llorch_manifests::api::WriteError> {
        self.writer.delete(object)
    }

    fn wake(&self) {
        self.wake.notify_one();
    }
}
