//! The process runtime: engines as plain local processes (`binary` provisioning, and `source`
//! / `package` once built or installed), behind the same [`ContainerRuntime`] trait as Docker
//! and Podman, so the reconciler gives them the same backoff, restart and adoption rules.
//!
//! A "container" here is one process with a JSON record under the state directory (`record`):
//! labels, pid, start time, port, executable and args. `list` reads the records and asks
//! `/proc` whether each still runs (`procfs`); a restarted daemon therefore adopts live
//! processes (same pid) and restarts dead ones through the normal backoff. Exits of processes
//! this daemon spawned are seen at once (it waits on them) and carry their exit status;
//! adopted ones are polled and reported as gone. It never touches a process without a record,
//! nor one whose pid was reused (the start time differs).

pub mod procfs;
pub mod record;
pub mod resolve;
pub mod spawn;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream;
use tokio::sync::broadcast;

use self::record::{ProcessRecord, RecordStore};
use super::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, EventStream, Launch, Result, RuntimeError,
    RuntimeEvent, RuntimeIdentity,
};

/// Every process id starts with this; the dispatching runtime routes on it.
pub const ID_PREFIX: &str = "proc-";
/// How often an adopted process (not our child) is checked for having exited.
pub const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// What `list` reports for a process that ended while this daemon was not its parent.
pub const GONE: &str = "gone (exited while llama-orchd was not its parent; exit status unknown)";

/// Engines as local processes.
#[derive(Clone, Debug)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: RecordStore,
    /// Exit codes of children that exited, by id.
    exits: Mutex<HashMap<String, i64>>,
    /// Ids with a task waiting for their exit (children) or polling for it (adopted).
    watched: Mutex<HashSet<String>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Inner {
    fn emit(&self, id: &str, action: &str, labels: &std::collections::BTreeMap<String, String>) {
        let _ = self.events.send(RuntimeEvent {
            container_id: id.to_string(),
            action: action.to_string(),
            labels: labels.clone(),
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessRuntime {
    /// A process runtime keeping its records and logs in `dir` (e.g. `<state>/processes`).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                store: RecordStore::open(dir)?,
                exits: Mutex::default(),
                watched: Mutex::default(),
                events,
            }),
        })
    }

    /// Where records and logs live.
    pub fn dir(&self) -> &Path {
        self.inner.store.dir()
    }

    /// True for ids this runtime hands out.
    pub fn owns(id: &str) -> bool {
        id.starts_with(ID_PREFIX)
    }

    fn state_of(&self, r: &ProcessRecord) -> ContainerState {
        if let Some(code) = lock(&self.inner.exits).get(&r.id) {
            return ContainerState::Exited(*code);
        }
        if procfs::is_alive(r.pid, r.start_ticks) {
            ContainerState::Running
        } else {
            ContainerState::Other(GONE.to_string())
        }
    }

    fn info(&self, r: &ProcessRecord) -> ContainerInfo {
        let state = self.state_of(r);
        ContainerInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            labels: r.labels.clone(),
            host_port: state.is_running().then_some(r.port),
            state,
        }
    }

    /// Waits for a child we spawned; records its exit status and announces it.
    fn supervise(
        &self,
        id: String,
        labels: std::collections::BTreeMap<String, String>,
        mut child: tokio::process::Child,
    ) {
        lock(&self.inner.watched).insert(id.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => -1,
            };
            lock(&inner.exits).insert(id.clone(), code);
            lock(&inner.watched).remove(&id);
            inner.emit(&id, "die", &labels);
        });
    }

    /// Polls an adopted process (not our child) until it is gone, then announces it.
    fn watch_adopted(&self, r: &ProcessRecord) {
        if !lock(&self.inner.watched).insert(r.id.clone()) {
            return;
        }
        let inner = self.inner.clone();
        let (id, pid, start, labels) = (r.id.clone(), r.pid, r.start_ticks, r.labels.clone());
        tokio::spawn(async move {
            while procfs::is_alive(pid, start) {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
            lock(&inner.watched).remove(&id);
            inner.emit(&id, "die", &labels);
        });
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let Launch::Executable(name) = &spec.launch else {
            return Err(RuntimeError::Api {
                step: "spawn process",
                message: format!("`{}` is a container image, not an executable", spec.image),
            });
        };
        let executable = resolve::which(name).map_err(|why| RuntimeError::Api {
            step: "spawn process",
            message: format!("executable {why}; install it or fix the Engine's `spec.executable`"),
        })?;
        let port = spawn::free_loopback_port().map_err(|e| RuntimeError::Api {
            step: "spawn process",
            message: format!("no free loopback port: {e}"),
        })?;
        let args = spawn::fill_port(&spec.args, port);
        let log = self.dir().join(format!("{}.log", spec.name));
        let (child, pid) = spawn::spawn(spec, &executable, &args, &log)?;
        let start_ticks = procfs::stat(pid).map(|s| s.start_ticks).unwrap_or_default();
        let record = ProcessRecord {
            id: format!("{ID_PREFIX}{pid}-{start_ticks}"),
            name: spec.name.clone(),
            pid,
            start_ticks,
            port,
            executable: executable.display().to_string(),
            args,
            labels: spec.labels.clone(),
            started_at: jiff::Timestamp::now().to_string(),
            log: log.clone(),
        };
        if let Err(e) = self.inner.store.write(&record) {
            // Without a record nobody could find it again: do not leave it running.
            let _ = spawn::stop(pid, start_ticks).await;
            return Err(RuntimeError::Api {
                step: "spawn process",
                message: format!("cannot write its record in {}: {e}", self.dir().display()),
            });
        }
        self.supervise(record.id.clone(), record.labels.clone(), child);
        self.inner.emit(&record.id, "start", &record.labels);
        // The port is the one it was told to use even if it already exited: `list` tells.
        Ok(ContainerInfo {
            host_port: Some(port),
            ..self.info(&record)
        })
    }
}

/// A shell-style exit code: the status, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        _ => -1,
    }
}

fn carries_all(have: &std::collections::BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl ContainerRuntime for ProcessRuntime {
    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            kind: "process".into(),
            socket: self.dir().display().to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send {
        let wanted = labels.to_vec();
        async move {
            let records = self.inner.store.all().map_err(|e| RuntimeError::Api {
                step: "list processes",
                message: format!("cannot read {}: {e}", self.dir().display()),
            })?;
            let mut out = Vec::new();
            for r in records.iter().filter(|r| carries_all(&r.labels, &wanted)) {
                let info = self.info(r);
                if info.state.is_running() {
                    self.watch_adopted(r);
                }
                out.push(info);
            }
            Ok(out)
        }
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<ContainerInfo>> + Send {
        let spec = spec.clone();
        async move { self.start(&spec).await }
    }

    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        let id = id.to_string();
        async move {
            let Some(r) = self.inner.store.load(&id) else {
                return Ok(());
            };
            spawn::stop(r.pid, r.start_ticks).await.map_err(|e| RuntimeError::Api {
                step: "stop process",
                message: format!("cannot signal process group {}: {e}", r.pid),
            })?;
            self.inner.store.remove(&id).map_err(|e| RuntimeError::Api {
                step: "remove process",
                message: format!("cannot delete its record in {}: {e}", self.dir().display()),
            })?;
            let _ = std::fs::remove_file(&r.log);
            lock(&self.inner.exits).remove(&id);
            self.inner.emit(&id, "destroy", &r.labels);
            Ok(())
        }
    }

    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<Vec<String>>> + Send {
        let log: Option<PathBuf> = self.inner.store.load(id).map(|r| r.log);
        let id = id.to_string();
        async move {
            let log = log.ok_or_else(|| RuntimeError::Api {
                step: "read process logs",
                message: format!("no such process: {id}"),
            })?;
            spawn::tail(&log, lines).map_err(|e| RuntimeError::Api {
                step: "read process logs",
                message: format!("{}: {e}", log.display()),
            })
        }
    }

    /// For processes the "image" is the executable: present when it resolves.
    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool>> + Send {
        std::future::ready(Ok(resolve::which(image).is_ok()))
    }

    fn pull_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Err(RuntimeError::Api {
            step: "pull image",
            message: format!("`{image}`: the process runtime has no images to pull"),
        }))
    }

    /// The engine's pid and its descendants, while it is still the process that was started.
    fn pids(&self, id: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
        let record = self.inner.store.load(id);
        async move {
            let Some(r) = record.filter(|r| procfs::is_alive(r.pid, r.start_ticks)) else {
                return Ok(Vec::new());
            };
            super::proc_tree::tree(r.pid).await.map_err(|e| RuntimeError::Api {
                step: "list processes",
                message: e.to_string(),
            })
        }
    }

    fn events(&self, labels: &[(String, String)]) -> EventStream {
        let wanted = labels.to_vec();
        let receiver = self.inner.events.subscribe();
        Box::pin(stream::unfold(
            (receiver, wanted),
            |(mut receiver, wanted)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if carries_all(&event.labels, &wanted) => {
                            return Some((Ok(event), (receiver, wanted)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests;
