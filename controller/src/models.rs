//! The ModelManager: what the controller asks, each pass, about every Model. It never blocks
//! a pass: [`ModelManager::observe`] starts a background task when an artifact must be fetched
//! or hashed (one task per artifact, however many Models share it), and answers with the
//! current [`ModelState`] — phase, bytes done/total, path, digest, GGUF figures and VRAM.
//! Tasks wake the controller through its `Notify` when progress moves (throttled) and when
//! they finish.
//!
//! `file:` references are used in place (recorded in the catalog, never copied); without a
//! declared digest they are usable at once and hashed for the catalog in the background.
//! Remote references (`https://`, loopback `http://`, `hf:`) go through the download policy
//! first — a refusal is an immediate advisory failure — then into the content-addressed cache.
//! Pools ask [`ModelManager::ready`]; a Model that is not Ready keeps them blocked.

mod handle;
mod roots;
mod shared;
mod status;
mod tasks;
mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use llorch_manifests::config::ModelsConfig;
use llorch_manifests::model::ModelRef;
use llorch_manifests::status::{ModelPhase, ModelState, ModelVram};
use llorch_manifests::{ModelSpec, Reason};
use tokio::sync::Notify;

pub use handle::ModelsHandle;
pub use roots::FileRoots;
use status::progress_text;
pub use status::{event, human_bytes, set_conditions, set_not_fetched};
pub use usage::{fetched_elsewhere, not_fetched_message};

use crate::catalog::cache::{self, Cache};
use crate::catalog::fetch::Fetcher;
use crate::catalog::index::{Index, IndexError};
use crate::catalog::policy::{Policy, display_url_str};
use crate::catalog::progress::Progress;
use crate::catalog::secret::Secret;
use crate::catalog::{FetchError, hf};
use shared::{Job, JobState, Known, Shared, Source, lock};
use tasks::{cached, fetch_job, fetch_problem, hash_file_job, measure_cached};

/// First delay before a failed download that may succeed later is tried again; doubles per
/// failure up to [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_secs(5);
/// Longest delay between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Where the catalog lives and what it may download.
#[derive(Clone, Debug)]
pub struct ModelsSettings {
    /// The content-addressed cache; `None`: remote references cannot be fetched.
    pub cache_dir: Option<PathBuf>,
    /// The catalog index file; `None`: kept in memory only.
    pub index_file: Option<PathBuf>,
    /// The config's `models` section (the download policy).
    pub config: ModelsConfig,
    /// The hub token (`HF_TOKEN`).
    pub hf_token: Option<Secret>,
    /// The hub's base URL ([`hf::HUB`]; tests point it at a loopback server).
    pub hub: String,
    /// Where `file:` references may point (`models.fileRoots`, resolved).
    pub file_roots: FileRoots,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        Self {
            cache_dir: None,
            index_file: None,
            config: ModelsConfig::default(),
            hf_token: None,
            hub: hf::HUB.to_string(),
            file_roots: FileRoots::Anywhere,
        }
    }
}

/// Why the manager cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The index file is unusable.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] FetchError),
}

/// Why a Model is not usable, for its conditions and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `DigestMismatch`, `DownloadsDisabled`, `HostNotAllowed`, ….
    pub reason: Reason,
    /// A sentence that says what to do.
    pub message: String,
}

/// Why a Pool cannot use a Model's file (yet).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// The manager has not observed the Model yet.
    #[error("Model `{model}` has not been looked at yet")]
    NotObserved {
        /// The Model.
        model: String,
    },
    /// Its artifact failed; the problem says why.
    #[error("Model `{model}` is not usable: {message}")]
    Failed {
        /// The Model.
        model: String,
        /// Its problem's message.
        message: String,
    },
    /// Its artifact failed, and no problem was recorded.
    #[error("Model `{model}` is not usable")]
    FailedUnexplained {
        /// The Model.
        model: String,
    },
    /// It is still fetched or verified.
    #[error("Model `{model}` is not ready yet: {progress}")]
    NotReady {
        /// The Model.
        model: String,
        /// How far it got.
        progress: String,
    },
}

/// Why `pull` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullError {
    /// No such Model (or the controller has not seen it yet).
    NotFound(String),
    /// The download policy forbids it.
    Policy(String),
}

/// The controller's side: observe Models each pass, hand Pools their files.
#[derive(Debug)]
pub struct ModelManager {
    shared: Arc<Shared>,
}

impl ModelManager {
    /// A manager with `settings`, waking the controller through `wake`.
    pub fn new(settings: ModelsSettings, wake: Arc<Notify>) -> Result<ModelManager, OpenError> {
        let index = match &settings.index_file {
            Some(path) => Index::open(path)?,
            None => Index::in_memory(),
        };
        let fetcher = match &settings.cache_dir {
            Some(dir) => Some(Fetcher::new(
                Cache::new(dir),
                Policy::from_config(&settings.config),
                settings.hf_token.clone(),
                &settings.hub,
            )?),
            None => None,
        };
        Ok(ModelManager {
            shared: Arc::new(Shared {
                fetcher,
                hub: settings.hub.trim_end_matches('/').to_string(),
                file_roots: settings.file_roots.clone(),
                index: Mutex::new(index),
                jobs: Mutex::new(HashMap::new()),
                models: Mutex::new(BTreeMap::new()),
                pulls: Mutex::new(HashSet::new()),
                wake,
                verified_ok: AtomicU64::new(0),
                verified_mismatch: AtomicU64::new(0),
            }),
        })
    }

    /// A manager without a cache: `file:` references only, catalog in memory.
    pub fn local_only(wake: Arc<Notify>) -> ModelManager {
        match ModelManager::new(ModelsSettings::default(), wake.clone()) {
            Ok(m) => m,
            // Without a cache or an index file nothing can fail; keep a total fallback anyway.
            Err(_) => ModelManager {
                shared: Arc::new(Shared {
                    fetcher: None,
                    hub: hf::HUB.into(),
                    file_roots: FileRoots::Anywhere,
                    index: Mutex::new(Index::in_memory()),
                    jobs: Mutex::new(HashMap::new()),
                    models: Mutex::new(BTreeMap::new()),
                    pulls: Mutex::new(HashSet::new()),
                    wake,
                    verified_ok: AtomicU64::new(0),
                    verified_mismatch: AtomicU64::new(0),
                }),
            },
        }
    }

    /// The API's handle.
    pub fn handle(&self) -> ModelsHandle {
        ModelsHandle {
            shared: self.shared.clone(),
        }
    }

    /// The current state of Model `name`, starting (or retrying) its fetch or verification
    /// when needed. `manifest_file` anchors relative `file:` paths. Never waits on I/O beyond
    /// a `stat` and, once per file, reading a GGUF header.
    pub fn observe(&mut self, name: &str, spec: &ModelSpec, manifest_file: &Path) -> ModelState {
        let (state, problem, key) = match self.evaluate(name, spec, manifest_file) {
            Ok((state, problem, key)) => (state, problem, key),
            Err(problem) => (
                ModelState {
                    phase: ModelPhase::Failed,
                    ..ModelState::default()
                },
                Some(problem),
                String::new(),
            ),
        };
        lock(&self.shared.models).insert(
            name.to_string(),
            Known {
                key,
                state: state.clone(),
                problem,
            },
        );
        state
    }

    /// Model `name` is used only by Pools that run elsewhere (see [`fetched_elsewhere`]): it
    /// is recorded as [`ModelPhase::NotFetched`] with `why`, nothing is started for it, and a
    /// fetch or hash of it still under way stops at the next [`ModelManager::retain`] (a
    /// partial download stays for a later resume). A pull of it is refused with `why`.
    pub fn not_fetched(&mut self, name: &str, why: String) -> ModelState {
        let state = ModelState {
            phase: ModelPhase::NotFetched,
            ..ModelState::default()
        };
        lock(&self.shared.pulls).remove(name);
        lock(&self.shared.models).insert(
            name.to_string(),
            Known {
                key: String::new(),
                state: state.clone(),
                problem: Some(Problem {
                    reason: Reason::NotFetchedHere,
                    message: why,
                }),
            },
        );
        state
    }

    /// Why Model `name` is Failed (or what it waits for), as of its last observation.
    pub fn problem(&self, name: &str) -> Option<Problem> {
        lock(&self.shared.models).get(name).and_then(|k| k.problem.clone())
    }

    /// The file and VRAM figures of Model `name` when it is Ready.
    pub fn ready(&self, name: &str) -> Option<(PathBuf, ModelVram)> {
        let models = lock(&self.shared.models);
        let known = models.get(name)?;
        (known.state.phase == ModelPhase::Ready)
            .then(|| {
                let path = PathBuf::from(known.state.path.clone()?);
                Some((path, known.state.vram.clone().unwrap_or_default()))
            })
            .flatten()
    }

    /// Model `name`'s file for a Pool, or why the Pool must wait: `Model `x` is not usable: …`
    /// when it failed, `… is not ready yet: …` while it is fetched or verified.
    pub fn usable(&self, name: &str) -> Result<PathBuf, Unusable> {
        if let Some((path, _)) = self.ready(name) {
            return Ok(path);
        }
        let model = name.to_string();
        let models = lock(&self.shared.models);
        let Some(known) = models.get(name) else {
            return Err(Unusable::NotObserved { model });
        };
        match (&known.state.phase, &known.problem) {
            (ModelPhase::Failed, Some(p)) => Err(Unusable::Failed {
                model,
                message: p.message.clone(),
            }),
            (ModelPhase::Failed, None) => Err(Unusable::FailedUnexplained { model }),
            _ => Err(Unusable::NotReady {
                model,
                progress: progress_text(&known.state),
            }),
        }
    }

    /// Forgets Models not in `names`, stops fetches no Model needs any more (their partial
    /// files stay for a later resume) and updates the catalog's lifecycles.
    pub fn retain(&mut self, names: &BTreeSet<String>) {
        let mut models = lock(&self.shared.models);
        models.retain(|n, _| names.contains(n));
        let keys: HashSet<String> = models.values().map(|k| k.key.clone()).collect();
        let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, known) in models.iter() {
            if let Some(d) = &known.state.digest {
                declared.entry(d.clone()).or_default().insert(name.clone());
            }
        }
        drop(models);
        lock(&self.shared.jobs).retain(|k, job| {
            let needed = keys.contains(k);
            if !needed {
                job.abort();
            }
            needed
        });
        let mut index = lock(&self.shared.index);
        if index.set_models(&declared)
            && let Err(e) = index.save()
        {
            tracing::error!(error = %e, "cannot save the catalog index");
        }
    }

    fn evaluate(
        &mut self,
        name: &str,
        spec: &ModelSpec,
        manifest_file: &Path,
    ) -> Result<(ModelState, Option<Problem>, String), Problem> {
        let parsed = spec.parse_ref().map_err(|message| Problem {
            reason: Reason::InvalidReference,
            message: format!("`spec.ref`: {message}"),
        })?;
        let expected_hex = match &spec.digest {
            Some(d) => Some(cache::digest_hex(d).ok_or_else(|| Problem {
                reason: Reason::InvalidDigest,
                message: format!("`spec.digest` `{d}` is not `sha256:` followed by 64 hex digits"),
            })?),
            None => None,
        };
        let source = match parsed {
            ModelRef::File(raw) => Source::File(if Path::new(raw).is_absolute() {
                PathBuf::from(raw)
            } else {
                manifest_file.parent().unwrap_or(Path::new(".")).join(raw)
            }),
            ModelRef::Url { url, .. } => Source::Url(url.to_string()),
            ModelRef::Hf { repo, file } => Source::Hf {
                repo: repo.to_string(),
                file: file.map(str::to_string),
            },
        };
        let pulled = lock(&self.shared.pulls).remove(name);
        let job = match &source {
            Source::File(path) => self.file_job(path, spec, expected_hex.as_deref(), pulled)?,
            _ => self.remote_job(&source, spec, expected_hex.as_deref(), pulled)?,
        };
        let state = lock(&job.state).clone();
        let (done, total) = job.progress.get();
        let mut model = ModelState {
            phase: state.phase,
            source_url: state.source_url.clone(),
            path: state.path.as_ref().map(|p| p.display().to_string()),
            digest: state.digest.clone(),
            bytes_done: done,
            bytes_total: total.or(state.size),
            gguf: None,
            vram: None,
        };
        let mut problem = state.problem.clone();
        if model.phase == ModelPhase::Ready {
            model.bytes_done = state.size.unwrap_or(done);
            model.bytes_total = state.size.or(total);
        }
        if model.phase == ModelPhase::Ready
            && let Some(path) = &state.path
        {
            let measured = measure_cached(&job, path);
            match (spec.vram_bytes, measured) {
                (Some(bytes), m) => {
                    model.gguf = m.ok().map(|m| m.info);
                    model.vram = Some(ModelVram {
                        source: "override".into(),
                        weights_bytes: bytes,
                        kv_bytes_per_token: 0,
                    });
                }
                (None, Ok(m)) => {
                    model.vram = Some(ModelVram {
                        source: "gguf".into(),
                        weights_bytes: m.weights_bytes,
                        kv_bytes_per_token: m.kv_bytes_per_token,
                    });
                    model.gguf = Some(m.info);
                }
                (None, Err(e)) => {
                    model.phase = ModelPhase::Failed;
                    problem = Some(Problem {
                        reason: Reason::NotGguf,
                        message: format!(
                            "{} is not a GGUF file ({e}); set `spec.vramBytes` to run it anyway",
                            path.display()
                        ),
                    });
                }
            }
        }
        Ok((model, problem, job.key.clone()))
    }

    /// The job of a `file:` artifact: usable at once without a digest (hashed for the catalog
    /// in the background), verified in the background with one.
    fn file_job(
        &mut self,
        path: &Path,
        spec: &ModelSpec,
        expected_hex: Option<&str>,
        pulled: bool,
    ) -> Result<Arc<Job>, Problem> {
        self.shared.file_roots.check(path).map_err(|message| Problem {
            reason: Reason::ModelUnavailable,
            message,
        })?;
        let meta = std::fs::metadata(path).map_err(|e| Problem {
            reason: Reason::ModelUnavailable,
            message: format!(
                "model file {} is not readable ({e}); put the file there or fix `spec.ref`",
                path.display()
            ),
        })?;
        if !meta.is_file() {
            return Err(Problem {
                reason: Reason::ModelUnavailable,
                message: format!("model path {} is not a regular file; fix `spec.ref`", path.display()),
            });
        }
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let key = format!("file:{}#{}", path.display(), expected_hex.unwrap_or(""));
        if let Some(job) = lock(&self.shared.jobs).get(&key).cloned()
            && job.stamp == Some(stamp)
            && !pulled
        {
            return Ok(job);
        }
        let job = Arc::new(Job {
            key: key.clone(),
            source: Source::File(path.clone()),
            reference: display_url_str(&spec.reference),
            expected_hex: expected_hex.map(str::to_string),
            stamp: Some(stamp),
            // Hashing only for the catalog: progress wakes nobody (the Model is Ready already).
            progress: Arc::new(Progress::new(if expected_hex.is_some() {
                self.shared.wake.clone()
            } else {
                Arc::new(Notify::new())
            })),
            task: Mutex::new(None),
            state: Mutex::new(JobState {
                phase: if expected_hex.is_some() {
                    ModelPhase::Verifying
                } else {
                    ModelPhase::Ready
                },
                path: expected_hex.is_none().then(|| path.clone()),
                size: Some(stamp.0),
                running: true,
                ..JobState::default()
            }),
        });
        if let Some(old) = lock(&self.shared.jobs).insert(key, job.clone()) {
            old.abort();
        }
        job.spawn(hash_file_job(self.shared.clone(), job.clone()));
        Ok(job)
    }

    /// The job of a remote artifact: from the cache when it is there, else fetched when the
    /// policy allows (checked here, so a refusal is immediate).
    fn remote_job(
        &mut self,
        source: &Source,
        spec: &ModelSpec,
        expected_hex: Option<&str>,
        pulled: bool,
    ) -> Result<Arc<Job>, Problem> {
        let key = format!("{}#{}", spec.reference, expected_hex.unwrap_or(""));
        let existing = lock(&self.shared.jobs).get(&key).cloned();
        if let Some(job) = existing {
            let mut st = lock(&job.state);
            let retry = !st.running
                && (pulled || (st.phase == ModelPhase::Failed && st.retry_at.is_some_and(|t| Instant::now() >= t)));
            if !retry {
                drop(st);
                return Ok(job);
            }
            st.running = true;
            st.phase = ModelPhase::Pending;
            st.problem = None;
            drop(st);
            job.spawn(fetch_job(self.shared.clone(), job.clone()));
            return Ok(job);
        }
        let Some(fetcher) = &self.shared.fetcher else {
            return Err(fetch_problem(&FetchError::NoCache(display_url_str(&spec.reference))));
        };
        if cached(&self.shared, fetcher, &display_url_str(&spec.reference), expected_hex).is_none() {
            self.shared.precheck(source).map_err(|e| fetch_problem(&e))?;
        }
        let job = Arc::new(Job {
            key: key.clone(),
            source: source.clone(),
            reference: display_url_str(&spec.reference),
            expected_hex: expected_hex.map(str::to_string),
            stamp: None,
            progress: Arc::new(Progress::new(self.shared.wake.clone())),
            task: Mutex::new(None),
            state: Mutex::new(JobState {
                running: true,
                source_url: match source {
                    Source::Url(u) => Some(display_url_str(u)),
                    _ => None,
                },
                ..JobState::default()
            }),
        });
        lock(&self.shared.jobs).insert(key, job.clone());
        job.spawn(fetch_job(self.shared.clone(), job.clone()));
        Ok(job)
    }
}

#[cfg(test)]
#[path = "models_tests.rs"]
mod tests;
