//! The catalog's index: one JSON file (`<state>/catalog.json`) with a `schemaVersion` and the
//! [`CatalogEntry`] of every artifact, keyed by digest. Written atomically (temp file, fsync,
//! rename, fsync of the folder). A file this build cannot read — corrupt, or written by a
//! newer llama-orch — is an error naming the file and what to do; it is never overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use llorch_manifests::api::{CatalogEntry, Lifecycle};
use serde::{Deserialize, Serialize};

/// The index format this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The index file's name under the state directory.
pub const FILE_NAME: &str = "catalog.json";

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading failed, or the content is not an index.
    #[error(
        "catalog index {path} cannot be read ({why}); move it away and restart: the cached files are kept \
         and re-indexed as Models ask for them"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A newer llama-orch wrote it.
    #[error(
        "catalog index {path} has schemaVersion {found}, this llama-orchd reads up to {SCHEMA_VERSION}; \
         upgrade llama-orchd, or move the file away to start a new index"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Writing failed.
    #[error("cannot write catalog index {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default)]
    entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionOnly {
    schema_version: u32,
}

/// The index in memory; [`Index::save`] writes it when a file backs it.
#[derive(Debug, Default)]
pub struct Index {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CatalogEntry>,
}

impl Index {
    /// An index kept in memory only.
    pub fn in_memory() -> Index {
        Index::default()
    }

    /// Reads the index at `path`; a missing file is an empty index.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let unreadable = |why: String| IndexError::Unreadable {
            path: path.to_path_buf(),
            why,
        };
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Index {
                    path: Some(path.to_path_buf()),
                    entries: BTreeMap::new(),
                });
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let version: VersionOnly =
            serde_json::from_slice(&text).map_err(|e| unreadable(format!("no valid `schemaVersion`: {e}")))?;
        if version.schema_version > SCHEMA_VERSION {
            return Err(IndexError::Newer {
                path: path.to_path_buf(),
                found: version.schema_version,
            });
        }
        let file: IndexFile = serde_json::from_slice(&text).map_err(|e| unreadable(e.to_string()))?;
        Ok(Index {
            path: Some(path.to_path_buf()),
            entries: file.entries.into_iter().map(|e| (e.digest.clone(), e)).collect(),
        })
    }

    /// Every entry, by digest.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.entries.values().cloned().collect()
    }

    /// The entry for `digest`.
    pub fn get(&self, digest: &str) -> Option<&CatalogEntry> {
        self.entries.get(digest)
    }

    /// The newest entry that was fetched or read from `reference`.
    pub fn by_ref(&self, reference: &str) -> Option<&CatalogEntry> {
        self.entries
            .values()
            .filter(|e| e.refs.iter().any(|r| r == reference))
            .max_by(|a, b| a.added_at.cmp(&b.added_at))
    }

    /// Records that `reference` gave the artifact `digest` of `size_bytes` at `path`; returns
    /// true when the index changed.
    pub fn record(&mut self, digest: &str, size_bytes: u64, path: &Path, reference: &str, now: &str) -> bool {
        let path = path.display().to_string();
        match self.entries.get_mut(digest) {
            Some(e) => {
                let mut changed = false;
                if !e.refs.iter().any(|r| r == reference) {
                    e.refs.push(reference.to_string());
                    changed = true;
                }
                if e.path != path || e.size_bytes != size_bytes {
                    e.path = path;
                    e.size_bytes = size_bytes;
                    changed = true;
                }
                changed
            }
            None => {
                self.entries.insert(
                    digest.to_string(),
                    CatalogEntry {
                        digest: digest.to_string(),
                        size_bytes,
                        path,
                        refs: vec![reference.to_string()],
                        models: Vec::new(),
                        lifecycle: Lifecycle::Retired,
                        added_at: now.to_string(),
                    },
                );
                true
            }
        }
    }

    /// Sets each entry's `models` from `declared` (digest → Model names) and its lifecycle:
    /// `Active` when a Model declares it, `Retired` otherwise (kept on disk). Returns true when
    /// anything changed.
    pub fn set_models(&mut self, declared: &BTreeMap<String, BTreeSet<String>>) -> bool {
        let mut changed = false;
        for (digest, e) in &mut self.entries {
            let models: Vec<String> = declared
                .get(digest)
                .map(|m| m.iter().cloned().collect())
                .unwrap_or_default();
            let lifecycle = if models.is_empty() {
                Lifecycle::Retired
            } else {
                Lifecycle::Active
            };
            if e.models != models || e.lifecycle != lifecycle {
                e.models = models;
                e.lifecycle = lifecycle;
                changed = true;
            }
        }
        changed
    }

    /// Writes the index atomically; nothing happens for an in-memory index.
    pub fn save(&self) -> Result<(), IndexError> {
        let Some(path) = &self.path else { return Ok(()) };
        let err = |source| IndexError::Write {
            path: path.clone(),
            source,
        };
        let file = IndexFile {
            schema_version: SCHEMA_VERSION,
            entries: self.entries(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| err(std::io::Error::other(e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        crate::atomic_file::write_atomic(path, &text).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn an_index_round_trips_through_its_file_with_a_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/catalog.json");
        let mut idx = Index::open(&path).unwrap();
        assert!(idx.entries().is_empty());
        assert!(idx.record(D, 3, Path::new("/c/blob"), "https://x/a.gguf", "t0"));
        assert!(!idx.record(D, 3, Path::new("/c/blob"), "https://x/a.gguf", "t1"));
        let declared = BTreeMap::from([(D.to_string(), BTreeSet::from(["tiny".to_string()]))]);
        assert!(idx.set_models(&declared));
        idx.save().unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["catalog.json"], "no temp file left");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"schemaVersion\": 1"), "{text}");
        let back = Index::open(&path).unwrap();
        let e = back.get(D).unwrap();
        assert_eq!(
            (e.lifecycle, e.models.clone()),
            (Lifecycle::Active, vec!["tiny".to_string()])
        );
        assert_eq!(back.by_ref("https://x/a.gguf").unwrap().digest, D);
    }

    #[test]
    fn an_artifact_no_model_declares_is_retired_and_kept() {
        let mut idx = Index::in_memory();
        idx.record(D, 3, Path::new("/c/blob"), "file:/m", "t0");
        idx.set_models(&BTreeMap::from([(D.to_string(), BTreeSet::from(["a".to_string()]))]));
        assert!(idx.set_models(&BTreeMap::new()));
        let e = idx.get(D).unwrap();
        assert_eq!(e.lifecycle, Lifecycle::Retired);
        assert!(e.models.is_empty());
    }

    #[test]
    fn a_newer_or_corrupt_index_is_refused_by_name_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.json");
        let newer = r#"{"schemaVersion": 7, "entries": [], "future": true}"#;
        std::fs::write(&path, newer).unwrap();
        let e = Index::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("schemaVersion 7") && e.contains("upgrade llama-orchd"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);

        std::fs::write(&path, "{not json").unwrap();
        let e = Index::open(&path).unwrap_err().to_string();
        assert!(e.contains("cannot be read") && e.contains("catalog.json"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
