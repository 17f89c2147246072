//! The daemon's own files under the state directory: one status JSON per object
//! (`status/<kind>-<name>.json`, written atomically) and the event log (`events.jsonl`,
//! append-only, with the most recent events also kept in memory for the API, and sent to live
//! subscribers such as the status page's stream).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use llorch_manifests::status::{Event, EventType, ObjectStatus};
use llorch_manifests::{ObjectRef, Reason, ReplicaId};

/// Events kept in memory for `GET /v2/events`.
pub const EVENTS_IN_MEMORY: usize = 2_000;

/// Longest event message kept; longer ones are cut (a manifest error can quote its input).
pub const MAX_EVENT_MESSAGE_BYTES: usize = 2048;

/// Events a live subscriber may fall behind by before it is told it lagged (the channel is
/// shared: this is the whole memory live streams cost, whatever the number of subscribers).
pub const EVENTS_LIVE_BUFFER: usize = 256;

/// `events.jsonl` is rotated to `events.jsonl.1` (replacing the one before) past this size.
pub const MAX_EVENTS_FILE_BYTES: u64 = 8 << 20;

/// Errors touching the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A status file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Status files.
#[derive(Debug, Clone)]
pub struct StatusFiles {
    dir: PathBuf,
}

impl StatusFiles {
    /// Opens (creating) `<state>/status`.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        let dir = state_dir.join("status");
        std::fs::create_dir_all(&dir).map_err(|source| StateError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, object: &ObjectRef) -> PathBuf {
        self.dir.join(format!("{}-{}.json", object.kind.lower(), object.name))
    }

    /// The stored status of `object`, if any and readable.
    pub fn load(&self, object: &ObjectRef) -> Option<ObjectStatus> {
        let text = std::fs::read(self.path(object)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes `status` atomically (temp file + rename).
    pub fn store(&self, status: &ObjectStatus) -> Result<(), StateError> {
        let path = self.path(&status.object);
        let text = serde_json::to_vec_pretty(status).unwrap_or_default();
        crate::atomic_file::write_atomic(&path, &text).map_err(|source| StateError::Write { path, source })
    }

    /// Removes the status of a deleted object.
    pub fn remove(&self, object: &ObjectRef) {
        let _ = std::fs::remove_file(self.path(object));
    }
}

/// The event log.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    recent: Mutex<VecDeque<Event>>,
    live: tokio::sync::broadcast::Sender<Event>,
}

impl EventLog {
    /// Opens `<state>/events.jsonl` for appending and loads its tail.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StateError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("events.jsonl");
        let mut recent = VecDeque::with_capacity(EVENTS_IN_MEMORY);
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Ok(ev) = serde_json::from_str::<Event>(line) {
                    if recent.len() == EVENTS_IN_MEMORY {
                        recent.pop_front();
                    }
                    recent.push_back(ev);
                }
            }
        }
        Ok(Self {
            path,
            recent: Mutex::new(recent),
            live: tokio::sync::broadcast::Sender::new(EVENTS_LIVE_BUFFER),
        })
    }

    /// Records an event: appended to the file, kept in memory, logged.
    pub fn emit(
        &self,
        object: Option<&ObjectRef>,
        replica: Option<&ReplicaId>,
        type_: EventType,
        reason: Reason,
        message: String,
    ) {
        let event = Event {
            ts: now_rfc3339(),
            object: object.cloned(),
            replica: replica.cloned(),
            type_,
            reason,
            message: llorch_manifests::text::cut(message, MAX_EVENT_MESSAGE_BYTES),
        };
        let obj = object.map(ToString::to_string).unwrap_or_default();
        let (replica, reason) = (replica.map(ReplicaId::as_str), reason.as_str());
        match type_ {
            EventType::Normal => tracing::info!(object = %obj, replica, reason, human = %event.message, "event"),
            EventType::Warning => tracing::warn!(object = %obj, replica, reason, human = %event.message, "event"),
        }
        if let Ok(line) = serde_json::to_string(&event)
            && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)
        {
            let _ = writeln!(f, "{line}");
            if f.metadata().is_ok_and(|m| m.len() > MAX_EVENTS_FILE_BYTES) {
                let _ = std::fs::rename(&self.path, self.path.with_extension("jsonl.1"));
            }
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == EVENTS_IN_MEMORY {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        drop(recent);
        // No subscriber is not an error.
        let _ = self.live.send(event);
    }

    /// Every event emitted from now on. A subscriber more than [`EVENTS_LIVE_BUFFER`] events
    /// behind loses the oldest and is told how many (`RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// The most recent events (oldest first), optionally for one object.
    pub fn recent(&self, object: Option<&ObjectRef>, limit: usize) -> Vec<Event> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Event> = recent
            .iter()
            .rev()
            .filter(|e| object.is_none_or(|o| e.object.as_ref() == Some(o)))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// Now, as RFC 3339 with millisecond precision.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::Kind;

    #[test]
    fn long_messages_are_cut_and_a_full_file_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let long = "é".repeat(MAX_EVENT_MESSAGE_BYTES);
        for _ in 0..(MAX_EVENTS_FILE_BYTES as usize / MAX_EVENT_MESSAGE_BYTES + 2) {
            log.emit(None, None, EventType::Normal, Reason::ControllerStarted, long.clone());
        }
        let kept = &log.recent(None, 1)[0].message;
        assert!(
            kept.len() < MAX_EVENT_MESSAGE_BYTES + 40 && kept.ends_with("more bytes cut)"),
            "{}",
            kept.len()
        );
        let current = std::fs::metadata(dir.path().join("events.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        let rotated = std::fs::metadata(dir.path().join("events.jsonl.1")).unwrap().len();
        assert!(
            current <= MAX_EVENTS_FILE_BYTES && rotated > MAX_EVENTS_FILE_BYTES / 2,
            "{current} / {rotated}"
        );
    }

    #[test]
    fn events_survive_a_reopen_and_filter_by_object() {
        let dir = tempfile::tempdir().unwrap();
        let chat = ObjectRef::new(Kind::Pool, "chat");
        {
            let log = EventLog::open(dir.path()).unwrap();
            log.emit(
                Some(&chat),
                Some(&ReplicaId::new("chat", 0)),
                EventType::Normal,
                Reason::ReplicaCreated,
                "made".into(),
            );
            log.emit(None, None, EventType::Warning, Reason::ManifestInvalid, "bad".into());
        }
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.recent(None, 10).len(), 2);
        let only = log.recent(Some(&chat), 10);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].reason, Reason::ReplicaCreated);
        assert_eq!(only[0].replica, Some(ReplicaId::new("chat", 0)));
    }

    #[test]
    fn subscribers_get_new_events_and_a_slow_one_is_told_it_lagged() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        log.emit(
            None,
            None,
            EventType::Normal,
            Reason::ControllerStarted,
            "before".into(),
        );
        let mut live = log.subscribe();
        log.emit(None, None, EventType::Normal, Reason::ControllerStarted, "after".into());
        assert_eq!(
            live.try_recv().unwrap().message,
            "after",
            "only events after subscribing"
        );
        for i in 0..EVENTS_LIVE_BUFFER + 3 {
            log.emit(None, None, EventType::Normal, Reason::ControllerStarted, format!("{i}"));
        }
        assert_eq!(
            live.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(3)),
            "the oldest are dropped, not buffered without bound"
        );
        assert_eq!(live.try_recv().unwrap().message, "3");
    }

    #[test]
    fn status_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = StatusFiles::open(dir.path()).unwrap();
        let mut s = ObjectStatus::new(ObjectRef::new(Kind::Pool, "chat"));
        s.restarts = 3;
        files.store(&s).unwrap();
        assert_eq!(files.load(&s.object).unwrap().restarts, 3);
    }
}
