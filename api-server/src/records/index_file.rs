//! `index.jsonl`, the index on disk: a `put` line per stored artifact and a `del` line per
//! removed one, appended through one open handle, and compacted — rewritten atomically with
//! the entries in force — at open and whenever what was appended since the last compaction
//! outgrows what that compaction wrote (1 MiB at least). Without the second rule a daemon that
//! ran for weeks appended to it without bound, whatever retention kept.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::index::{Index, IndexEntry};
use super::store::{StoreError, io};

/// Appended bytes below which the index is never compacted while the daemon runs.
pub const COMPACT_AT_LEAST: u64 = 1 << 20;

/// One line of `index.jsonl`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum IndexLine {
    /// An artifact stored.
    Put(IndexEntry),
    /// An artifact removed.
    Del {
        /// Its id.
        id: String,
    },
}

/// The index file of a store.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
    state: Mutex<Appends>,
}

/// The open handle (opened at the first append after a compaction) and the sizes the
/// compaction rule compares.
#[derive(Debug, Default)]
struct Appends {
    file: Option<fs::File>,
    /// Bytes appended since the last compaction.
    appended: u64,
    /// Bytes the last compaction wrote.
    compacted: u64,
}

impl IndexFile {
    /// The index file at `path` (nothing is opened yet).
    pub fn new(path: PathBuf) -> Self {
        IndexFile {
            path,
            state: Mutex::default(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` in one write (nothing is opened for none).
    pub fn append(&self, lines: &[IndexLine]) -> Result<(), StoreError> {
        let mut text = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut text, line).map_err(StoreError::Encode)?;
            text.push(b'\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let mut state = self.state();
        let file = match &mut state.file {
            Some(file) => file,
            None => state.file.insert(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(io("cannot open", &self.path))?,
            ),
        };
        if let Err(e) = file.write_all(&text) {
            // Opened again at the next append: a handle that failed once is not trusted.
            state.file = None;
            return Err(io("cannot append to", &self.path)(e));
        }
        state.appended += text.len() as u64;
        Ok(())
    }

    /// True when what was appended since the last compaction outgrew what it wrote.
    pub fn wants_compaction(&self) -> bool {
        let state = self.state();
        state.appended > state.compacted.max(COMPACT_AT_LEAST)
    }

    /// Rewrites the file with `index`'s entries, atomically. Appends wait meanwhile; a line
    /// appended between an index change and this is written again after it, which reading
    /// back tolerates (a second `put` of an id, a `del` of an unknown one).
    pub fn compact(&self, index: &Mutex<Index>) -> Result<(), StoreError> {
        let mut state = self.state();
        let mut text = Vec::new();
        {
            let index = index.lock().unwrap_or_else(|p| p.into_inner());
            for e in index.entries() {
                serde_json::to_writer(&mut text, &IndexLine::Put(e.clone())).map_err(StoreError::Encode)?;
                text.push(b'\n');
            }
        }
        write_atomically(&self.path, &text)?;
        // The handle names the file just replaced.
        *state = Appends {
            file: None,
            appended: 0,
            compacted: text.len() as u64,
        };
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, Appends> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
