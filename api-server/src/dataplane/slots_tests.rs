//! Unit tests of [`SlotTable`]: placement order, session affinity, failover, `Drop` release and
//! wholesale replacement.

use super::{Acquire, Affinity, Placement, Replica, SlotTable};

const GIB: u64 = 1 << 30;

fn replica(id: &str, slots: u32, free_vram_gib: u64) -> Replica {
    Replica {
        id: id.to_owned(),
        slots,
        free_vram_bytes: free_vram_gib * GIB,
    }
}

fn table(replicas: Vec<Replica>) -> SlotTable {
    let t = SlotTable::new();
    t.replace(replicas);
    t
}

fn placed(a: Acquire) -> Placement {
    match a {
        Acquire::Placed(p) => p,
        other => panic!("expected a placement, got {other:?}"),
    }
}

#[test]
fn an_empty_table_has_no_replicas_to_offer() {
    assert!(matches!(SlotTable::new().acquire(None), Acquire::NoReplicas));
}

#[test]
fn placement_prefers_the_most_free_vram() {
    let t = table(vec![replica("a", 4, 10), replica("b", 4, 20), replica("c", 4, 15)]);
    assert_eq!(placed(t.acquire(None)).guard.replica_id(), "b");
}

#[test]
fn equal_vram_ties_break_on_fewer_active_slots_then_replica_id() {
    let t = table(vec![replica("b", 4, 10), replica("a", 4, 10), replica("c", 4, 10)]);
    let first = placed(t.acquire(None));
    assert_eq!(first.guard.replica_id(), "a");
    let second = placed(t.acquire(None));
    assert_eq!(second.guard.replica_id(), "b");
    let third = placed(t.acquire(None));
    assert_eq!(third.guard.replica_id(), "c");
    let fourth = placed(t.acquire(None));
    assert_eq!(fourth.guard.replica_id(), "a");
}

#[test]
fn a_full_replica_is_skipped_and_a_full_pool_says_all_busy() {
    let t = table(vec![replica("big", 1, 40), replica("small", 1, 8)]);
    let first = placed(t.acquire(None));
    let second = placed(t.acquire(None));
    assert_eq!((first.guard.replica_id(), second.guard.replica_id()), ("big", "small"));
    assert!(!t.has_free_slot());
    assert!(matches!(t.acquire(None), Acquire::AllBusy));
    assert_eq!((t.slots_total(), t.busy_slots()), (2, 2));
}

#[test]
fn dropping_a_guard_frees_its_slot() {
    let t = table(vec![replica("a", 1, 10)]);
    let held = placed(t.acquire(None));
    assert_eq!(t.active("a"), Some(1));
    drop(held);
    assert_eq!(t.active("a"), Some(0));
    assert!(t.has_free_slot());
}

#[test]
fn a_guard_dropped_on_another_thread_frees_its_slot() {
    let t = table(vec![replica("a", 1, 10)]);
    let held = placed(t.acquire(None));
    std::thread::spawn(move || drop(held)).join().unwrap();
    assert_eq!(t.busy_slots(), 0);
}

#[test]
fn a_session_stays_on_its_replica_while_it_has_a_free_slot() {
    let t = table(vec![replica("a", 2, 10), replica("b", 2, 10)]);
    let first = placed(t.acquire(Some("s1")));
    assert_eq!(first.affinity, Affinity::FirstTurn);
    assert_eq!(first.guard.replica_id(), "a");
    // "b" now sorts first (fewer active slots), but the session keeps "a".
    let second = placed(t.acquire(Some("s1")));
    assert_eq!(second.guard.replica_id(), "a");
    assert_eq!(second.affinity, Affinity::Kept);
    assert!(second.affinity.kv_warmth());
}

#[test]
fn a_session_fails_over_when_its_replica_is_full_and_reports_a_cold_cache() {
    let t = table(vec![replica("a", 1, 10), replica("b", 1, 5)]);
    let first = placed(t.acquire(Some("s1")));
    assert_eq!(first.guard.replica_id(), "a");
    let moved = placed(t.acquire(Some("s1")));
    assert_eq!(moved.guard.replica_id(), "b");
    assert_eq!(moved.affinity, Affinity::FailedOver { from: "a".to_owned() });
    assert!(!moved.affinity.kv_warmth());
    assert_eq!(t.session_replica("s1").as_deref(), Some("b"));
}

#[test]
fn a_session_whose_replica_was_removed_fails_over() {
    let t = table(vec![replica("a", 1, 10), replica("b", 1, 5)]);
    drop(placed(t.acquire(Some("s1"))));
    t.replace(vec![replica("b", 1, 5)]);
    let moved = placed(t.acquire(Some("s1")));
    assert_eq!(moved.guard.replica_id(), "b");
    assert!(!moved.affinity.kv_warmth());
}

#[test]
fn a_replica_that_returns_under_the_same_id_has_a_cold_cache() {
    let t = table(vec![replica("a", 1, 10)]);
    drop(placed(t.acquire(Some("s1"))));
    t.replace(vec![]);
    t.replace(vec![replica("a", 1, 10)]);
    let again = placed(t.acquire(Some("s1")));
    assert_eq!(again.guard.replica_id(), "a");
    assert_eq!(again.affinity, Affinity::FailedOver { from: "a".to_owned() });
}

#[test]
fn a_forgotten_session_places_as_a_first_turn() {
    let t = table(vec![replica("a", 1, 10)]);
    drop(placed(t.acquire(Some("s1"))));
    t.forget_session("s1");
    assert_eq!(placed(t.acquire(Some("s1"))).affinity, Affinity::FirstTurn);
}

#[test]
fn tasks_without_a_session_report_a_warm_cache() {
    let t = table(vec![replica("a", 1, 10)]);
    let p = placed(t.acquire(None));
    assert_eq!(p.affinity, Affinity::NoSession);
    assert!(p.affinity.kv_warmth());
}

#[test]
fn replacing_keeps_the_active_count_of_a_replica_that_remains() {
    let t = table(vec![replica("a", 2, 10), replica("b", 2, 5)]);
    let held = placed(t.acquire(None));
    t.replace(vec![replica("a", 3, 1), replica("c", 1, 2)]);
    assert_eq!(t.active("a"), Some(1));
    assert_eq!(t.active("b"), None);
    assert_eq!((t.slots_total(), t.busy_slots()), (4, 1));
    // Free VRAM was updated too: "c" now has more.
    assert_eq!(placed(t.acquire(None)).guard.replica_id(), "c");
    drop(held);
    assert_eq!(t.active("a"), Some(0));
}

#[test]
fn a_removed_replicas_guard_does_not_touch_a_new_replica_with_its_id() {
    let t = table(vec![replica("a", 2, 10)]);
    let stale = placed(t.acquire(None));
    t.replace(vec![]);
    t.replace(vec![replica("a", 2, 10)]);
    let fresh = placed(t.acquire(None));
    drop(stale);
    assert_eq!(
        t.active("a"),
        Some(1),
        "the stale guard must not release the fresh slot"
    );
    drop(fresh);
    assert_eq!(t.active("a"), Some(0));
}

#[test]
fn lowering_slots_below_active_blocks_new_placements_until_guards_drop() {
    let t = table(vec![replica("a", 2, 10)]);
    let one = placed(t.acquire(None));
    let two = placed(t.acquire(None));
    t.replace(vec![replica("a", 1, 10)]);
    assert!(matches!(t.acquire(None), Acquire::AllBusy));
    drop(one);
    assert!(matches!(t.acquire(None), Acquire::AllBusy));
    drop(two);
    assert!(matches!(t.acquire(None), Acquire::Placed(_)));
}
