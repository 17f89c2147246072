//! Job records, plans and diffs: the content-addressed [`store`] under `<state>/artifacts`,
//! the [`Records`] handle the API and the data plane use, and the writer thread that turns a
//! finished task into its [`JobRecord`] off the request path.
//!
//! A task's transcript is captured as its events are sent (native SSE bytes appended to one
//! buffer); when the task ends, [`lifecycle`](crate::tasks::lifecycle) hands a
//! [`FinishedJob`] to [`Records::submit`] — a non-blocking channel send — and the writer
//! thread serializes the record (its transcript kept as that text, a [`Transcript`], never
//! split into owned events), stores it and applies retention. Nothing here logs a prompt or a
//! token.
//!
//! - [`index`]: the in-memory index, paging and the retention choice (pure).
//! - [`store`]: the store: group writes, lookups, garbage collection.
//! - [`index_file`]: the index on disk, appended to and compacted.
//! - [`segments`]: the files artifacts are appended to.
//! - [`recovery`]: what the store finds on disk at open.
//! - [`transcript`]: what a replay compares of two transcripts.
//! - [`replay`]: re-running a record through the data plane.

pub mod index;
mod index_file;
mod recovery;
pub mod replay;
pub mod segments;
pub mod store;
pub mod transcript;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use llorch_manifests::records::{
    Artifact, ArtifactList, JobRecord, OpenAiSurface, RecordedEngine, RecordedModel, Transcript,
};

use index::ListQuery;
use store::{ArtifactStore, Lookup, StoreError};

/// Finished jobs waiting for the writer; beyond this, records are dropped (and counted)
/// rather than make a task wait.
pub const WRITER_BACKLOG: usize = 1024;

/// Most finished jobs written as one group (one segment append, one index append).
const WRITE_GROUP: usize = 64;

/// How often retention runs when nothing is written.
pub const GC_EVERY: Duration = Duration::from_secs(60);

/// Most time a job record the writer stored waits for its sync to the disk. Readable at once;
/// a crash of the machine (not of the daemon) loses at most this much of the newest records.
/// One sync per group cost the relay 3–5 points of its ratio at 256 streams on the measuring
/// machine (docs/benchmarks.md).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Whether and how long records are kept (the config's `records`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordsSettings {
    /// Record finished tasks.
    pub enabled: bool,
    /// Most bytes kept.
    pub max_bytes: u64,
    /// Oldest kept.
    pub max_age: Duration,
}

/// A task that ended, as the lifecycle hands it over: its record without the transcript, and
/// the transcript's raw native SSE bytes.
#[derive(Debug)]
pub struct FinishedJob {
    /// Everything but `transcript`.
    pub record: JobRecord,
    /// The stream's bytes.
    pub transcript: Vec<u8>,
    /// For a canceled task: the tokens its client was let read (the rest is cut).
    pub tokens_streamed: Option<u32>,
    /// Admission time, ms since the epoch.
    pub created_ms: i64,
}

impl FinishedJob {
    /// The record with its transcript.
    pub fn into_record(self) -> JobRecord {
        let mut record = self.record;
        record.transcript = Transcript::from_sse(self.transcript);
        if let Some(n) = self.tokens_streamed {
            record.transcript.keep_tokens(n);
        }
        record
    }
}

/// What a task to be recorded carries from admission: the sink and what served it.
#[derive(Clone)]
pub struct RecordSetup {
    /// Where its record goes.
    pub records: Arc<Records>,
    /// The Engine.
    pub engine: RecordedEngine,
    /// The Model.
    pub model: RecordedModel,
    /// The `/v1` endpoint, for a `/v1` request.
    pub openai: Option<OpenAiSurface>,
}

impl std::fmt::Debug for RecordSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSetup")
            .field("engine", &self.engine)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RecordSetup {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.records, &other.records)
            && self.engine == other.engine
            && self.model == other.model
            && self.openai == other.openai
    }
}

impl Eq for RecordSetup {}

/// The artifact store and its writer.
#[derive(Debug)]
pub struct Records {
    store: Arc<ArtifactStore>,
    settings: RecordsSettings,
    writer: mpsc::SyncSender<FinishedJob>,
    dropped: AtomicU64,
}

impl Records {
    /// Opens the store in `dir` (blocking: call before serving, or on a blocking thread) and
    /// starts its writer thread.
    pub fn open(dir: &std::path::Path, settings: RecordsSettings) -> Result<Arc<Records>, StoreError> {
        // Segments of an eighth of what is kept (16 MiB at most): what retention removes
        // leaves the disk within about an eighth more than `max_bytes`.
        let seal_at = (settings.max_bytes / 8).clamp(64 << 10, segments::SEGMENT_BYTES);
        let store = Arc::new(ArtifactStore::open_sealing_at(dir, seal_at)?);
        let (writer, jobs) = mpsc::sync_channel(WRITER_BACKLOG);
        let records = Arc::new(Records {
            store: store.clone(),
            settings: settings.clone(),
            writer,
            dropped: AtomicU64::new(0),
        });
        collect(&store, &settings);
        let spawned = std::thread::Builder::new()
            .name("llorch-records".into())
            .spawn(move || write_loop(&store, &settings, &jobs));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the records writer; no job record will be written");
        }
        Ok(records)
    }

    /// True when finished tasks are recorded.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Hands `job` to the writer; never blocks (a full backlog drops the record, logged).
    pub fn submit(&self, job: FinishedJob) {
        if let Err(e) = self.writer.try_send(job) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let task = match &e {
                mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j.record.task_id.clone(),
            };
            tracing::warn!(task_id = %task, dropped = n, "job record dropped: the records writer is behind");
        }
    }

    /// The bytes stored under `what` (on a blocking thread).
    pub async fn get(&self, what: Lookup) -> Result<Option<(index::IndexEntry, Vec<u8>)>, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.get(&what))
            .await
            .unwrap_or_else(|e| Err(join_error(e)))
    }

    /// One page, newest first (the index is in memory: no file is read).
    pub fn list(&self, query: &ListQuery) -> ArtifactList {
        self.store.list(query)
    }

    /// Stores `artifact` now (on a blocking thread), then applies retention; its id and
    /// whether it is new.
    pub async fn put(&self, artifact: Artifact) -> Result<(String, bool), StoreError> {
        let (store, settings) = (self.store.clone(), self.settings.clone());
        tokio::task::spawn_blocking(move || {
            let put = store.put(&artifact, now_ms());
            collect(&store, &settings);
            put
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)))
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        what: "the store's blocking task failed",
        path: std::path::PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    ms_of(SystemTime::now())
}

/// `t` in milliseconds since the epoch.
pub fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The writer thread: records finished jobs, syncs them at most [`SYNC_EVERY`] after the
/// first unsynced one, runs retention after each write and every [`GC_EVERY`]; syncs and
/// ends when the [`Records`] is dropped.
fn write_loop(store: &ArtifactStore, settings: &RecordsSettings, jobs: &mpsc::Receiver<FinishedJob>) {
    let mut unsynced: Option<Instant> = None;
    loop {
        let wait = unsynced.map_or(GC_EVERY, |since| SYNC_EVERY.saturating_sub(since.elapsed()));
        match jobs.recv_timeout(wait) {
            Ok(job) => {
                // Everything else waiting joins it: one group write, one retention pass.
                let mut batch = vec![job];
                while batch.len() < WRITE_GROUP
                    && let Ok(job) = jobs.try_recv()
                {
                    batch.push(job);
                }
                write_group(store, batch);
                collect(store, settings);
                let since = *unsynced.get_or_insert_with(Instant::now);
                if since.elapsed() >= SYNC_EVERY {
                    sync(store);
                    unsynced = None;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => match unsynced.take() {
                Some(_) => sync(store),
                None => collect(store, settings),
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                sync(store);
                return;
            }
        }
    }
}

fn sync(store: &ArtifactStore) {
    if let Err(e) = store.sync() {
        tracing::warn!(error = %e, "job records not synced to the disk");
    }
}

/// Records `jobs` in one group write; each outcome is logged.
fn write_group(store: &ArtifactStore, jobs: Vec<FinishedJob>) {
    let artifacts: Vec<(Artifact, i64)> = jobs
        .into_iter()
        .map(|job| {
            let created = job.created_ms;
            (Artifact::Job(Box::new(job.into_record())), created)
        })
        .collect();
    let refs: Vec<(&Artifact, i64)> = artifacts.iter().map(|(a, created)| (a, *created)).collect();
    for ((artifact, _), result) in artifacts.iter().zip(store.put_all(&refs)) {
        let Artifact::Job(record) = artifact else { continue };
        let task = &record.task_id;
        match result {
            Ok((id, _)) => tracing::debug!(task_id = %task, artifact = %id, "job recorded"),
            Err(e) => tracing::warn!(task_id = %task, error = %e, "job record not written"),
        }
    }
}

/// Applies retention; failures are logged.
fn collect(store: &ArtifactStore, settings: &RecordsSettings) {
    let oldest = now_ms().saturating_sub(settings.max_age.as_millis() as i64);
    match store.collect_garbage(settings.max_bytes, oldest) {
        Ok(0) => {}
        Ok(n) => {
            let (left, bytes) = store.usage();
            tracing::info!(removed = n, left, bytes, "artifacts removed by retention");
        }
        Err(e) => tracing::warn!(error = %e, "artifact retention failed"),
    }
}

/// Reads `bytes` as a job record.
pub fn job_of(bytes: &[u8]) -> Option<JobRecord> {
    match serde_json::from_slice::<Artifact>(bytes).ok()? {
        Artifact::Job(r) => Some(*r),
        _ => None,
    }
}
