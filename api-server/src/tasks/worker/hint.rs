//! What a request handler may know about a Pool's queue without asking its worker: whether
//! the queue is full under the `reject` policy, and the retry advice the worker would give.
//! The worker publishes it after every event it handles; a handler that finds the queue full
//! answers 429 at once instead of a round trip through the worker's channel (at overload that
//! round trip was most of a refusal's cost). The hint may be a moment old: a refusal based on
//! it is the answer the request would have had a moment earlier. Everything else — a queue
//! with room, `drop-lru`, drains, session budgets — is still the worker's decision.
//!
//! It also carries the Pool's demand for the controller (tasks queued or running, and when it
//! last had any): what sizes a Pool with `spec.scaling`; and, while another Pool's activation
//! waits for VRAM this one holds, the controller's waker, poked when this one goes idle.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Published by one Pool's worker, read by request handlers.
#[derive(Debug, Default)]
pub struct QueueHint {
    full: AtomicBool,
    depth: AtomicU32,
    capacity: AtomicU32,
    retry_after_ms: AtomicU64,
    busy: AtomicU32,
    /// Unix milliseconds when the Pool last had a task queued or running; 0: never.
    last_busy_ms: AtomicU64,
    /// A wake was asked for (`POST /v2/pools/{name}/wake`) and no replica has come up since.
    woken: AtomicBool,
    /// Poked when the Pool next goes idle: another Pool's activation waits for its VRAM.
    idle_waker: std::sync::Mutex<Option<std::sync::Arc<tokio::sync::Notify>>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A full `reject` queue as the hint saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Tasks waiting.
    pub depth: u32,
    /// The queue's capacity.
    pub capacity: u32,
    /// When to retry.
    pub retry_after_ms: u64,
}

impl QueueHint {
    /// The worker's view after an event: `full` only when the queue refuses every newcomer
    /// (policy `reject`, no room) and nothing else (a drain) answers first.
    pub fn publish(&self, full: bool, depth: u32, capacity: u32, retry_after_ms: u64) {
        self.depth.store(depth, Ordering::Relaxed);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.retry_after_ms.store(retry_after_ms, Ordering::Relaxed);
        self.full.store(full, Ordering::Release);
    }

    /// Tasks queued or running now (the worker's count after its last event).
    pub fn publish_busy(&self, busy: u32) {
        let before = self.busy.swap(busy, Ordering::Relaxed);
        if busy > 0 {
            self.touch();
        } else if before > 0
            && let Some(wake) = self
                .idle_waker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        {
            wake.notify_one();
        }
    }

    /// Pokes `wake` (once) when the Pool next goes idle; `None` forgets an earlier one.
    pub fn wake_when_idle(&self, wake: Option<std::sync::Arc<tokio::sync::Notify>>) {
        *self
            .idle_waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = wake;
    }

    /// A task arrives: the Pool counts as busy now, with at least one task, before its worker
    /// has seen the task (the controller, woken at once, must not find it idle, nor without
    /// a task waiting); the worker's next count replaces it.
    pub fn touch(&self) {
        self.last_busy_ms.store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        self.busy.fetch_max(1, Ordering::Relaxed);
    }

    /// Tasks queued or running, when the Pool last had any, and whether a wake was asked for.
    pub fn demand(&self) -> (u32, Option<SystemTime>, bool) {
        let ms = self.last_busy_ms.load(Ordering::Relaxed);
        let last = (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms));
        (
            self.busy.load(Ordering::Relaxed),
            last,
            self.woken.load(Ordering::Relaxed),
        )
    }

    /// A wake is asked for: the Pool wants a replica now, without a task; it counts as active
    /// now, so it then stays up for its idle timeout.
    pub fn wake(&self) {
        self.last_busy_ms.store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        self.woken.store(true, Ordering::Relaxed);
    }

    /// The Pool has a replica: an asked-for wake is done.
    pub fn woke(&self) {
        self.woken.store(false, Ordering::Relaxed);
    }

    /// The full queue, when the worker last said it was full.
    pub fn full(&self) -> Option<Full> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        Some(Full {
            depth: self.depth.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
            retry_after_ms: self.retry_after_ms.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_says_full_only_after_the_worker_published_it() {
        let hint = QueueHint::default();
        assert_eq!(hint.full(), None);
        hint.publish(true, 16, 16, 2_000);
        assert_eq!(
            hint.full(),
            Some(Full {
                depth: 16,
                capacity: 16,
                retry_after_ms: 2_000
            })
        );
        hint.publish(false, 15, 16, 1_000);
        assert_eq!(hint.full(), None);
    }

    #[tokio::test]
    async fn the_idle_waker_is_poked_once_when_the_pool_goes_idle() {
        let hint = QueueHint::default();
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        hint.publish_busy(2);
        hint.wake_when_idle(Some(wake.clone()));
        hint.publish_busy(1);
        let pending = tokio::time::timeout(Duration::from_millis(20), wake.notified()).await;
        assert!(pending.is_err(), "still busy: no wake");
        hint.publish_busy(0);
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("idle: the controller is woken");
        hint.publish_busy(1);
        hint.publish_busy(0);
        let again = tokio::time::timeout(Duration::from_millis(20), wake.notified()).await;
        assert!(again.is_err(), "once per request");
    }
}
