//! The waker a task polls what it drives itself with (an engine connection, and the body and
//! answer that connection fills): a wake that happens inside the task's own poll is absorbed
//! and the poll looks again, instead of reaching the scheduler.
//!
//! Why: hyper hands a decoded chunk to the body (and the answer's head to its future) through
//! a channel that wakes the reader, and the reader here is the very task that polls the
//! connection ([`transport`](super::transport)). tokio treats a task woken while it runs as
//! one that yielded: it queues it again behind the others and wakes another worker thread to
//! share the load, which finds nothing and parks again. At one token per read (a real
//! engine) that was a futex wake-up, a park and a spurious poll per token relayed.
//!
//! A wake from outside the poll (the socket became readable) goes to the task as before; one
//! that arrives from another thread while the poll runs is seen by the poll's last look.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Most looks per poll. A future that wakes itself and stays pending (a fairness yield) gets
/// its wake passed on to the task after this many.
const MAX_LOOKS: usize = 8;

/// See the module docs. One per thing driven; cheap to make.
pub struct OwnWaker {
    shared: Arc<Shared>,
    waker: Waker,
}

struct Shared {
    /// Inside [`OwnWaker::poll`].
    polling: AtomicBool,
    /// A wake arrived since the current look began.
    woken: AtomicBool,
    /// The task's own waker, as of the last poll.
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Paired with `poll`'s stores and loads (all SeqCst): either the poll sees `woken`
        // after it stopped polling, or this sees that it stopped and wakes the task.
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }
}

impl Default for OwnWaker {
    fn default() -> Self {
        let shared = Arc::new(Shared {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(shared.clone()),
            shared,
        }
    }
}

impl OwnWaker {
    /// Polls `f` under this waker for the task `cx` belongs to, looking again while `f` woke
    /// it during the look. Once `f` is ready, a wake it gave itself is dropped: the caller
    /// polls again for whatever comes next (a waker is owed only after `Pending`).
    pub fn poll<T>(&self, cx: &mut Context<'_>, mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        self.shared.task.register(cx.waker());
        let mut own = Context::from_waker(&self.waker);
        for _ in 0..MAX_LOOKS {
            self.shared.woken.store(false, SeqCst);
            self.shared.polling.store(true, SeqCst);
            let polled = f(&mut own);
            self.shared.polling.store(false, SeqCst);
            if polled.is_ready() || !self.shared.woken.load(SeqCst) {
                return polled;
            }
        }
        // Still waking itself: let the scheduler run others first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts the wakes the task gets.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Polls `f` once under a fresh [`OwnWaker`], for a task that counts its wakes.
    fn poll_once<T>(f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> (Poll<T>, Arc<Counting>) {
        let count = Arc::new(Counting::default());
        let waker = Waker::from(count.clone());
        let polled = OwnWaker::default().poll(&mut Context::from_waker(&waker), f);
        (polled, count)
    }

    #[test]
    fn a_wake_inside_the_poll_is_absorbed_and_looked_at_again() {
        let mut looks = 0;
        // The first look hands itself a chunk (as hyper's connection does to the body) and
        // is pending; the second look finds it.
        let (polled, count) = poll_once(|cx| {
            looks += 1;
            if looks == 1 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(looks)
            }
        });
        assert_eq!(polled, Poll::Ready(2));
        assert_eq!(count.0.load(SeqCst), 0, "the task was not woken");
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let mut kept = None;
        let (polled, count) = poll_once(|cx| {
            kept = Some(cx.waker().clone());
            Poll::<()>::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(count.0.load(SeqCst), 0);
        // The socket becomes readable later.
        kept.unwrap().wake();
        assert_eq!(count.0.load(SeqCst), 1, "the task is woken");
    }

    #[test]
    fn a_wake_from_another_thread_during_the_poll_is_not_lost() {
        let mut looks = 0;
        let (polled, count) = poll_once(|cx| {
            looks += 1;
            if looks == 1 {
                let w = cx.waker().clone();
                std::thread::spawn(move || w.wake()).join().unwrap();
            }
            Poll::<()>::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(looks, 2, "the wake made the poll look again");
        assert_eq!(count.0.load(SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_scheduler() {
        let mut looks = 0;
        let (polled, count) = poll_once(|cx| {
            looks += 1;
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(looks, MAX_LOOKS);
        assert_eq!(count.0.load(SeqCst), 1, "its wake was passed on once");
    }
}
