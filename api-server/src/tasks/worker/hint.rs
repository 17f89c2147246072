//! What a request handler may know about a Pool's queue without asking its worker: whether
//! the queue is full under the `reject` policy, and the retry advice the worker would give.
//! The worker publishes it after every event it handles; a handler that finds the queue full
//! answers 429 at once instead of a round trip through the worker's channel (at overload that
//! round trip was most of a refusal's cost). The hint may be a moment old: a refusal based on
//! it is the answer the request would have had a moment earlier. Everything else — a queue
//! with room, `drop-lru`, drains, session budgets — is still the worker's decision.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Published by one Pool's worker, read by request handlers.
#[derive(Debug, Default)]
pub struct QueueHint {
    full: AtomicBool,
    depth: AtomicU32,
    capacity: AtomicU32,
    retry_after_ms: AtomicU64,
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
}
