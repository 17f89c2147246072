//! The state the ModelManager, its API handle and its background tasks share: one [`Job`] per
//! artifact (its phase, path, digest, problem and progress), the last observation of each
//! Model, pending pulls, the catalog index and verification counts. Locks are never held
//! across an await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use llorch_manifests::status::{GgufInfo, ModelPhase, ModelState};
use tokio::sync::Notify;

use super::Problem;
use crate::catalog::fetch::Fetcher;
use crate::catalog::index::Index;
use crate::catalog::progress::Progress;
use crate::catalog::{FetchError, hf};

/// The GGUF figures of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Measured {
    pub(crate) info: GgufInfo,
    pub(crate) weights_bytes: u64,
    pub(crate) kv_bytes_per_token: u64,
}

/// Where an artifact comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Url(String),
    Hf { repo: String, file: Option<String> },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct JobState {
    pub(crate) phase: ModelPhase,
    pub(crate) source_url: Option<String>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) digest: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) problem: Option<Problem>,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) failures: u32,
    pub(crate) running: bool,
    pub(crate) measured: Option<(PathBuf, Result<Measured, super::tasks::NotGguf>)>,
}

#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) key: String,
    pub(crate) source: Source,
    pub(crate) reference: String,
    pub(crate) expected_hex: Option<String>,
    /// `(size, mtime)` of a `file:` artifact when the job started.
    pub(crate) stamp: Option<(u64, SystemTime)>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) state: Mutex<JobState>,
    /// The task working on it, aborted when no Model needs the artifact any more.
    pub(crate) task: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub(crate) key: String,
    pub(crate) state: ModelState,
    pub(crate) problem: Option<Problem>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fetcher: Option<Fetcher>,
    pub(crate) hub: String,
    pub(crate) file_roots: super::FileRoots,
    pub(crate) index: Mutex<Index>,
    pub(crate) jobs: Mutex<HashMap<String, Arc<Job>>>,
    pub(crate) models: Mutex<BTreeMap<String, Known>>,
    pub(crate) pulls: Mutex<HashSet<String>>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) verified_ok: AtomicU64,
    pub(crate) verified_mismatch: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The policy verdict on fetching `source`, without I/O.
    pub(crate) fn precheck(&self, source: &Source) -> Result<(), FetchError> {
        let Some(fetcher) = &self.fetcher else {
            return Err(FetchError::NoCache(format!("{source:?}")));
        };
        match source {
            Source::File(_) => Ok(()),
            Source::Url(u) => fetcher.check(u).map(|_| ()),
            Source::Hf { repo, file } => {
                let url = match file {
                    Some(f) => hf::file_url(&self.hub, repo, f)?,
                    None => hf::api_url(&self.hub, repo)?,
                };
                fetcher.check(url.as_str()).map(|_| ())
            }
        }
    }
}

impl Job {
    /// Runs `work` for this job, replacing (and aborting) any earlier task of it.
    pub(crate) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work);
        if let Some(old) = lock(&self.task).replace(handle.abort_handle()) {
            old.abort();
        }
    }

    /// Stops its task; a download's partial file stays for a later resume.
    pub(crate) fn abort(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}
