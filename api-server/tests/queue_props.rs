//! Property tests of the data plane's admission core (`llorch_api::dataplane`): random sequences
//! of enqueue, cancel (of waiting and of running tasks), dispatch, finish, clock steps and
//! replica-list changes, run against a small model of what must happen. After every step:
//! the queue is within capacity, positions are a permutation of the dispatch order, and every
//! replica's active count equals the guards alive for it. On every dispatch: FIFO within a
//! priority and the batch guard. At the end: every admitted task ended exactly once and
//! nothing is queued or held.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use llorch_api::dataplane::{
    Acquire, Admission, Fairness, PoolQueue, Replica, ServiceTimeEstimator, SlotGuard, SlotTable,
};
use llorch_manifests::pool::{FullQueuePolicy, QueueSpec};
use llorch_manifests::task::Priority;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

type Checked = Result<(), TestCaseError>;

/// A replica in a generated list: (id suffix, slots, free VRAM in GiB).
type ReplicaSeed = (u8, u32, u8);

#[derive(Clone, Debug)]
struct Setup {
    capacity: u32,
    policy: FullQueuePolicy,
    fairness: Fairness,
    replicas: Vec<ReplicaSeed>,
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue { priority: Priority, session: Option<u8> },
    CancelWaiting(usize),
    CancelRunning(usize),
    CancelAnyId(usize),
    Dispatch,
    Finish { index: usize, service_ms: u32 },
    Advance { ms: u32 },
    Replace(Vec<ReplicaSeed>),
}

/// How an admitted task stands; the last three are endings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Waiting,
    Dispatched,
    Cancelled,
    Dropped,
}

#[derive(Clone, Debug, PartialEq)]
struct Task {
    id: u64,
    priority: Priority,
    session: Option<String>,
}

struct Running {
    id: u64,
    guard: SlotGuard,
    replica: String,
    incarnation: u64,
}

struct ModelReplica {
    slots: u32,
    incarnation: u64,
}

/// The system under test and the model it is checked against.
struct Harness {
    queue: PoolQueue<u64, Task>,
    table: SlotTable,
    estimator: ServiceTimeEstimator,
    setup: Setup,
    t0: Instant,
    clock_ms: u64,
    next_id: u64,
    interactive: VecDeque<u64>,
    /// Waiting batch tasks with their enqueue time in ms.
    batch: VecDeque<(u64, u64)>,
    fates: HashMap<u64, Fate>,
    running: Vec<Running>,
    /// Consecutive interactive dispatches made while batch waited.
    streak: u32,
    replicas: HashMap<String, ModelReplica>,
    next_incarnation: u64,
}

impl Harness {
    fn new(setup: Setup) -> Result<Self, TestCaseError> {
        let spec = QueueSpec {
            capacity: setup.capacity,
            full_policy: setup.policy,
        };
        let replicas = setup.replicas.clone();
        let mut harness = Self {
            queue: PoolQueue::with_fairness(&spec, setup.fairness),
            table: SlotTable::new(),
            estimator: ServiceTimeEstimator::new(),
            setup,
            t0: Instant::now(),
            clock_ms: 0,
            next_id: 0,
            interactive: VecDeque::new(),
            batch: VecDeque::new(),
            fates: HashMap::new(),
            running: Vec::new(),
            streak: 0,
            replicas: HashMap::new(),
            next_incarnation: 0,
        };
        harness.replace(replicas.iter().map(replica).collect())?;
        Ok(harness)
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.clock_ms)
    }

    fn apply(&mut self, op: Op) -> Checked {
        match op {
            Op::Enqueue { priority, session } => self.enqueue(priority, session.map(|s| format!("s{s}"))),
            Op::CancelWaiting(pick) => self.cancel_waiting(pick),
            Op::CancelRunning(pick) => self.cancel_running(pick),
            Op::CancelAnyId(pick) => self.cancel_any_id(pick),
            Op::Dispatch => self.dispatch(),
            Op::Finish { index, service_ms } => self.finish(index, service_ms),
            Op::Advance { ms } => {
                self.clock_ms += u64::from(ms);
                Ok(())
            }
            Op::Replace(seeds) => self.replace(seeds.iter().map(replica).collect()),
        }?;
        self.check_invariants()
    }

    /// Moves an admitted task from waiting to an ending; any other move is a double ending.
    fn end(&mut self, id: u64, fate: Fate) -> Checked {
        let before = self.fates.insert(id, fate);
        prop_assert_eq!(before, Some(Fate::Waiting), "task {} ended twice ({:?})", id, fate);
        Ok(())
    }

    fn admit(&mut self, id: u64, priority: Priority) {
        self.fates.insert(id, Fate::Waiting);
        match priority {
            Priority::Interactive => self.interactive.push_back(id),
            Priority::Batch => self.batch.push_back((id, self.clock_ms)),
        }
    }

    fn enqueue(&mut self, priority: Priority, session: Option<String>) -> Checked {
        let id = self.next_id;
        self.next_id += 1;
        let depth_before = self.queue.depth();
        let task = Task { id, priority, session };
        let drop_lru = self.setup.policy == FullQueuePolicy::DropLru;
        let room = self.queue.has_room_for(priority);
        let admission = self.queue.enqueue(id, priority, task, self.now());
        prop_assert_eq!(
            room,
            !matches!(admission, Admission::Rejected { .. }),
            "has_room_for must predict enqueue"
        );
        match admission {
            Admission::Enqueued { position } => {
                prop_assert!(depth_before < self.setup.capacity);
                self.admit(id, priority);
                prop_assert_eq!(self.queue.position(&id), Some(position));
            }
            Admission::EnqueuedDroppingOldest { position, dropped } => {
                prop_assert!(drop_lru);
                prop_assert_eq!(depth_before, self.setup.capacity);
                prop_assert_eq!(dropped.1.id, dropped.0);
                let expected = match self.batch.pop_front() {
                    Some((oldest_batch, _)) => oldest_batch,
                    None => {
                        prop_assert_eq!(priority, Priority::Interactive, "batch must not evict interactive");
                        self.interactive
                            .pop_front()
                            .ok_or_else(|| fail("evicted from an empty queue"))?
                    }
                };
                prop_assert_eq!(dropped.0, expected);
                self.end(expected, Fate::Dropped)?;
                self.admit(id, priority);
                prop_assert_eq!(self.queue.position(&id), Some(position));
            }
            Admission::Rejected { item } => {
                prop_assert_eq!(item.id, id);
                prop_assert_eq!(depth_before, self.setup.capacity);
                let evictable = !self.batch.is_empty() || (priority == Priority::Interactive && depth_before > 0);
                prop_assert!(
                    !(drop_lru && evictable),
                    "drop-lru refused a task it could make room for"
                );
            }
            Admission::AlreadyQueued { .. } => prop_assert!(false, "ids are unique"),
        }
        Ok(())
    }

    fn waiting_ids(&self) -> Vec<u64> {
        self.interactive
            .iter()
            .copied()
            .chain(self.batch.iter().map(|&(id, _)| id))
            .collect()
    }

    fn forget_waiting(&mut self, id: u64) {
        self.interactive.retain(|&w| w != id);
        self.batch.retain(|&(w, _)| w != id);
    }

    fn cancel_waiting(&mut self, pick: usize) -> Checked {
        let waiting = self.waiting_ids();
        if waiting.is_empty() {
            return Ok(());
        }
        let id = waiting[pick % waiting.len()];
        prop_assert_eq!(self.queue.cancel(&id).map(|t| t.id), Some(id));
        self.forget_waiting(id);
        self.end(id, Fate::Cancelled)
    }

    /// A client cancels a task that already runs: the queue must not know it, the task stays
    /// dispatched, and its stream ends by dropping its slot guard, once.
    fn cancel_running(&mut self, pick: usize) -> Checked {
        if self.running.is_empty() {
            return Ok(());
        }
        let running = self.running.swap_remove(pick % self.running.len());
        prop_assert!(
            self.queue.cancel(&running.id).is_none(),
            "cancel un-dispatched {}",
            running.id
        );
        prop_assert_eq!(self.fates.get(&running.id), Some(&Fate::Dispatched));
        drop(running.guard);
        prop_assert!(self.queue.cancel(&running.id).is_none());
        Ok(())
    }

    /// Cancels any id ever issued (waiting, running, finished, dropped or refused).
    fn cancel_any_id(&mut self, pick: usize) -> Checked {
        if self.next_id == 0 {
            return Ok(());
        }
        let id = pick as u64 % self.next_id;
        let waiting = self.fates.get(&id) == Some(&Fate::Waiting);
        let cancelled = self.queue.cancel(&id);
        prop_assert_eq!(
            cancelled.is_some(),
            waiting,
            "cancel of {} in fate {:?}",
            id,
            self.fates.get(&id)
        );
        if waiting {
            self.forget_waiting(id);
            self.end(id, Fate::Cancelled)?;
        }
        Ok(())
    }

    /// The model's pick: an overdue batch task, or batch once the guard's streak is used up,
    /// else interactive, else batch; the oldest of its lane.
    fn expected_pick(&self) -> (Option<u64>, bool) {
        let max_wait = u64::try_from(self.setup.fairness.batch_max_wait.as_millis()).unwrap_or(u64::MAX);
        let overdue = self
            .batch
            .front()
            .is_some_and(|&(_, at)| self.clock_ms - at >= max_wait);
        let streak_used = self.streak >= self.setup.fairness.interactive_streak.max(1);
        let batch_first = !self.batch.is_empty() && (overdue || streak_used);
        let pick = if batch_first {
            self.batch.front().map(|&(id, _)| id)
        } else {
            self.interactive
                .front()
                .copied()
                .or(self.batch.front().map(|&(id, _)| id))
        };
        (pick, overdue)
    }

    /// What the pool's dispatcher does: only with a free slot, take the next task and place it.
    fn dispatch(&mut self) -> Checked {
        if !self.table.has_free_slot() {
            prop_assert!(!matches!(self.table.acquire(None), Acquire::Placed(_)));
            return Ok(());
        }
        let now = self.now();
        let (expected, overdue) = self.expected_pick();
        let expected_position = expected.and_then(|id| self.queue.position(&id));
        let peeked = self.queue.peek(now).map(|(id, _)| *id);
        let Some((id, task)) = self.queue.next(now) else {
            prop_assert_eq!(expected, None);
            prop_assert_eq!(peeked, None);
            return Ok(());
        };
        prop_assert_eq!(task.id, id);
        prop_assert_eq!(Some(id), peeked, "peek and next disagree");
        prop_assert_eq!(Some(id), expected, "FIFO within a priority or the batch guard broke");
        if !overdue {
            prop_assert_eq!(expected_position, Some(0), "position 0 was not dispatched first");
        }
        let batch_waited = !self.batch.is_empty();
        match task.priority {
            Priority::Interactive => {
                self.interactive.pop_front();
                self.streak = if batch_waited { self.streak + 1 } else { 0 };
                prop_assert!(
                    self.streak <= self.setup.fairness.interactive_streak.max(1),
                    "batch starved"
                );
            }
            Priority::Batch => {
                self.batch.pop_front();
                self.streak = 0;
            }
        }
        self.end(id, Fate::Dispatched)?;
        match self.table.acquire(task.session.as_deref()) {
            Acquire::Placed(placement) => {
                let replica = placement.guard.replica_id().to_owned();
                let model = self
                    .replicas
                    .get(&replica)
                    .ok_or_else(|| fail("placed on an unknown replica"))?;
                let active = self.table.active(&replica).unwrap_or(u32::MAX);
                prop_assert!(
                    active <= model.slots,
                    "{} runs {} on {} slots",
                    replica,
                    active,
                    model.slots
                );
                let incarnation = model.incarnation;
                self.running.push(Running {
                    id,
                    guard: placement.guard,
                    replica,
                    incarnation,
                });
            }
            other => prop_assert!(false, "a free slot was reported but acquire said {:?}", other),
        }
        Ok(())
    }

    fn finish(&mut self, index: usize, service_ms: u32) -> Checked {
        if self.running.is_empty() {
            return Ok(());
        }
        let running = self.running.swap_remove(index % self.running.len());
        drop(running.guard);
        self.estimator.record_ms(u64::from(service_ms));
        let retry = self
            .estimator
            .retry_after_ms(self.queue.depth(), self.queue.capacity(), self.table.slots_total());
        prop_assert!((100..=60_000).contains(&retry), "retry_after {}", retry);
        Ok(())
    }

    fn replace(&mut self, list: Vec<Replica>) -> Checked {
        let mut next = HashMap::new();
        for r in &list {
            let incarnation = match (self.replicas.get(&r.id), next.get(&r.id)) {
                (_, Some(ModelReplica { incarnation, .. })) | (Some(ModelReplica { incarnation, .. }), None) => {
                    *incarnation
                }
                (None, None) => {
                    self.next_incarnation += 1;
                    self.next_incarnation
                }
            };
            next.insert(
                r.id.clone(),
                ModelReplica {
                    slots: r.slots,
                    incarnation,
                },
            );
        }
        self.replicas = next;
        self.table.replace(list);
        Ok(())
    }

    fn check_invariants(&self) -> Checked {
        let lanes = (self.interactive.len() as u32, self.batch.len() as u32);
        prop_assert_eq!(self.queue.depth_by_priority(), lanes);
        prop_assert_eq!(self.queue.depth(), lanes.0 + lanes.1);
        prop_assert!(self.queue.depth() <= self.setup.capacity, "capacity exceeded");
        let mut positions = Vec::new();
        for id in self.waiting_ids() {
            positions.push(
                self.queue
                    .position(&id)
                    .ok_or_else(|| fail("a waiting task has no position"))?,
            );
        }
        positions.sort_unstable();
        prop_assert_eq!(positions, (0..self.queue.depth()).collect::<Vec<_>>());
        let mut busy = 0;
        for (id, model) in &self.replicas {
            let alive = self
                .running
                .iter()
                .filter(|r| r.replica == *id && r.incarnation == model.incarnation)
                .count() as u32;
            prop_assert_eq!(self.table.active(id), Some(alive), "active count of {}", id);
            busy += alive;
        }
        prop_assert_eq!(self.table.busy_slots(), busy);
        prop_assert_eq!(
            self.table.slots_total(),
            self.replicas.values().map(|r| r.slots).sum::<u32>()
        );
        Ok(())
    }

    /// Lets everything finish: a spare replica, then dispatch and finish until nothing waits.
    fn complete_everything(&mut self) -> Checked {
        let mut list: Vec<Replica> = self
            .replicas
            .iter()
            .map(|(id, r)| Replica {
                id: id.clone(),
                slots: r.slots,
                free_vram_bytes: 0,
            })
            .collect();
        list.push(Replica {
            id: "spare".to_owned(),
            slots: 1,
            free_vram_bytes: 0,
        });
        self.replace(list)?;
        for _ in 0..1_000 {
            if self.queue.is_empty() {
                break;
            }
            if !self.table.has_free_slot() {
                self.running.clear();
            }
            self.apply(Op::Dispatch)?;
        }
        self.running.clear();
        self.check_invariants()?;
        prop_assert_eq!(self.queue.depth(), 0);
        prop_assert_eq!(self.table.busy_slots(), 0);
        for (id, fate) in &self.fates {
            prop_assert_ne!(*fate, Fate::Waiting, "task {} never ended", id);
        }
        Ok(())
    }
}

fn fail(why: &str) -> TestCaseError {
    TestCaseError::fail(why.to_owned())
}

fn replica(&(id, slots, vram_gib): &ReplicaSeed) -> Replica {
    Replica {
        id: format!("r{id}"),
        slots,
        free_vram_bytes: u64::from(vram_gib) << 30,
    }
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![Just(Priority::Interactive), Just(Priority::Batch)]
}

fn replica_list() -> impl Strategy<Value = Vec<ReplicaSeed>> {
    prop::collection::vec((0u8..4, 0u32..3, 0u8..4), 0..4)
}

fn setup() -> impl Strategy<Value = Setup> {
    let policy = prop_oneof![Just(FullQueuePolicy::Reject), Just(FullQueuePolicy::DropLru)];
    let max_wait_ms = prop_oneof![1 => Just(0u64), 4 => 1u64..5_000];
    (0u32..10, policy, 0u32..6, max_wait_ms, replica_list()).prop_map(
        |(capacity, policy, interactive_streak, max_wait_ms, replicas)| Setup {
            capacity,
            policy,
            fairness: Fairness {
                interactive_streak,
                batch_max_wait: Duration::from_millis(max_wait_ms),
            },
            replicas,
        },
    )
}

/// Operations with the given weights for (enqueue, cancel waiting, cancel running, cancel any
/// id, dispatch, finish, advance, replace).
fn op(weights: [u32; 8]) -> impl Strategy<Value = Op> {
    let [
        enqueue,
        cancel_waiting,
        cancel_running,
        cancel_any,
        dispatch,
        finish,
        advance,
        replace,
    ] = weights;
    prop_oneof![
        enqueue => (priority(), prop::option::of(0u8..4)).prop_map(|(priority, session)| Op::Enqueue { priority, session }),
        cancel_waiting => any::<usize>().prop_map(Op::CancelWaiting),
        cancel_running => any::<usize>().prop_map(Op::CancelRunning),
        cancel_any => any::<usize>().prop_map(Op::CancelAnyId),
        dispatch => Just(Op::Dispatch),
        finish => (any::<usize>(), 0u32..10_000).prop_map(|(index, service_ms)| Op::Finish { index, service_ms }),
        advance => (0u32..3_000).prop_map(|ms| Op::Advance { ms }),
        replace => replica_list().prop_map(Op::Replace),
    ]
}

fn run(setup: Setup, ops: Vec<Op>) -> Checked {
    let mut harness = Harness::new(setup)?;
    harness.check_invariants()?;
    for op in ops {
        harness.apply(op)?;
    }
    harness.complete_everything()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn random_operations_keep_capacity_order_and_slot_counts(
        setup in setup(),
        ops in prop::collection::vec(op([6, 1, 1, 1, 5, 3, 2, 1]), 0..150),
    ) {
        run(setup, ops)?;
    }

    #[test]
    fn positions_predict_the_dispatch_order_while_nothing_changes(
        capacity in 0u32..24,
        interactive_streak in 0u32..6,
        lanes in prop::collection::vec(priority(), 0..24),
        dispatched_first in 0usize..6,
    ) {
        let fairness = Fairness { interactive_streak, batch_max_wait: Duration::from_secs(3_600) };
        let spec = QueueSpec { capacity, full_policy: FullQueuePolicy::Reject };
        let mut queue = PoolQueue::with_fairness(&spec, fairness);
        let now = Instant::now();
        for (id, priority) in (0u32..).zip(lanes) {
            queue.enqueue(id, priority, (), now);
        }
        for _ in 0..dispatched_first {
            queue.next(now);
        }
        let mut predicted: Vec<(u32, u32)> = (0..24).filter_map(|id| Some((queue.position(&id)?, id))).collect();
        predicted.sort_unstable();
        let predicted: Vec<u32> = predicted.into_iter().map(|(_, id)| id).collect();
        let actual: Vec<u32> = queue.drain(now).into_iter().map(|(id, ())| id).collect();
        prop_assert_eq!(actual, predicted);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn cancel_heavy_sequences_end_every_task_exactly_once(
        setup in setup(),
        ops in prop::collection::vec(op([6, 4, 4, 2, 5, 1, 1, 1]), 0..150),
    ) {
        run(setup, ops)?;
    }
}
