//! Replica slot accounting for one pool (requirements §4, ORCH-3009..3012, OC-CORE-1017): which
//! replicas serve the pool, how many tasks each runs, where the next task goes, and which
//! replica each session last used.
//!
//! Placement picks, among replicas with a free slot, by (free VRAM desc, active slots asc,
//! replica id asc). A session sticks to its last replica while that replica has a free slot;
//! otherwise it fails over to the best other one and reports `kv_warmth = false`.
//!
//! A slot is held by a [`SlotGuard`], which gives it back in `Drop`, wherever it is dropped (a
//! finished stream, a cancelled future, a disconnected client), so no slot can leak. The guard
//! shares the table through an `Arc<Mutex<..>>`; the lock is held only for a few counter
//! updates and never across an await. The caller decides which replicas are eligible (Ready,
//! within the pool's device mask) and hands in the list; this module does no I/O.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One eligible replica as the controller reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Stable replica id; the same id in a later list is the same replica.
    pub id: String,
    /// Tasks it runs at once (the engine's parallel slots).
    pub slots: u32,
    /// Free VRAM on its GPUs, in bytes.
    pub free_vram_bytes: u64,
}

/// Where a session's task landed relative to its previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// The task has no session.
    NoSession,
    /// The session's first placement.
    FirstTurn,
    /// Same replica as last time: its KV cache is warm.
    Kept,
    /// Its replica was gone or full, so the session moved; the cache is cold.
    FailedOver {
        /// The replica the session used before.
        from: String,
    },
}

impl Affinity {
    /// The SSE `metrics.kv_warmth` flag: false only when a session moved.
    pub fn kv_warmth(&self) -> bool {
        !matches!(self, Affinity::FailedOver { .. })
    }
}

/// A slot taken by [`SlotTable::acquire`].
#[derive(Debug)]
pub struct Placement {
    /// Holds the slot until dropped.
    pub guard: SlotGuard,
    /// How the session fared.
    pub affinity: Affinity,
}

/// What [`SlotTable::acquire`] found.
#[derive(Debug)]
pub enum Acquire {
    /// A slot is held for the task.
    Placed(Placement),
    /// Every replica's slots are in use: the task waits.
    AllBusy,
    /// The pool has no eligible replica.
    NoReplicas,
}

/// The slot accounting of one pool. Cloning shares the same table.
#[derive(Clone, Debug, Default)]
pub struct SlotTable {
    inner: Arc<Mutex<Table>>,
}

/// Holds one slot on one replica; gives it back when dropped.
#[derive(Debug)]
pub struct SlotGuard {
    table: Arc<Mutex<Table>>,
    replica_id: String,
    /// Which incarnation of `replica_id` in the table this slot was taken on.
    generation: u64,
}

#[derive(Debug, Default)]
struct Table {
    replicas: BTreeMap<String, ReplicaState>,
    /// session id → the replica its last task ran on.
    sessions: HashMap<String, LastReplica>,
    next_generation: u64,
}

/// A session's last replica, down to its incarnation.
#[derive(Clone, Debug)]
struct LastReplica {
    replica_id: String,
    generation: u64,
}

#[derive(Debug)]
struct ReplicaState {
    slots: u32,
    free_vram_bytes: u64,
    active: u32,
    /// Set when the id (re)enters the table, so a guard from an earlier incarnation of the
    /// same id cannot release a slot it never took.
    generation: u64,
}

impl ReplicaState {
    fn has_free_slot(&self) -> bool {
        self.active < self.slots
    }
}

impl SlotTable {
    /// A table with no replicas.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the replica list wholesale. Replicas that remain (same id) keep their active
    /// count and take the new slot count and free VRAM; removed replicas are forgotten, their
    /// outstanding guards release nothing when dropped, and sessions that pointed at them
    /// fail over on their next placement (even to a new replica with the same id: its cache
    /// is cold). A slot count lowered below the active count blocks
    /// new placements there until enough guards drop.
    pub fn replace(&self, replicas: impl IntoIterator<Item = Replica>) {
        let mut table = lock(&self.inner);
        let mut old = std::mem::take(&mut table.replicas);
        for replica in replicas {
            let (active, generation) = match old.remove(&replica.id) {
                Some(kept) => (kept.active, kept.generation),
                None => match table.replicas.get(&replica.id) {
                    // The id appears twice in this list: the later entry updates the first.
                    Some(listed) => (listed.active, listed.generation),
                    None => (0, table.bump_generation()),
                },
            };
            let state = ReplicaState {
                slots: replica.slots,
                free_vram_bytes: replica.free_vram_bytes,
                active,
                generation,
            };
            table.replicas.insert(replica.id, state);
        }
    }

    /// Takes a slot for a task of `session_id` (if any), by the module's placement rules.
    pub fn acquire(&self, session_id: Option<&str>) -> Acquire {
        let mut table = lock(&self.inner);
        if table.replicas.is_empty() {
            return Acquire::NoReplicas;
        }
        let previous = session_id.and_then(|s| table.sessions.get(s)).cloned();
        let warm = previous.as_ref().filter(|last| table.can_continue(last));
        let Some(chosen) = warm
            .map(|last| last.replica_id.clone())
            .or_else(|| table.best_replica())
        else {
            return Acquire::AllBusy;
        };
        let Some(state) = table.replicas.get_mut(&chosen) else {
            return Acquire::AllBusy;
        };
        state.active = state.active.saturating_add(1);
        let generation = state.generation;
        let affinity = match (session_id, previous) {
            (None, _) => Affinity::NoSession,
            (Some(_), None) => Affinity::FirstTurn,
            (Some(_), Some(last)) if last.replica_id == chosen && last.generation == generation => Affinity::Kept,
            (Some(_), Some(last)) => Affinity::FailedOver { from: last.replica_id },
        };
        if let Some(session) = session_id {
            let last = LastReplica {
                replica_id: chosen.clone(),
                generation,
            };
            table.sessions.insert(session.to_owned(), last);
        }
        let guard = SlotGuard {
            table: Arc::clone(&self.inner),
            replica_id: chosen,
            generation,
        };
        Acquire::Placed(Placement { guard, affinity })
    }

    /// Whether some replica has a free slot, i.e. whether [`acquire`](Self::acquire) would
    /// place a task now (for any session: a full warm replica means failover, not waiting).
    pub fn has_free_slot(&self) -> bool {
        lock(&self.inner).replicas.values().any(ReplicaState::has_free_slot)
    }

    /// Slots across all current replicas.
    pub fn slots_total(&self) -> u32 {
        let table = lock(&self.inner);
        table.replicas.values().fold(0, |sum, r| sum.saturating_add(r.slots))
    }

    /// Slots in use on current replicas (guards of removed replicas do not count).
    pub fn busy_slots(&self) -> u32 {
        let table = lock(&self.inner);
        table.replicas.values().fold(0, |sum, r| sum.saturating_add(r.active))
    }

    /// Tasks running on `replica_id`; `None` if it is not in the table.
    pub fn active(&self, replica_id: &str) -> Option<u32> {
        lock(&self.inner).replicas.get(replica_id).map(|r| r.active)
    }

    /// The replica `session_id` last ran on (it may since have gone).
    pub fn session_replica(&self, session_id: &str) -> Option<String> {
        lock(&self.inner)
            .sessions
            .get(session_id)
            .map(|last| last.replica_id.clone())
    }

    /// Forgets a session (expired TTL or turn limit): its next task places as a first turn.
    pub fn forget_session(&self, session_id: &str) {
        lock(&self.inner).sessions.remove(session_id);
    }
}

impl Table {
    /// Whether a session can stay on `last`: the same incarnation is here with a free slot.
    fn can_continue(&self, last: &LastReplica) -> bool {
        self.replicas
            .get(&last.replica_id)
            .is_some_and(|r| r.generation == last.generation && r.has_free_slot())
    }

    /// The replica with a free slot that sorts first by (free VRAM desc, active asc, id asc).
    fn best_replica(&self) -> Option<String> {
        self.replicas
            .iter()
            .filter(|(_, r)| r.has_free_slot())
            .min_by_key(|(id, r)| (Reverse(r.free_vram_bytes), r.active, id.as_str()))
            .map(|(id, _)| id.clone())
    }

    fn bump_generation(&mut self) -> u64 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }
}

impl SlotGuard {
    /// The replica this slot is on.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        if let Some(replica) = table.replicas.get_mut(&self.replica_id)
            && replica.generation == self.generation
        {
            replica.active = replica.active.saturating_sub(1);
        }
    }
}

/// Locks the table, recovering from poison: every update is a single counter or map write,
/// so a panic elsewhere cannot leave it half-changed, and refusing all placements forever
/// would be worse than going on.
fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
