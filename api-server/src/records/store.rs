//! The content-addressed artifact store under `<state>/artifacts/`: each artifact is the
//! compact JSON of an [`Artifact`], named by the sha256 of those bytes and appended, one per
//! line, to the current file of [`segments`](super::segments); `index.jsonl` holds one
//! [`IndexEntry`] per artifact (with where its bytes are) so lists read no segment. The index
//! is appended to while the daemon runs and compacted at open, after
//! [`recovery`](super::recovery) has checked it against the segments (an artifact whose index
//! line was lost is found again, one whose bytes were lost is dropped), and when its appends
//! outgrow it ([`index_file`](super::index_file)). Retention removes a
//! segment whole once none of its artifacts is kept. [`ArtifactStore::put`] syncs at once;
//! the records writer syncs its group writes at most a second apart
//! ([`SYNC_EVERY`](super::SYNC_EVERY)).
//!
//! Blocking file I/O throughout: callers use a blocking thread (`spawn_blocking` or the
//! records writer thread), never an async worker.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use llorch_manifests::records::{
    Artifact, ArtifactList, ArtifactSummary, ID_PREFIX, MAX_ARTIFACT_BYTES, is_artifact_id,
};

use super::index::{Index, IndexEntry, ListQuery};
use super::index_file::{IndexFile, IndexLine};
use super::recovery;
use super::segments::{self, Location, SEGMENT_BYTES, Segments};

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
    /// The bytes stored for an artifact are not the ones its id names.
    #[error(
        "the bytes stored for {id} in {path} do not match its id; the segment was changed or damaged outside llama-orch"
    )]
    Corrupt {
        /// The artifact.
        id: String,
        /// Its segment.
        path: PathBuf,
    },
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
            StoreError::Corrupt { id, path } => StoreError::Corrupt {
                id: id.clone(),
                path: path.clone(),
            },
        }
    }
}

pub(super) fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
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
    segments: Segments,
    index_file: IndexFile,
    index: Mutex<Index>,
}

impl ArtifactStore {
    /// Opens (creating) the store in `dir`: reads its index back, recovers what the newest
    /// segment holds past it, moves a legacy `objects/` directory in, starts a fresh segment,
    /// removes segments that hold nothing kept and compacts the index.
    pub fn open(dir: &Path) -> Result<ArtifactStore, StoreError> {
        ArtifactStore::open_sealing_at(dir, SEGMENT_BYTES)
    }

    /// [`open`](Self::open), sealing segments at `seal_at` bytes instead of
    /// [`SEGMENT_BYTES`].
    pub fn open_sealing_at(dir: &Path, seal_at: u64) -> Result<ArtifactStore, StoreError> {
        let seg_dir = dir.join("segments");
        fs::create_dir_all(&seg_dir).map_err(io("cannot create", &seg_dir))?;
        let index_file = IndexFile::new(dir.join("index.jsonl"));
        let existing = segments::list(&seg_dir).map_err(io("cannot read", &seg_dir))?;
        let found = recovery::read_back(&seg_dir, index_file.path(), &existing);
        // The last run's newest segment may hold appends only in the page cache (a daemon
        // stops without waiting for its writer's sync). Only the newest segment is checked at
        // open, so they reach the disk before a newer one starts.
        if let Some(&newest) = existing.last() {
            segments::sync_segment(&seg_dir, newest);
        }
        // A fresh segment only once what the newest one held past the index is indexed: a
        // crash in between finds the same tail again.
        let recovered: Vec<IndexLine> = found.recovered.into_iter().map(IndexLine::Put).collect();
        index_file.append(&recovered)?;
        let segments = Segments::start(&seg_dir, seal_at).map_err(io("cannot start a segment in", &seg_dir))?;
        let store = ArtifactStore {
            segments,
            index_file,
            index: Mutex::new(found.index),
        };
        recovery::import_legacy(&store, &dir.join("objects"), store.index_file.path());
        for seq in existing {
            if !store.index().holds(seq)
                && let Err(e) = store.segments.remove(seq)
            {
                tracing::warn!(segment = %store.segments.path(seq).display(), error = %e, "cannot remove an empty segment");
            }
        }
        store.index_file.compact(&store.index)?;
        Ok(store)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `artifact`, created at `created_ms`, and syncs it to the disk; its id and whether
    /// it is new (the same bytes stored before give the same id, and nothing is written).
    pub fn put(&self, artifact: &Artifact, created_ms: i64) -> Result<(String, bool), StoreError> {
        let put = self
            .put_all(&[(artifact, created_ms)])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Encode(serde::ser::Error::custom("nothing was stored"))))?;
        self.sync()?;
        Ok(put)
    }

    /// Makes every artifact stored so far durable (see [`Segments::sync`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.segments
            .sync()
            .map_err(io("cannot sync", &self.segments.path(self.segments.current_seq())))
    }

    /// Stores each artifact with its creation time as one group: the new ones are appended to
    /// the current segment in one write, then indexed (readable at once) with one append to
    /// the index. They reach the disk at the next [`sync`](Self::sync); until then a crash of
    /// the machine (not of the daemon) can lose them, and the next open drops what was lost.
    /// One result per artifact, in order.
    pub fn put_all(&self, artifacts: &[(&Artifact, i64)]) -> Vec<Result<(String, bool), StoreError>> {
        let mut results = Vec::with_capacity(artifacts.len());
        let mut fresh: Vec<Encoded> = Vec::new();
        for (i, (artifact, created_ms)) in artifacts.iter().enumerate() {
            results.push(match encode(artifact) {
                Ok(e) if self.index().contains(&e.id) || fresh.iter().any(|f| f.id == e.id) => Ok((e.id, false)),
                Ok(e) => {
                    let id = e.id.clone();
                    fresh.push(Encoded {
                        slot: i,
                        created_ms: *created_ms,
                        ..e
                    });
                    Ok((id, true))
                }
                Err(e) => Err(e),
            });
        }
        for (slot, outcome) in self.write(artifacts, fresh) {
            match outcome {
                Written::Indexed => {}
                Written::Already => {
                    if let Ok((_, new)) = &mut results[slot] {
                        *new = false;
                    }
                }
                Written::Failed(e) => results[slot] = Err(e),
            }
        }
        results
    }

    /// Appends `fresh` (encoded from `artifacts`) to the current segment and indexes each;
    /// what came of each, by its slot in `artifacts`. The index lock is not held while the
    /// segment is written (a list never waits for the disk).
    fn write(&self, artifacts: &[(&Artifact, i64)], fresh: Vec<Encoded>) -> Vec<(usize, Written)> {
        if fresh.is_empty() {
            return Vec::new();
        }
        let bytes: Vec<&[u8]> = fresh.iter().map(|e| e.bytes.as_slice()).collect();
        let at = match self.segments.append(&bytes) {
            Ok(at) => at,
            Err(e) => {
                let failed = io("cannot append to", &self.segments.path(self.segments.current_seq()))(e);
                return fresh
                    .iter()
                    .map(|e| (e.slot, Written::Failed(failed.again())))
                    .collect();
            }
        };
        let mut outcomes = Vec::with_capacity(fresh.len());
        let mut lines = Vec::with_capacity(fresh.len());
        for (e, at) in fresh.into_iter().zip(at) {
            let entry = entry_of(artifacts[e.slot].0, e.id, at, e.created_ms, e.bytes.len() as u64);
            // Two writers of the same bytes both append them; the index takes one.
            if self.index().insert(entry.clone()) {
                lines.push(IndexLine::Put(entry));
                outcomes.push((e.slot, Written::Indexed));
            } else {
                outcomes.push((e.slot, Written::Already));
            }
        }
        if let Err(e) = self.index_file.append(&lines) {
            for (_, outcome) in &mut outcomes {
                if matches!(outcome, Written::Indexed) {
                    *outcome = Written::Failed(e.again());
                }
            }
        }
        outcomes
    }

    /// Stores already encoded, hash-checked artifacts (a legacy object directory's) as one
    /// group; how many were new.
    pub(super) fn put_encoded(&self, found: Vec<(Artifact, Vec<u8>, i64)>) -> Result<usize, StoreError> {
        let artifacts: Vec<(&Artifact, i64)> = found.iter().map(|(a, _, created)| (a, *created)).collect();
        let fresh = found
            .iter()
            .enumerate()
            .map(|(slot, (_, bytes, created_ms))| Encoded {
                slot,
                id: format!("{ID_PREFIX}{}", llorch_manifests::hash::sha256_hex(bytes)),
                bytes: bytes.clone(),
                created_ms: *created_ms,
            })
            .filter(|e| !self.index().contains(&e.id))
            .collect();
        let mut new = 0;
        for (_, outcome) in self.write(&artifacts, fresh) {
            match outcome {
                Written::Indexed => new += 1,
                Written::Already => {}
                Written::Failed(e) => return Err(e),
            }
        }
        self.sync()?;
        Ok(new)
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
        let path = self.segments.path(entry.at.seg);
        let bytes = match self.segments.read(entry.at, entry.size) {
            Ok(bytes) => bytes,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::UnexpectedEof) => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        if llorch_manifests::hash::sha256_hex(&bytes) != entry.id.trim_start_matches(ID_PREFIX) {
            return Err(StoreError::Corrupt { id: entry.id, path });
        }
        Ok(Some((entry, bytes)))
    }

    /// One page of the index, newest first.
    pub fn list(&self, query: &ListQuery) -> ArtifactList {
        self.index().list(query)
    }

    /// Removes what retention no longer keeps (over `max_bytes`, or created before
    /// `oldest_ms`), oldest first, and every segment left holding nothing kept; how many
    /// artifacts went.
    pub fn collect_garbage(&self, max_bytes: u64, oldest_ms: i64) -> Result<usize, StoreError> {
        // Out of the index first (under its lock), then off the disk (without it).
        let (gone, emptied) = {
            let mut index = self.index();
            let gone = index.expired(max_bytes, oldest_ms);
            let mut emptied = BTreeSet::new();
            for id in &gone {
                if let Some(entry) = index.remove(id)
                    && !index.holds(entry.at.seg)
                {
                    emptied.insert(entry.at.seg);
                }
            }
            (gone, emptied)
        };
        let lines: Vec<IndexLine> = gone.iter().map(|id| IndexLine::Del { id: id.clone() }).collect();
        // The removals are recorded before any segment goes: a crash in between leaves
        // segments that hold nothing kept, and the next open removes them.
        self.index_file.append(&lines)?;
        for seq in emptied {
            self.segments
                .remove(seq)
                .map_err(io("cannot remove", &self.segments.path(seq)))?;
        }
        if self.index_file.wants_compaction() {
            self.index_file.compact(&self.index)?;
        }
        Ok(gone.len())
    }

    /// `(artifacts, bytes)` stored.
    pub fn usage(&self) -> (usize, u64) {
        let index = self.index();
        (index.len(), index.bytes())
    }
}

/// An artifact's bytes and id, to be appended.
struct Encoded {
    /// Its place in the group.
    slot: usize,
    id: String,
    bytes: Vec<u8>,
    created_ms: i64,
}

/// What came of appending one artifact.
enum Written {
    /// Appended and indexed.
    Indexed,
    /// Appended, but another writer indexed the same bytes first.
    Already,
    /// Not stored.
    Failed(StoreError),
}

/// `artifact`'s compact JSON and id (its slot and time are filled in by the caller).
fn encode(artifact: &Artifact) -> Result<Encoded, StoreError> {
    let bytes = serde_json::to_vec(artifact).map_err(StoreError::Encode)?;
    if bytes.len() > MAX_ARTIFACT_BYTES {
        return Err(StoreError::TooLarge {
            size: bytes.len(),
            limit: MAX_ARTIFACT_BYTES,
        });
    }
    Ok(Encoded {
        slot: 0,
        id: format!("{ID_PREFIX}{}", llorch_manifests::hash::sha256_hex(&bytes)),
        bytes,
        created_ms: 0,
    })
}

/// The index entry of `artifact`, stored under `id` at `at` (`size` bytes).
pub(super) fn entry_of(artifact: &Artifact, id: String, at: Location, created_ms: i64, size: u64) -> IndexEntry {
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
        at,
        kind: artifact.kind(),
        job,
        pool,
        created_ms,
        size,
        summary,
        identity,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
