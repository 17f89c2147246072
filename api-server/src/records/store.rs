//! The content-addressed artifact store under `<state>/artifacts/`: each object is the
//! compact JSON of an [`Artifact`] in `objects/<hex>.json`, named by the sha256 of those bytes
//! and written atomically (a temporary file, fsync, rename); `index.jsonl` holds one
//! [`IndexEntry`] per object so lists read no object. The index is append-only while the
//! daemon runs and compacted at open; at open it is also checked against `objects/` (an
//! object it misses is read and indexed, an entry whose object is gone is dropped), so a
//! crash between the object's rename and the index line loses nothing.
//!
//! Blocking file I/O throughout: callers use a blocking thread (`spawn_blocking` or the
//! records writer thread), never an async worker.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use llorch_manifests::records::{
    Artifact, ArtifactList, ArtifactSummary, ID_PREFIX, MAX_ARTIFACT_BYTES, is_artifact_id,
};

use super::index::{Index, IndexEntry, ListQuery};

/// Largest `index.jsonl` read at open; a larger one is rebuilt from the objects.
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The artifact is larger than [`MAX_ARTIFACT_BYTES`].
    #[error("the artifact is {size} bytes; at most {limit} bytes are stored")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The id is neither `sha256:<64 hex>` nor a task id.
    #[error("`{0}` is not an artifact id (`sha256:` and 64 lowercase hex digits) nor a task id (`task-…`)")]
    InvalidId(String),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The artifact could not be encoded.
    #[error("cannot encode the artifact: {0}")]
    Encode(#[source] serde_json::Error),
}

impl StoreError {
    /// The same error once more, for each of several artifacts a failed group write touched
    /// (an I/O error keeps its kind and words).
    fn again(&self) -> StoreError {
        match self {
            StoreError::TooLarge { size, limit } => StoreError::TooLarge {
                size: *size,
                limit: *limit,
            },
            StoreError::InvalidId(id) => StoreError::InvalidId(id.clone()),
            StoreError::Io { what, path, source } => StoreError::Io {
                what,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::Encode(e) => StoreError::Encode(serde::ser::Error::custom(e.to_string())),
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A lookup key: an artifact id, or a task id whose job record is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `sha256:<hex>`.
    Id(String),
    /// `task-…`.
    Job(String),
}

impl Lookup {
    /// Checks `text`; hostile names (`../x`, anything with a `/`) are refused.
    pub fn parse(text: &str) -> Result<Lookup, StoreError> {
        if is_artifact_id(text) {
            return Ok(Lookup::Id(text.to_string()));
        }
        let task_like = text.len() <= 64
            && text.starts_with("task-")
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if task_like {
            return Ok(Lookup::Job(text.to_string()));
        }
        Err(StoreError::InvalidId(llorch_manifests::text::cut(text.to_string(), 80)))
    }
}

/// The store.
#[derive(Debug)]
pub struct ArtifactStore {
    objects: PathBuf,
    index_file: PathBuf,
    index: Mutex<Index>,
}

impl ArtifactStore {
    /// Opens (creating) the store in `dir`, rebuilding and compacting its index.
    pub fn open(dir: &Path) -> Result<ArtifactStore, StoreError> {
        let objects = dir.join("objects");
        fs::create_dir_all(&objects).map_err(io("cannot create", &objects))?;
        let index_file = dir.join("index.jsonl");
        let mut index = Index::default();
        for entry in read_index(&index_file) {
            match entry {
                IndexLine::Put(e) => {
                    index.insert(e);
                }
                IndexLine::Del { id } => {
                    index.remove(&id);
                }
            }
        }
        let on_disk = list_objects(&objects)?;
        let indexed: Vec<String> = index.entries().map(|e| e.id.clone()).collect();
        for id in indexed {
            if !on_disk.contains(&id) {
                index.remove(&id);
            }
        }
        for id in &on_disk {
            if !index.contains(id)
                && let Some(entry) = entry_from_object(&objects, id)
            {
                index.insert(entry);
            }
        }
        let store = ArtifactStore {
            objects,
            index_file,
            index: Mutex::new(index),
        };
        store.compact()?;
        Ok(store)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rewrites `index.jsonl` with the entries in force, atomically.
    fn compact(&self) -> Result<(), StoreError> {
        let mut text = Vec::new();
        for e in self.index().entries() {
            serde_json::to_writer(&mut text, &IndexLine::Put(e.clone())).map_err(StoreError::Encode)?;
            text.push(b'\n');
        }
        write_atomically(&self.index_file, &text)
    }

    /// Stores `artifact`, created at `created_ms`; its id and whether it is new (the same
    /// bytes stored before give the same id, and nothing is written).
    pub fn put(&self, artifact: &Artifact, created_ms: i64) -> Result<(String, bool), StoreError> {
        self.put_all(&[(artifact, created_ms)])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Encode(serde::ser::Error::custom("nothing was stored"))))
    }

    /// Stores each artifact with its creation time, as [`put`](Self::put) does, as one group:
    /// each object's temporary file is written and fsynced, then all are renamed into place,
    /// the directory is fsynced once and the index gets one append. A busy writer pays one
    /// directory sync and one index open per group instead of per object. One result per
    /// artifact, in order.
    pub fn put_all(&self, artifacts: &[(&Artifact, i64)]) -> Vec<Result<(String, bool), StoreError>> {
        let mut results = Vec::with_capacity(artifacts.len());
        let mut staged: Vec<(usize, Staged)> = Vec::new();
        for (i, (artifact, created_ms)) in artifacts.iter().enumerate() {
            results.push(match self.stage(artifact, *created_ms) {
                Ok(Stage::Stored(id)) => Ok((id, false)),
                Ok(Stage::Written(s)) => {
                    let id = s.entry.id.clone();
                    staged.push((i, s));
                    Ok((id, true))
                }
                Err(e) => Err(e),
            });
        }
        if staged.is_empty() {
            return results;
        }
        let mut placed = Vec::with_capacity(staged.len());
        for (i, s) in staged {
            match fs::rename(&s.tmp, &s.path) {
                Ok(()) => placed.push((i, s.entry)),
                Err(e) => {
                    let _ = fs::remove_file(&s.tmp);
                    results[i] = Err(io("cannot write", &s.path)(e));
                }
            }
        }
        sync_dir(&self.objects);
        // Files are written without the index lock held (a list never waits for an fsync). Two
        // writers of the same bytes write the same file; the index takes one entry.
        let mut lines = Vec::with_capacity(placed.len());
        for (i, entry) in placed {
            if self.index().insert(entry.clone()) {
                lines.push((i, IndexLine::Put(entry)));
            } else if let Ok((_, new)) = &mut results[i] {
                *new = false;
            }
        }
        if let Err(e) = self.append(lines.iter().map(|(_, line)| line)) {
            for (i, _) in &lines {
                results[*i] = Err(e.again());
            }
        }
        results
    }

    /// Encodes `artifact` and, unless it is stored already, writes it to a temporary file
    /// beside its place (fsynced, not yet renamed).
    fn stage(&self, artifact: &Artifact, created_ms: i64) -> Result<Stage, StoreError> {
        let bytes = serde_json::to_vec(artifact).map_err(StoreError::Encode)?;
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(StoreError::TooLarge {
                size: bytes.len(),
                limit: MAX_ARTIFACT_BYTES,
            });
        }
        let hex = llorch_manifests::hash::sha256_hex(&bytes);
        let id = format!("{ID_PREFIX}{hex}");
        if self.index().contains(&id) {
            return Ok(Stage::Stored(id));
        }
        let path = self.objects.join(format!("{hex}.json"));
        let tmp = write_temporary(&path, &bytes)?;
        let entry = entry_of(artifact, id, created_ms, bytes.len() as u64);
        Ok(Stage::Written(Staged { tmp, path, entry }))
    }

    /// Appends `lines` to `index.jsonl` in one write (nothing is opened for none).
    fn append<'a>(&self, lines: impl IntoIterator<Item = &'a IndexLine>) -> Result<(), StoreError> {
        let mut text = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut text, line).map_err(StoreError::Encode)?;
            text.push(b'\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.index_file)
            .map_err(io("cannot open", &self.index_file))?;
        file.write_all(&text).map_err(io("cannot append to", &self.index_file))
    }

    /// The entry and stored bytes of `what`; `None` when nothing is stored under it.
    pub fn get(&self, what: &Lookup) -> Result<Option<(IndexEntry, Vec<u8>)>, StoreError> {
        let entry = {
            let index = self.index();
            let id = match what {
                Lookup::Id(id) => Some(id.as_str()),
                Lookup::Job(job) => index.job(job),
            };
            match id.and_then(|id| index.get(id)) {
                Some(e) => e.clone(),
                None => return Ok(None),
            }
        };
        let path = self.object_path(&entry.id);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((entry, bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read", &path)(e)),
        }
    }

    fn object_path(&self, id: &str) -> PathBuf {
        // Only ids that passed `is_artifact_id` reach here: 64 hex digits, no separator.
        self.objects.join(format!("{}.json", id.trim_start_matches(ID_PREFIX)))
    }

    /// One page of the index, newest first.
    pub fn list(&self, query: &ListQuery) -> ArtifactList {
        self.index().list(query)
    }

    /// Removes what retention no longer keeps (over `max_bytes`, or created before
    /// `oldest_ms`), oldest first; how many went.
    pub fn collect_garbage(&self, max_bytes: u64, oldest_ms: i64) -> Result<usize, StoreError> {
        // Out of the index first (under its lock), then off the disk (without it).
        let gone: Vec<String> = {
            let mut index = self.index();
            let gone = index.expired(max_bytes, oldest_ms);
            for id in &gone {
                index.remove(id);
            }
            gone
        };
        let mut lines = Vec::with_capacity(gone.len());
        let mut removed = Ok(());
        for id in &gone {
            let path = self.object_path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    removed = Err(io("cannot remove", &path)(e));
                    break;
                }
            }
            lines.push(IndexLine::Del { id: id.clone() });
        }
        // One append for what went, also when a removal failed part way.
        self.append(&lines)?;
        removed.map(|()| gone.len())
    }

    /// `(artifacts, bytes)` stored.
    pub fn usage(&self) -> (usize, u64) {
        let index = self.index();
        (index.len(), index.bytes())
    }
}

/// An object in its temporary file, to be renamed into place.
struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    entry: IndexEntry,
}

/// What staging an artifact came to.
enum Stage {
    /// The same bytes are stored already, under this id.
    Stored(String),
    /// Written, not yet in place.
    Written(Staged),
}

/// One line of `index.jsonl`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum IndexLine {
    Put(IndexEntry),
    Del { id: String },
}

/// The lines of `index.jsonl` that parse, in order (a torn last line is skipped).
fn read_index(path: &Path) -> Vec<IndexLine> {
    let Ok(file) = fs::File::open(path) else {
        return Vec::new();
    };
    if file.metadata().is_ok_and(|m| m.len() > MAX_INDEX_BYTES) {
        return Vec::new();
    }
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .filter(|l: &IndexLine| match l {
            IndexLine::Put(e) => is_artifact_id(&e.id),
            IndexLine::Del { .. } => true,
        })
        .collect()
}

/// The ids of the objects in `dir` (`<hex>.json`; temporary files and strangers skipped).
fn list_objects(dir: &Path) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut ids = std::collections::HashSet::new();
    for entry in fs::read_dir(dir).map_err(io("cannot read", dir))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let id = format!("{ID_PREFIX}{hex}");
        if is_artifact_id(&id) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// The entry of an object found without one (its creation time: a job's admission, else the
/// file's modification time).
fn entry_from_object(dir: &Path, id: &str) -> Option<IndexEntry> {
    let path = dir.join(format!("{}.json", id.trim_start_matches(ID_PREFIX)));
    let bytes = fs::read(&path).ok()?;
    if llorch_manifests::hash::sha256_hex(&bytes) != id.trim_start_matches(ID_PREFIX) {
        tracing::warn!(file = %path.display(), "artifact does not match its name; not indexed");
        return None;
    }
    let artifact: Artifact = serde_json::from_slice(&bytes).ok()?;
    let created_ms = match &artifact {
        Artifact::Job(job) => job
            .created_at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond()),
        _ => None,
    }
    .or_else(|| {
        let modified = fs::metadata(&path).ok()?.modified().ok()?;
        let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(since.as_millis() as i64)
    })
    .unwrap_or(0);
    Some(entry_of(&artifact, id.to_string(), created_ms, bytes.len() as u64))
}

fn entry_of(artifact: &Artifact, id: String, created_ms: i64, size: u64) -> IndexEntry {
    let identity = match artifact {
        Artifact::Job(r) => Some(r.identity.clone()),
        _ => None,
    };
    let (job, pool, summary) = match artifact {
        Artifact::Job(r) => (
            Some(r.task_id.clone()),
            Some(r.pool.clone()),
            ArtifactSummary {
                state: Some(r.state),
                model: Some(r.model.name.clone()),
                tokens_out: Some(r.tokens_out),
                finish_reason: r.finish_reason,
            },
        ),
        Artifact::Plan(_) | Artifact::Diff(_) => (None, None, ArtifactSummary::default()),
    };
    IndexEntry {
        id,
        kind: artifact.kind(),
        job,
        pool,
        created_ms,
        size,
        summary,
        identity,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. A reader sees the old file or the new one, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = write_temporary(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io("cannot write", path)(e));
    }
    sync_dir(path.parent().unwrap_or_else(|| Path::new(".")));
    Ok(())
}

/// Writes `bytes` to a new temporary file beside `path` and fsyncs it; its path. Nothing is
/// left behind when that fails.
fn write_temporary(path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact");
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io("cannot write", path)(e))
        }
    }
}

/// Makes the renames in `dir` durable (best effort: not every file system can sync a
/// directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
