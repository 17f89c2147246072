//! A small map kept in one JSON file of the state directory, written atomically on every
//! change: what the daemon must remember across a restart that no container label carries
//! (reload counters, drains). A missing file is an empty map; an unreadable one is logged and
//! read as empty, so a damaged file never stops the daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a change could not be saved (it holds in memory until the daemon stops).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct SaveError {
    /// The file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// A map of names to `V`, persisted in one file (or held in memory only).
#[derive(Debug)]
pub struct StateMap<V> {
    path: Option<PathBuf>,
    map: Mutex<BTreeMap<String, V>>,
}

impl<V> Default for StateMap<V> {
    fn default() -> Self {
        Self {
            path: None,
            map: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<V: Serialize + DeserializeOwned + Clone> StateMap<V> {
    /// A map kept in memory only (tests, a controller without a state directory).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The map in `<state_dir>/<file>`, read now (at start-up, before any async work).
    pub fn open(state_dir: &Path, file: &str) -> Self {
        let path = state_dir.join(file);
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %path.display(), error = %e, "state file unreadable; starting empty");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self {
            path: Some(path),
            map: Mutex::new(map),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Every entry, by key.
    pub fn entries(&self) -> Vec<(String, V)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Sets `key` to what `change` makes of its value (`None` removes it) and saves the file;
    /// returns the new value. The change holds in memory even when the save fails.
    pub fn update(&self, key: &str, change: impl FnOnce(Option<&V>) -> Option<V>) -> Result<Option<V>, SaveError> {
        let mut map = self.lock();
        let next = change(map.get(key));
        match &next {
            Some(v) => map.insert(key.to_string(), v.clone()),
            None => map.remove(key),
        };
        if let Some(path) = &self.path {
            let text = serde_json::to_vec_pretty(&*map).unwrap_or_default();
            crate::atomic_file::write_atomic(path, &text).map_err(|source| SaveError {
                path: path.clone(),
                source,
            })?;
        }
        Ok(next)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, V>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn changes_are_read_back_and_a_damaged_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let m: StateMap<u32> = StateMap::open(dir.path(), "m.json");
        assert_eq!(m.update("a", |_| Some(1)).unwrap(), Some(1));
        assert_eq!(m.update("b", |_| Some(2)).unwrap(), Some(2));
        assert_eq!(m.update("a", |_| None).unwrap(), None);
        let again: StateMap<u32> = StateMap::open(dir.path(), "m.json");
        assert_eq!(again.entries(), vec![("b".to_string(), 2)]);
        std::fs::write(dir.path().join("m.json"), b"{not json").unwrap();
        let damaged: StateMap<u32> = StateMap::open(dir.path(), "m.json");
        assert!(damaged.entries().is_empty());
    }
}
