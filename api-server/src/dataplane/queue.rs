//! A pool's bounded wait queue (requirements §4, ORCH-3004/3005): two FIFOs, `interactive` and
//! `batch`, under one capacity from the pool's [`QueueSpec`], with the `reject` or `drop-lru`
//! full-queue policy and a guard that keeps `batch` from starving.
//!
//! It is a plain struct: no tokio, no locks, no clock. The caller passes `now` to every
//! operation that looks at waiting time, so tests are deterministic. It holds tasks only while
//! they wait; once [`PoolQueue::next`] hands one out, the queue forgets it (a running task's
//! cancellation is the slot holder's business, not the queue's).
//!
//! Order of dispatch ([`PoolQueue::next`]):
//! 1. a `batch` task that has waited at least [`Fairness::batch_max_wait`] goes first (the
//!    oldest one: FIFO holds within `batch` either way);
//! 2. otherwise `interactive` before `batch`, except that after
//!    [`Fairness::interactive_streak`] consecutive `interactive` picks made while `batch` waited,
//!    the next pick is `batch`;
//! 3. FIFO within a priority, always.
//!
//! `drop-lru` on a full queue evicts the task that has waited longest among the *lowest*
//! priority present, counting the newcomer: the oldest `batch` task if any waits; else, for an
//! `interactive` newcomer, the oldest `interactive` task. A `batch` newcomer never evicts an
//! `interactive` task: it is refused instead, as it would be under `reject`. Least recently
//! *enqueued* is what LRU means here; a queued task is never "used" before it leaves.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use llorch_manifests::pool::{FullQueuePolicy, QueueSpec};
use llorch_manifests::task::Priority;

/// The anti-starvation guard for `batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fairness {
    /// After this many consecutive `interactive` picks while `batch` waits, one `batch` task
    /// is picked. Values below 1 act as 1.
    pub interactive_streak: u32,
    /// A `batch` task that has waited this long is picked before any `interactive` task.
    pub batch_max_wait: Duration,
}

impl Default for Fairness {
    fn default() -> Self {
        Self {
            interactive_streak: 4,
            batch_max_wait: Duration::from_secs(30),
        }
    }
}

/// What [`PoolQueue::enqueue`] did with a task.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<K, T> {
    /// Queued; `position` is its 0-based dispatch-order estimate.
    Enqueued {
        /// See [`PoolQueue::position`].
        position: u32,
    },
    /// Queued after evicting another task under `drop-lru`; the caller owes `dropped` a
    /// `QUEUE_FULL_DROP_LRU` error.
    EnqueuedDroppingOldest {
        /// See [`PoolQueue::position`].
        position: u32,
        /// The evicted task.
        dropped: (K, T),
    },
    /// The queue is full and the policy (or the priority rule of `drop-lru`) refuses the task.
    /// The item comes back; the `Retry-After` hint comes from the pool's service-time
    /// estimator, which knows what the queue does not.
    Rejected {
        /// The refused task.
        item: T,
    },
    /// A task with this id already waits here; nothing changed.
    AlreadyQueued {
        /// The refused task.
        item: T,
    },
}

/// A waiting task.
#[derive(Debug)]
struct Waiting<K, T> {
    id: K,
    item: T,
    enqueued_at: Instant,
}

/// One pool's wait queue. `K` is the task id, `T` whatever the caller needs to start the task.
#[derive(Debug)]
pub struct PoolQueue<K, T> {
    capacity: u32,
    policy: FullQueuePolicy,
    fairness: Fairness,
    interactive: VecDeque<Waiting<K, T>>,
    batch: VecDeque<Waiting<K, T>>,
    /// Which lane each waiting id is in: O(1) duplicate checks and cancel lookups.
    lanes: HashMap<K, Priority>,
    /// Consecutive `interactive` picks made while `batch` waited.
    streak: u32,
}

impl<K: Clone + Eq + Hash, T> PoolQueue<K, T> {
    /// An empty queue with `spec`'s capacity and policy and the default [`Fairness`].
    pub fn new(spec: &QueueSpec) -> Self {
        Self::with_fairness(spec, Fairness::default())
    }

    /// An empty queue with an explicit anti-starvation guard.
    pub fn with_fairness(spec: &QueueSpec, fairness: Fairness) -> Self {
        Self {
            capacity: spec.capacity,
            policy: spec.full_policy,
            fairness,
            interactive: VecDeque::new(),
            batch: VecDeque::new(),
            lanes: HashMap::new(),
            streak: 0,
        }
    }

    /// How many tasks may wait.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The full-queue policy.
    pub fn policy(&self) -> FullQueuePolicy {
        self.policy
    }

    /// Tasks waiting now.
    pub fn depth(&self) -> u32 {
        count(self.interactive.len() + self.batch.len())
    }

    /// Tasks waiting now, as `(interactive, batch)`.
    pub fn depth_by_priority(&self) -> (u32, u32) {
        (count(self.interactive.len()), count(self.batch.len()))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.interactive.is_empty() && self.batch.is_empty()
    }

    /// Whether [`enqueue`](Self::enqueue) would take a task of `priority` now (a full queue
    /// refuses it unless `drop-lru` can evict one), so a caller can refuse before it builds
    /// the task.
    pub fn has_room_for(&self, priority: Priority) -> bool {
        self.depth() < self.capacity
            || (self.policy == FullQueuePolicy::DropLru
                && (!self.batch.is_empty() || (priority == Priority::Interactive && !self.interactive.is_empty())))
    }

    /// Queues a task, or says why not. O(1), except that `drop-lru` also pops one task.
    pub fn enqueue(&mut self, id: K, priority: Priority, item: T, now: Instant) -> Admission<K, T> {
        if self.lanes.contains_key(&id) {
            return Admission::AlreadyQueued { item };
        }
        let dropped = if self.depth() < self.capacity {
            None
        } else {
            match self.evict_for(priority) {
                Some(dropped) => Some(dropped),
                None => return Admission::Rejected { item },
            }
        };
        self.lanes.insert(id.clone(), priority);
        let waiting = Waiting {
            id,
            item,
            enqueued_at: now,
        };
        let position = match priority {
            Priority::Interactive => {
                self.interactive.push_back(waiting);
                self.interactive_position(self.interactive.len() - 1)
            }
            Priority::Batch => {
                self.batch.push_back(waiting);
                self.batch_position(self.batch.len() - 1)
            }
        };
        match dropped {
            None => Admission::Enqueued { position },
            Some(dropped) => Admission::EnqueuedDroppingOldest { position, dropped },
        }
    }

    /// Removes a waiting task and returns it; `None` if it does not wait here (never queued,
    /// already dispatched, dropped or cancelled). O(depth of its lane).
    pub fn cancel<Q>(&mut self, id: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let lane = match self.lanes.remove(id)? {
            Priority::Interactive => &mut self.interactive,
            Priority::Batch => &mut self.batch,
        };
        let index = lane.iter().position(|w| w.id.borrow() == id)?;
        lane.remove(index).map(|w| w.item)
    }

    /// The task [`next`](Self::next) would hand out at `now`, without removing it.
    pub fn peek(&self, now: Instant) -> Option<(&K, &T)> {
        let waiting = match self.choose(now)? {
            Priority::Interactive => self.interactive.front(),
            Priority::Batch => self.batch.front(),
        }?;
        Some((&waiting.id, &waiting.item))
    }

    /// Removes and returns the task to dispatch at `now`, by the order in the module docs.
    /// Call it only when a replica slot is free: the queue cannot take a task back.
    pub fn next(&mut self, now: Instant) -> Option<(K, T)> {
        let lane = self.choose(now)?;
        let batch_waits = !self.batch.is_empty();
        let waiting = match lane {
            Priority::Interactive => {
                self.streak = if batch_waits { self.streak.saturating_add(1) } else { 0 };
                self.interactive.pop_front()
            }
            Priority::Batch => {
                self.streak = 0;
                self.batch.pop_front()
            }
        }?;
        self.lanes.remove(&waiting.id);
        Some((waiting.id, waiting.item))
    }

    /// The task's 0-based place in dispatch order, as [`next`](Self::next) would go if nothing
    /// else arrived and no `batch` task crossed `batch_max_wait` meanwhile (either can move a
    /// `batch` task's real turn earlier or later). `None` if it does not wait here.
    pub fn position<Q>(&self, id: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self.lanes.get(id)? {
            Priority::Interactive => {
                let index = self.interactive.iter().position(|w| w.id.borrow() == id)?;
                Some(self.interactive_position(index))
            }
            Priority::Batch => {
                let index = self.batch.iter().position(|w| w.id.borrow() == id)?;
                Some(self.batch_position(index))
            }
        }
    }

    /// Empties the queue in dispatch order, for a pool that goes away; the caller owes each
    /// task an error.
    pub fn drain(&mut self, now: Instant) -> Vec<(K, T)> {
        std::iter::from_fn(|| self.next(now)).collect()
    }

    /// Which lane the next pick comes from.
    fn choose(&self, now: Instant) -> Option<Priority> {
        let batch_overdue = self
            .batch
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.enqueued_at) >= self.fairness.batch_max_wait);
        if batch_overdue || (!self.batch.is_empty() && self.streak >= self.streak_limit()) {
            return Some(Priority::Batch);
        }
        if !self.interactive.is_empty() {
            return Some(Priority::Interactive);
        }
        (!self.batch.is_empty()).then_some(Priority::Batch)
    }

    /// Under `drop-lru`, takes out the task a full queue gives up for a newcomer of
    /// `priority`; `None` means the newcomer is refused.
    fn evict_for(&mut self, priority: Priority) -> Option<(K, T)> {
        if self.policy != FullQueuePolicy::DropLru {
            return None;
        }
        let waiting = match self.batch.pop_front() {
            Some(w) => w,
            None if priority == Priority::Interactive => self.interactive.pop_front()?,
            None => return None,
        };
        self.lanes.remove(&waiting.id);
        Some((waiting.id, waiting.item))
    }

    fn streak_limit(&self) -> u32 {
        self.fairness.interactive_streak.max(1)
    }

    /// `interactive` picks left before the guard forces a `batch` pick.
    fn first_run(&self) -> u32 {
        self.streak_limit().saturating_sub(self.streak)
    }

    /// Place of the `interactive` task at `index` of its lane: the tasks ahead of it in its
    /// lane plus the `batch` picks the guard interleaves before it.
    fn interactive_position(&self, index: usize) -> u32 {
        let index = count(index);
        let batch = count(self.batch.len());
        let first_run = self.first_run();
        let batch_ahead = if batch == 0 || index < first_run {
            0
        } else {
            (1 + (index - first_run) / self.streak_limit()).min(batch)
        };
        index.saturating_add(batch_ahead)
    }

    /// Place of the `batch` task at `index` of its lane: the tasks ahead of it in its lane
    /// plus the `interactive` picks the guard lets through before it.
    fn batch_position(&self, index: usize) -> u32 {
        let index = count(index);
        let interactive = count(self.interactive.len());
        let allowed = self
            .first_run()
            .saturating_add(index.saturating_mul(self.streak_limit()));
        index.saturating_add(allowed.min(interactive))
    }
}

/// A length as the `u32` the wire uses; a queue never holds 4 billion tasks.
fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
