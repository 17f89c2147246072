//! Drains kept across daemon restarts (`<state>/drains.json`): each drained Pool and the
//! deadline its running tasks were given, as wall-clock time. The data plane records a drain
//! when it is asked for and forgets it when it is lifted; a restarted daemon drains the same
//! Pools again, with what is left of their deadlines, before it admits a task.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use crate::state_map::SaveError;
use crate::state_map::StateMap;

/// One drain as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// When its running tasks are ended (RFC 3339).
    pub deadline: String,
}

/// The drains in force, by Pool.
#[derive(Debug, Default)]
pub struct DrainRecords(StateMap<DrainRecord>);

impl DrainRecords {
    /// Drains kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Drains persisted in `<state_dir>/drains.json`, read now.
    pub fn open(state_dir: &Path) -> Self {
        Self(StateMap::open(state_dir, "drains.json"))
    }

    /// Every drain with its deadline; one whose deadline cannot be read is treated as due.
    pub fn all(&self) -> Vec<(String, SystemTime)> {
        self.0
            .entries()
            .into_iter()
            .map(|(pool, r)| {
                let at = r
                    .deadline
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (pool, at)
            })
            .collect()
    }

    /// `pool` drains until `deadline`.
    pub fn record(&self, pool: &str, deadline: SystemTime) -> Result<(), SaveError> {
        let deadline = jiff::Timestamp::try_from(deadline)
            .map(|t| t.to_string())
            .unwrap_or_default();
        self.0.update(pool, |_| Some(DrainRecord { deadline })).map(drop)
    }

    /// `pool`'s drain was lifted.
    pub fn lift(&self, pool: &str) -> Result<(), SaveError> {
        self.0.update(pool, |_| None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_drain_is_read_back_after_a_restart_until_it_is_lifted() {
        let dir = tempfile::tempdir().unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_756_000_250);
        let d = DrainRecords::open(dir.path());
        d.record("chat", at).unwrap();
        d.record("coder", at).unwrap();
        d.lift("coder").unwrap();
        assert_eq!(DrainRecords::open(dir.path()).all(), vec![("chat".to_string(), at)]);
        DrainRecords::open(dir.path()).lift("chat").unwrap();
        assert!(DrainRecords::open(dir.path()).all().is_empty());
    }
}
