//! The artifact index in memory: one [`IndexEntry`] per stored object, ordered by creation
//! time, with the job → artifact map, the byte total, how many artifacts each segment still
//! holds, paging and the retention choice (which entries go, oldest first). Pure: no file is
//! read here; [`store`](super::store) persists it.

use std::collections::{BTreeMap, HashMap};

use llorch_manifests::records::{ArtifactEntry, ArtifactKind, ArtifactList, ArtifactSummary};
use serde::{Deserialize, Serialize};

use super::segments::Location;

/// What the index knows of one artifact (and what `index.jsonl` holds per line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// `sha256:<hex>`.
    pub id: String,
    /// Where its bytes are (`size` of them).
    pub at: Location,
    /// Its kind.
    pub kind: ArtifactKind,
    /// The task, for a job record.
    pub job: Option<String>,
    /// The Pool, for a job record.
    pub pool: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Bytes stored.
    pub size: u64,
    /// The list's summary.
    #[serde(default)]
    pub summary: ArtifactSummary,
    /// Who submitted the job (only they see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl IndexEntry {
    fn key(&self) -> (i64, String) {
        (self.created_ms, self.id.clone())
    }

    /// The list entry.
    pub fn to_wire(&self) -> ArtifactEntry {
        ArtifactEntry {
            id: self.id.clone(),
            kind: self.kind,
            job: self.job.clone(),
            pool: self.pool.clone(),
            created_at: rfc3339(self.created_ms),
            size_bytes: self.size,
            summary: self.summary.clone(),
        }
    }
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// A list query, already checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this kind.
    pub kind: Option<ArtifactKind>,
    /// Only this Pool's.
    pub pool: Option<String>,
    /// At most this many (1..=500).
    pub limit: usize,
    /// Only entries older than this cursor (a previous page's `next`).
    pub before: Option<Cursor>,
    /// Job records of other identities are left out.
    pub viewer: Option<String>,
}

/// A position in the newest-first order: `<created ms>_<hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    created_ms: i64,
    id: String,
}

impl Cursor {
    /// Reads a cursor a list answered; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ms, hex) = text.split_once('_')?;
        let id = format!("{}{hex}", llorch_manifests::records::ID_PREFIX);
        llorch_manifests::records::is_artifact_id(&id).then_some(())?;
        Some(Cursor {
            created_ms: ms.parse().ok()?,
            id,
        })
    }

    fn of(e: &IndexEntry) -> String {
        let hex = e.id.trim_start_matches(llorch_manifests::records::ID_PREFIX);
        format!("{}_{hex}", e.created_ms)
    }
}

/// Every stored artifact.
#[derive(Debug, Default)]
pub struct Index {
    by_time: BTreeMap<(i64, String), IndexEntry>,
    by_id: HashMap<String, i64>,
    by_job: HashMap<String, String>,
    by_segment: HashMap<u32, usize>,
    bytes: u64,
}

impl Index {
    /// Adds `entry`; false (and nothing changes) when its id is already indexed.
    pub fn insert(&mut self, entry: IndexEntry) -> bool {
        if self.by_id.contains_key(&entry.id) {
            return false;
        }
        self.bytes += entry.size;
        *self.by_segment.entry(entry.at.seg).or_default() += 1;
        self.by_id.insert(entry.id.clone(), entry.created_ms);
        if let Some(job) = &entry.job {
            self.by_job.insert(job.clone(), entry.id.clone());
        }
        self.by_time.insert(entry.key(), entry);
        true
    }

    /// Removes `id`; its entry when it was indexed.
    pub fn remove(&mut self, id: &str) -> Option<IndexEntry> {
        let created = self.by_id.remove(id)?;
        let entry = self.by_time.remove(&(created, id.to_string()))?;
        self.bytes -= entry.size;
        if let Some(n) = self.by_segment.get_mut(&entry.at.seg) {
            *n -= 1;
            if *n == 0 {
                self.by_segment.remove(&entry.at.seg);
            }
        }
        if let Some(job) = &entry.job
            && self.by_job.get(job).is_some_and(|j| j == id)
        {
            self.by_job.remove(job);
        }
        Some(entry)
    }

    /// True when `id` is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Option<&IndexEntry> {
        let created = *self.by_id.get(id)?;
        self.by_time.get(&(created, id.to_string()))
    }

    /// The artifact of task `job`.
    pub fn job(&self, job: &str) -> Option<&str> {
        self.by_job.get(job).map(String::as_str)
    }

    /// True when an artifact kept is in segment `seg`.
    pub fn holds(&self, seg: u32) -> bool {
        self.by_segment.contains_key(&seg)
    }

    /// Bytes of every artifact.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many artifacts.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.by_time.values()
    }

    /// What retention removes, oldest first: while the total exceeds `max_bytes`, and every
    /// entry created before `oldest_ms`.
    pub fn expired(&self, max_bytes: u64, oldest_ms: i64) -> Vec<String> {
        let mut left = self.bytes;
        let mut gone = Vec::new();
        for e in self.by_time.values() {
            if left <= max_bytes && e.created_ms >= oldest_ms {
                break;
            }
            left -= e.size;
            gone.push(e.id.clone());
        }
        gone
    }

    /// One page, newest first.
    pub fn list(&self, q: &ListQuery) -> ArtifactList {
        let upper = q.before.as_ref().map(|c| (c.created_ms, c.id.clone()));
        let range = match upper {
            Some(u) => self.by_time.range(..u),
            None => self.by_time.range(..),
        };
        let mut items = Vec::new();
        let mut next = None;
        let mut last: Option<&IndexEntry> = None;
        for (_, e) in range.rev() {
            let foreign = e.identity.is_some() && q.viewer.is_some() && e.identity != q.viewer;
            if foreign
                || q.kind.is_some_and(|k| k != e.kind)
                || q.pool.as_ref().is_some_and(|p| e.pool.as_ref() != Some(p))
            {
                continue;
            }
            if items.len() == q.limit {
                next = last.map(Cursor::of);
                break;
            }
            items.push(e.to_wire());
            last = Some(e);
        }
        ArtifactList { items, next }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(n: u8, created_ms: i64, size: u64, kind: ArtifactKind) -> IndexEntry {
        IndexEntry {
            id: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            at: Location {
                seg: u32::from(n % 2),
                off: 0,
            },
            kind,
            job: (kind == ArtifactKind::Job).then(|| format!("task-{n}")),
            pool: Some("p".into()),
            created_ms,
            size,
            summary: ArtifactSummary::default(),
            identity: None,
        }
    }

    #[test]
    fn retention_removes_the_oldest_first_by_size_and_by_age() {
        let mut index = Index::default();
        for n in 0..5u8 {
            assert!(index.insert(entry(n, 1_000 + i64::from(n), 100, ArtifactKind::Job)));
        }
        assert!(
            !index.insert(entry(0, 9, 100, ArtifactKind::Job)),
            "an id is indexed once"
        );
        assert_eq!(index.bytes(), 500);
        let by_size = index.expired(250, 0);
        assert_eq!(
            by_size,
            vec![
                entry(0, 0, 0, ArtifactKind::Job).id,
                entry(1, 0, 0, ArtifactKind::Job).id,
                entry(2, 0, 0, ArtifactKind::Job).id
            ]
        );
        let by_age = index.expired(10_000, 1_002);
        assert_eq!(by_age.len(), 2, "created at 1000 and 1001 are older than 1002");
        assert!(index.expired(10_000, 0).is_empty());
        assert!(index.holds(0) && index.holds(1));
        let gone = index.remove(&by_size[0]).unwrap();
        assert_eq!(gone.job.as_deref(), Some("task-0"));
        index.remove(&entry(2, 0, 0, ArtifactKind::Job).id);
        assert!(index.holds(0), "task-4 is still in segment 0");
        index.remove(&entry(4, 0, 0, ArtifactKind::Job).id);
        assert!(!index.holds(0) && index.holds(1), "segment 0 holds nothing kept");
        assert_eq!(index.job("task-0"), None);
        assert_eq!(index.bytes(), 200);
    }

    #[test]
    fn pages_go_newest_first_and_filters_apply() {
        let mut index = Index::default();
        for n in 0..7u8 {
            let kind = if n % 2 == 0 {
                ArtifactKind::Job
            } else {
                ArtifactKind::Plan
            };
            index.insert(entry(n, i64::from(n), 1, kind));
        }
        let first = index.list(&ListQuery {
            limit: 3,
            ..Default::default()
        });
        let ids: Vec<_> = first.items.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            ids,
            vec![
                entry(6, 0, 0, ArtifactKind::Job).id,
                entry(5, 0, 0, ArtifactKind::Job).id,
                entry(4, 0, 0, ArtifactKind::Job).id
            ]
        );
        let cursor = Cursor::parse(first.next.as_deref().unwrap()).unwrap();
        let second = index.list(&ListQuery {
            limit: 10,
            before: Some(cursor),
            ..Default::default()
        });
        assert_eq!(second.items.len(), 4);
        assert_eq!(second.next, None);
        let jobs = index.list(&ListQuery {
            limit: 10,
            kind: Some(ArtifactKind::Job),
            ..Default::default()
        });
        assert_eq!(jobs.items.len(), 4);
        assert!(Cursor::parse("12_../x").is_none());
    }
}
