//! Unit tests of [`PoolQueue`]: admission, policies, dispatch order, the guard and positions.

use std::time::{Duration, Instant};

use llorch_manifests::pool::{FullQueuePolicy, QueueSpec};
use llorch_manifests::task::Priority::{Batch, Interactive};

use super::{Admission, Fairness, PoolQueue};

fn spec(capacity: u32, full_policy: FullQueuePolicy) -> QueueSpec {
    QueueSpec { capacity, full_policy }
}

fn queue(capacity: u32, policy: FullQueuePolicy) -> PoolQueue<u32, &'static str> {
    PoolQueue::new(&spec(capacity, policy))
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// Pops everything at `now` and returns the ids in dispatch order.
fn dispatch_all<T>(q: &mut PoolQueue<u32, T>, now: Instant) -> Vec<u32> {
    std::iter::from_fn(|| q.next(now).map(|(id, _)| id)).collect()
}

#[test]
fn enqueue_reports_the_place_in_dispatch_order() {
    let t0 = Instant::now();
    let mut q = queue(8, FullQueuePolicy::Reject);
    assert_eq!(q.enqueue(1, Batch, "b1", t0), Admission::Enqueued { position: 0 });
    assert_eq!(q.enqueue(2, Interactive, "i2", t0), Admission::Enqueued { position: 0 });
    assert_eq!(q.enqueue(3, Interactive, "i3", t0), Admission::Enqueued { position: 1 });
    assert_eq!(q.position(&1), Some(2));
    assert_eq!(q.depth(), 3);
    assert_eq!(q.depth_by_priority(), (2, 1));
}

#[test]
fn full_queue_with_reject_policy_returns_the_item() {
    let t0 = Instant::now();
    let mut q = queue(1, FullQueuePolicy::Reject);
    assert_eq!(q.enqueue(1, Batch, "b1", t0), Admission::Enqueued { position: 0 });
    assert_eq!(q.enqueue(2, Interactive, "i2", t0), Admission::Rejected { item: "i2" });
    assert_eq!(q.depth(), 1);
    assert_eq!(q.position(&2), None);
}

#[test]
fn zero_capacity_refuses_everything_under_either_policy() {
    let t0 = Instant::now();
    for policy in [FullQueuePolicy::Reject, FullQueuePolicy::DropLru] {
        let mut q = queue(0, policy);
        assert_eq!(q.enqueue(1, Interactive, "i1", t0), Admission::Rejected { item: "i1" });
        assert!(q.is_empty());
    }
}

#[test]
fn drop_lru_evicts_the_oldest_batch_task_first() {
    let t0 = Instant::now();
    let mut q = queue(3, FullQueuePolicy::DropLru);
    q.enqueue(1, Interactive, "i1", t0);
    q.enqueue(2, Batch, "b2", at(t0, 1));
    q.enqueue(3, Batch, "b3", at(t0, 2));
    assert_eq!(
        q.enqueue(4, Interactive, "i4", at(t0, 3)),
        Admission::EnqueuedDroppingOldest {
            position: 1,
            dropped: (2, "b2")
        }
    );
    assert_eq!(q.depth_by_priority(), (2, 1));
    assert_eq!(q.cancel(&2), None);
}

#[test]
fn drop_lru_evicts_the_oldest_interactive_task_when_no_batch_waits() {
    let t0 = Instant::now();
    let mut q = queue(2, FullQueuePolicy::DropLru);
    q.enqueue(1, Interactive, "i1", t0);
    q.enqueue(2, Interactive, "i2", t0);
    assert_eq!(
        q.enqueue(3, Interactive, "i3", t0),
        Admission::EnqueuedDroppingOldest {
            position: 1,
            dropped: (1, "i1")
        }
    );
    assert_eq!(dispatch_all(&mut q, t0), vec![2, 3]);
}

#[test]
fn drop_lru_never_evicts_interactive_for_a_batch_newcomer() {
    let t0 = Instant::now();
    let mut q = queue(2, FullQueuePolicy::DropLru);
    q.enqueue(1, Interactive, "i1", t0);
    q.enqueue(2, Interactive, "i2", t0);
    assert_eq!(q.enqueue(3, Batch, "b3", t0), Admission::Rejected { item: "b3" });
    assert_eq!(q.depth_by_priority(), (2, 0));
}

#[test]
fn a_duplicate_id_is_refused_without_changing_the_queue() {
    let t0 = Instant::now();
    let mut q = queue(4, FullQueuePolicy::Reject);
    q.enqueue(1, Interactive, "first", t0);
    assert_eq!(
        q.enqueue(1, Batch, "again", t0),
        Admission::AlreadyQueued { item: "again" }
    );
    assert_eq!(q.depth_by_priority(), (1, 0));
}

#[test]
fn interactive_goes_first_and_fifo_holds_within_a_priority() {
    let t0 = Instant::now();
    let mut q = queue(8, FullQueuePolicy::Reject);
    q.enqueue(1, Batch, "b1", t0);
    q.enqueue(2, Interactive, "i2", t0);
    q.enqueue(3, Batch, "b3", t0);
    q.enqueue(4, Interactive, "i4", t0);
    assert_eq!(dispatch_all(&mut q, t0), vec![2, 4, 1, 3]);
}

#[test]
fn batch_gets_one_pick_after_four_interactive_picks() {
    let t0 = Instant::now();
    let mut q = queue(16, FullQueuePolicy::Reject);
    q.enqueue(100, Batch, "b", t0);
    q.enqueue(101, Batch, "b", t0);
    for id in 1..=9 {
        q.enqueue(id, Interactive, "i", t0);
    }
    assert_eq!(dispatch_all(&mut q, t0), vec![1, 2, 3, 4, 100, 5, 6, 7, 8, 101, 9]);
}

#[test]
fn interactive_picks_while_no_batch_waits_do_not_count_toward_the_guard() {
    let t0 = Instant::now();
    let mut q = queue(16, FullQueuePolicy::Reject);
    for id in 1..=6 {
        q.enqueue(id, Interactive, "i", t0);
    }
    assert_eq!(q.next(t0).map(|(id, _)| id), Some(1));
    assert_eq!(q.next(t0).map(|(id, _)| id), Some(2));
    q.enqueue(100, Batch, "b", t0);
    assert_eq!(dispatch_all(&mut q, t0), vec![3, 4, 5, 6, 100]);
}

#[test]
fn a_batch_task_past_max_wait_is_promoted_ahead_of_interactive() {
    let t0 = Instant::now();
    let fairness = Fairness {
        interactive_streak: 100,
        batch_max_wait: Duration::from_secs(5),
    };
    let mut q = PoolQueue::with_fairness(&spec(8, FullQueuePolicy::Reject), fairness);
    q.enqueue(1, Batch, "b1", t0);
    q.enqueue(2, Interactive, "i2", at(t0, 1_000));
    q.enqueue(3, Interactive, "i3", at(t0, 1_000));
    assert_eq!(q.peek(at(t0, 4_999)).map(|(id, _)| *id), Some(2));
    assert_eq!(q.next(at(t0, 5_000)).map(|(id, _)| id), Some(1));
    assert_eq!(dispatch_all(&mut q, at(t0, 5_000)), vec![2, 3]);
}

#[test]
fn cancel_removes_only_a_waiting_task() {
    let t0 = Instant::now();
    let mut q = queue(4, FullQueuePolicy::Reject);
    q.enqueue(1, Interactive, "i1", t0);
    q.enqueue(2, Batch, "b2", t0);
    q.enqueue(3, Interactive, "i3", t0);
    assert_eq!(q.cancel(&3), Some("i3"));
    assert_eq!(q.cancel(&3), None);
    assert_eq!(q.next(t0), Some((1, "i1")));
    assert_eq!(q.cancel(&1), None, "a dispatched task is not the queue's to cancel");
    assert_eq!(q.depth_by_priority(), (0, 1));
}

#[test]
fn cancel_frees_room_under_reject() {
    let t0 = Instant::now();
    let mut q = queue(1, FullQueuePolicy::Reject);
    q.enqueue(1, Interactive, "i1", t0);
    assert_eq!(q.cancel(&1), Some("i1"));
    assert_eq!(q.enqueue(2, Interactive, "i2", t0), Admission::Enqueued { position: 0 });
}

#[test]
fn string_ids_can_be_looked_up_by_str() {
    let t0 = Instant::now();
    let mut q: PoolQueue<String, ()> = PoolQueue::new(&spec(2, FullQueuePolicy::Reject));
    q.enqueue("task-1".to_owned(), Interactive, (), t0);
    assert_eq!(q.position("task-1"), Some(0));
    assert_eq!(q.cancel("task-1"), Some(()));
}

#[test]
fn positions_match_the_order_next_dispatches_in() {
    let t0 = Instant::now();
    let fairness = Fairness {
        interactive_streak: 2,
        ..Fairness::default()
    };
    let mut q = PoolQueue::with_fairness(&spec(32, FullQueuePolicy::Reject), fairness);
    let lanes = [
        Batch,
        Interactive,
        Interactive,
        Batch,
        Interactive,
        Batch,
        Interactive,
        Interactive,
    ];
    for (id, priority) in (0u32..).zip(lanes) {
        q.enqueue(id, priority, (), t0);
    }
    // Shift the guard mid-streak so positions must account for the streak already run.
    assert_eq!(q.next(t0).map(|(id, _)| id), Some(1));
    let mut by_position: Vec<(u32, u32)> = (0..8).filter_map(|id| Some((q.position(&id)?, id))).collect();
    by_position.sort_unstable();
    let predicted: Vec<u32> = by_position.iter().map(|&(_, id)| id).collect();
    let places: Vec<u32> = by_position.iter().map(|&(p, _)| p).collect();
    assert_eq!(places, (0..7).collect::<Vec<_>>());
    assert_eq!(dispatch_all(&mut q, t0), predicted);
}

#[test]
fn drain_empties_the_queue_in_dispatch_order() {
    let t0 = Instant::now();
    let mut q = queue(4, FullQueuePolicy::Reject);
    q.enqueue(1, Batch, "b1", t0);
    q.enqueue(2, Interactive, "i2", t0);
    assert_eq!(q.drain(t0), vec![(2, "i2"), (1, "b1")]);
    assert!(q.is_empty());
    assert_eq!(q.position(&1), None);
}
