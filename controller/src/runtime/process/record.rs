//! The process runtime's memory on disk: one JSON record per engine process it started
//! (`<dir>/<id>.json`), written atomically. Records are the whole link between a process and
//! the manifests, as labels are for containers: a restarted daemon reads them back and adopts
//! the processes that still run.
//! It never starts, signals or reads a process: `spawn` and `procfs` do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One engine process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    /// `proc-<pid>-<start ticks>`: unique even when the kernel reuses the pid.
    pub id: String,
    /// The replica's name (as a container would be named).
    pub name: String,
    /// Process id, also its process group id.
    pub pid: u32,
    /// Start time from `/proc/<pid>/stat`, in clock ticks after boot.
    pub start_ticks: u64,
    /// The loopback port it was told to listen on.
    pub port: u16,
    /// The resolved executable.
    pub executable: String,
    /// Its arguments, placeholders filled.
    pub args: Vec<String>,
    /// Labels, as on containers.
    pub labels: BTreeMap<String, String>,
    /// When it was started (RFC 3339).
    pub started_at: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// The records' directory.
#[derive(Clone, Debug)]
pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    /// Records in `dir` (created when missing).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes `record` atomically (hidden temporary file + rename, which `all` skips).
    pub fn write(&self, record: &ProcessRecord) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        crate::atomic_file::write_atomic(&self.path(&record.id), &text)
    }

    /// The record `id`, if there is one.
    pub fn load(&self, id: &str) -> Option<ProcessRecord> {
        let text = std::fs::read(self.path(id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Every readable record, sorted by id. Unreadable ones are logged and skipped.
    pub fn all(&self) -> std::io::Result<Vec<ProcessRecord>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let is_record = path.extension().is_some_and(|e| e == "json")
                && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !is_record {
                continue;
            }
            match std::fs::read(&path).map(|t| serde_json::from_slice::<ProcessRecord>(&t)) {
                Ok(Ok(record)) => out.push(record),
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "unreadable process record; ignoring it")
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read process record"),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Deletes the record `id`; already gone is fine.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(id: &str) -> ProcessRecord {
        ProcessRecord {
            id: id.into(),
            name: "n".into(),
            pid: 1,
            start_ticks: 2,
            port: 3,
            executable: "/bin/true".into(),
            args: vec!["--port".into(), "3".into()],
            labels: BTreeMap::from([("k".into(), "v".into())]),
            started_at: "2026-01-01T00:00:00Z".into(),
            log: "/tmp/x.log".into(),
        }
    }

    #[test]
    fn records_round_trip_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(&dir.path().join("p")).unwrap();
        store.write(&record("proc-2-1")).unwrap();
        store.write(&record("proc-1-1")).unwrap();
        std::fs::write(store.dir().join("junk.json"), "{").unwrap();
        let ids: Vec<String> = store.all().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["proc-1-1", "proc-2-1"]);
        assert_eq!(store.load("proc-1-1").unwrap(), record("proc-1-1"));
        store.remove("proc-1-1").unwrap();
        store.remove("proc-1-1").unwrap();
        assert!(store.load("proc-1-1").is_none());
    }
}
