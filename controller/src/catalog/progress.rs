//! Bytes done and total of one running fetch or verification, shared between the task doing
//! the work and the controller reading it. Moving bytes wakes the controller through its
//! `Notify`, at most a few times per second, so a status with live progress costs a handful of
//! passes per second, not one per chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// At most this many progress wake-ups per second.
pub const WAKES_PER_SECOND: u32 = 4;

const UNKNOWN: u64 = u64::MAX;

/// A fetch's progress.
#[derive(Debug)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    wake: Arc<Notify>,
    last_wake: Mutex<Option<Instant>>,
}

impl Progress {
    /// Progress that wakes `wake` when it moves.
    pub fn new(wake: Arc<Notify>) -> Progress {
        Progress {
            done: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            wake,
            last_wake: Mutex::new(None),
        }
    }

    /// `(done, total)`.
    pub fn get(&self) -> (u64, Option<u64>) {
        let total = self.total.load(Ordering::Relaxed);
        (self.done.load(Ordering::Relaxed), (total != UNKNOWN).then_some(total))
    }

    /// Starts over at `done` of `total`.
    pub fn reset(&self, done: u64, total: Option<u64>) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
        self.wake_now();
    }

    /// `n` more bytes.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.wake_throttled();
    }

    /// Wakes the controller now (a phase changed).
    pub fn wake_now(&self) {
        *self.last_wake.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.wake.notify_one();
    }

    fn wake_throttled(&self) {
        let every = Duration::from_secs(1) / WAKES_PER_SECOND;
        let mut last = self.last_wake.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= every) {
            *last = Some(Instant::now());
            drop(last);
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn many_small_advances_wake_the_controller_only_a_few_times() {
        let wake = Arc::new(Notify::new());
        let p = Progress::new(wake.clone());
        p.reset(10, Some(1000));
        assert_eq!(p.get(), (10, Some(1000)));
        // Consume the reset's permit, then 1000 advances within the throttle window.
        wake.notified().await;
        let mut woken = 0;
        for _ in 0..1000 {
            p.advance(1);
            if futures_util::FutureExt::now_or_never(wake.notified()).is_some() {
                woken += 1;
            }
        }
        assert_eq!(p.get().0, 1010);
        assert!(woken <= 2, "woken {woken} times for 1000 chunks");
    }
}
