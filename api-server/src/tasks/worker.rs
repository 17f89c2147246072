//! The dispatcher of one Pool: a task that owns the Pool's queue, slot table and service-time
//! estimate, and talks to the rest through a channel (house style: one owner, no shared
//! locks on the queue). It admits, cancels, dispatches onto free replica slots, refreshes
//! waiting tasks' estimates every second, and follows the snapshot for replica changes.
//! It records the pool's queue depth, admissions, drops and placements in [`Telemetry`], and
//! logs each admission, drop and placement.
//!
//! Retirement: a task is started on a replica only through that container's gate
//! ([`ReplicaGates`]); a container the controller closed (it is being replaced) refuses it, and
//! the task is placed on another replica or waits for one — it is never failed for it.
//! Drain: while the pool drains, admission answers 503 `POOL_DRAINING`; queued and running
//! tasks go on until the drain's deadline, then end with a `POOL_DRAINING` error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_manifests::api::Snapshot;
use llorch_manifests::task::{ErrorCode, Metrics, Started, TaskAdmitted, TaskError};
use tokio::sync::{mpsc, oneshot, watch};

use super::gate::ReplicaGates;
use super::log;
use super::pool_view::PoolView;
use super::runner;
use super::sessions::{SessionBook, Turn};
use super::task::{TaskEvent, TaskState};
use super::telemetry::Telemetry;
use super::{Refusal, policy_label};
use crate::dataplane::{Acquire, Admission, PoolQueue, ServiceTimeEstimator, SlotTable};
use crate::engine::EngineClients;

/// Interval of `metrics` frames to waiting tasks.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);

/// What the worker is asked to do.
pub enum Command {
    /// Admit a task.
    Enqueue {
        /// The task.
        task: Arc<TaskState>,
        /// The 202 body, or the refusal.
        reply: oneshot::Sender<Result<TaskAdmitted, Refusal>>,
    },
    /// Remove a canceled task from the queue (a running one stops by itself).
    Cancel {
        /// Task id.
        id: String,
    },
    /// A dispatched task ended; its slot is free.
    Finished {
        /// Task id.
        id: String,
        /// How long it held the slot, for the estimate.
        service: Duration,
        /// The endpoint, when the engine there could not be reached or dropped the stream.
        failed_endpoint: Option<String>,
        /// The task's session, the tokens it generated and the tokens it had reserved.
        session: Option<(String, u32, u32)>,
    },
    /// Stop admitting; cancel what still runs `deadline` from now.
    Drain {
        /// How long running and queued tasks may take.
        deadline: Duration,
        /// What is in flight.
        reply: oneshot::Sender<PoolLoad>,
    },
    /// Admit again.
    Resume {
        /// What is in flight.
        reply: oneshot::Sender<PoolLoad>,
    },
    /// Report the load.
    Load {
        /// What is in flight.
        reply: oneshot::Sender<PoolLoad>,
    },
}

/// What a pool has in flight, and whether it drains.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolLoad {
    /// Admission is stopped.
    pub draining: bool,
    /// Milliseconds left before what still runs is canceled.
    pub deadline_in_ms: Option<u64>,
    /// Tasks running on replicas.
    pub in_flight: u32,
    /// Tasks waiting.
    pub queued: u32,
    /// Ids of the running tasks.
    pub running: Vec<String>,
}

/// A drain in force.
#[derive(Clone, Copy, Debug)]
struct Drain {
    deadline: Instant,
    /// The deadline passed and what ran was stopped.
    enforced: bool,
}

/// The way in.
#[derive(Clone)]
pub struct WorkerHandle {
    /// Commands.
    pub tx: mpsc::Sender<Command>,
}

/// One Pool's dispatcher.
pub struct PoolWorker {
    pool: String,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    engines: EngineClients,
    telemetry: Telemetry,
    view: Option<PoolView>,
    queue: Option<PoolQueue<String, Arc<TaskState>>>,
    waiting: HashMap<String, Arc<TaskState>>,
    slots: SlotTable,
    estimate: ServiceTimeEstimator,
    /// Endpoints whose engine failed under a task: no new task goes there until the controller
    /// replaces the container (a new endpoint) — it may not have noticed the crash yet.
    suspect: std::collections::HashSet<String>,
    sessions: SessionBook,
    gates: ReplicaGates,
    /// The container behind each replica id in the slot table (a new container under the same
    /// id is a new incarnation: fresh slots, cold sessions).
    containers: HashMap<String, String>,
    /// Tasks taken from the queue that lost a race with a retirement: placed first, in order.
    held: VecDeque<(String, Arc<TaskState>)>,
    running: HashMap<String, Arc<TaskState>>,
    drain: Option<Drain>,
}

impl PoolWorker {
    /// A dispatcher for `pool`.
    pub fn new(
        pool: String,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        engines: EngineClients,
        telemetry: Telemetry,
        gates: ReplicaGates,
    ) -> Self {
        Self {
            pool,
            snapshot,
            engines,
            telemetry,
            view: None,
            queue: None,
            waiting: HashMap::new(),
            slots: SlotTable::new(),
            estimate: ServiceTimeEstimator::new(),
            suspect: std::collections::HashSet::new(),
            sessions: SessionBook::default(),
            gates,
            containers: HashMap::new(),
            held: VecDeque::new(),
            running: HashMap::new(),
            drain: None,
        }
    }

    /// Runs until the Pool disappears.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, tx: mpsc::Sender<Command>) {
        if !self.refresh() {
            return self.close("the pool is no longer declared");
        }
        let mut tick = tokio::time::interval(METRICS_EVERY);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                changed = self.snapshot.changed() => {
                    if changed.is_err() || !self.refresh() {
                        return self.close("the pool is no longer declared");
                    }
                }
                _ = tick.tick() => {
                    for expired in self.sessions.expire(Instant::now()) {
                        self.slots.forget_session(&expired);
                    }
                    self.send_metrics()
                }
                _ = until(self.drain.filter(|d| !d.enforced).map(|d| d.deadline)) => self.enforce_drain(),
            }
            self.dispatch(&tx);
            self.record_depth();
        }
    }

    fn record_depth(&self) {
        if let Some(q) = self.queue.as_ref() {
            let (interactive, batch) = q.depth_by_priority();
            self.telemetry.queue_depth(&self.pool, interactive, batch);
        }
    }

    /// Re-reads the Pool from the snapshot; false when it is gone.
    fn refresh(&mut self) -> bool {
        let snapshot = self.snapshot.borrow_and_update().clone();
        match PoolView::read(&snapshot, &self.pool) {
            Ok(mut view) => {
                self.suspect
                    .retain(|e| view.replicas.iter().any(|(_, endpoint)| endpoint == e));
                view.replicas.retain(|(_, endpoint)| !self.suspect.contains(endpoint));
                let gates = &self.gates;
                let containers = &view.containers;
                view.replicas
                    .retain(|(r, _)| containers.get(&r.id).is_none_or(|c| !gates.is_closed(c)));
                self.place_on(&view);
                if self
                    .queue
                    .as_ref()
                    .is_none_or(|q| q.capacity() != view.queue.capacity || q.policy() != view.queue.full_policy)
                {
                    // A new queue spec takes effect for new tasks; waiting ones move over in order.
                    let mut fresh = PoolQueue::new(&view.queue);
                    if let Some(mut old) = self.queue.take() {
                        for (id, task) in old.drain(Instant::now()) {
                            let _ = fresh.enqueue(id, task.request.priority, task, Instant::now());
                        }
                    }
                    self.queue = Some(fresh);
                }
                self.sessions
                    .set_limits(Duration::from_secs(view.sessions.ttl_seconds), view.sessions.max_turns);
                self.view = Some(view);
                true
            }
            Err(_) => false,
        }
    }

    /// Makes the slot table list `view`'s replicas. A replica id whose container changed (a
    /// rollout's new revision took over) is first forgotten, so its slots and sessions start
    /// afresh on the new container.
    fn place_on(&mut self, view: &PoolView) {
        let changed: HashSet<&str> = view
            .replicas
            .iter()
            .map(|(r, _)| r.id.as_str())
            .filter(|id| {
                self.containers
                    .get(*id)
                    .is_some_and(|c| view.containers.get(*id) != Some(c))
            })
            .collect();
        if !changed.is_empty() {
            self.slots.replace(
                view.replicas
                    .iter()
                    .filter(|(r, _)| !changed.contains(r.id.as_str()))
                    .map(|(r, _)| r.clone()),
            );
        }
        self.slots.replace(view.replicas.iter().map(|(r, _)| r.clone()));
        self.containers = view
            .replicas
            .iter()
            .filter_map(|(r, _)| Some((r.id.clone(), view.containers.get(&r.id)?.clone())))
            .collect();
    }

    /// What the pool has in flight.
    fn load(&self) -> PoolLoad {
        let now = Instant::now();
        let queued = self.queue.as_ref().map_or(0, |q| q.depth()) + self.held.len() as u32;
        let mut running: Vec<String> = self.running.keys().cloned().collect();
        running.sort();
        PoolLoad {
            draining: self.drain.is_some(),
            deadline_in_ms: self
                .drain
                .map(|d| d.deadline.saturating_duration_since(now).as_millis() as u64),
            in_flight: running.len() as u32,
            queued,
            running,
        }
    }

    /// The drain's deadline passed: every task still queued or running ends with an error.
    fn enforce_drain(&mut self) {
        let Some(drain) = self.drain.as_mut() else { return };
        drain.enforced = true;
        let err = TaskError {
            code: ErrorCode::PoolDraining,
            message: format!(
                "pool `{}` was drained and the drain's deadline passed before the task finished;                  resubmit once the drain is lifted (DELETE /v2/pools/{}/drain)",
                self.pool, self.pool
            ),
            retriable: true,
            retry_after_ms: None,
            policy_label: None,
            engine: None,
        };
        let mut stopped: Vec<Arc<TaskState>> = self.running.values().cloned().collect();
        stopped.extend(self.held.drain(..).map(|(_, t)| t));
        if let Some(q) = self.queue.as_mut() {
            stopped.extend(q.drain(Instant::now()).into_iter().map(|(_, t)| t));
        }
        self.waiting.clear();
        for task in stopped {
            if task.abort(err.clone()) {
                self.telemetry.failed(&self.pool, err.code);
                log::failed(&task, task.replica().as_deref(), &err);
            }
        }
    }

    fn close(mut self, why: &str) {
        let now = Instant::now();
        if let Some(q) = self.queue.as_mut() {
            for (_, task) in q.drain(now) {
                let err = TaskError {
                    code: ErrorCode::PoolUnavailable,
                    message: format!("pool `{}` went away while the task waited: {why}", self.pool),
                    retriable: false,
                    retry_after_ms: None,
                    policy_label: None,
                    engine: None,
                };
                if task.finish(Some(err.clone())) {
                    self.telemetry.failed(&self.pool, err.code);
                    log::failed(&task, None, &err);
                }
                task.send(TaskEvent::Error(err));
            }
        }
        self.telemetry.forget_queue(&self.pool);
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Enqueue { task, reply } => {
                let _ = reply.send(self.admit(task));
            }
            Command::Cancel { id } => {
                if let Some(task) = self.queue.as_mut().and_then(|q| q.cancel(id.as_str())) {
                    self.release(&task, 0);
                }
                self.waiting.remove(&id);
            }
            Command::Drain { deadline, reply } => {
                self.drain = Some(Drain {
                    deadline: Instant::now() + deadline,
                    enforced: false,
                });
                if deadline.is_zero() {
                    self.enforce_drain();
                }
                let _ = reply.send(self.load());
            }
            Command::Resume { reply } => {
                self.drain = None;
                let _ = reply.send(self.load());
            }
            Command::Load { reply } => {
                let _ = reply.send(self.load());
            }
            Command::Finished {
                id,
                service,
                failed_endpoint,
                session,
            } => {
                self.running.remove(&id);
                if let Some((id, generated, reserved)) = session {
                    self.sessions.refund(&id, u64::from(reserved.saturating_sub(generated)));
                }
                match failed_endpoint {
                    Some(endpoint) => {
                        self.suspect.insert(endpoint);
                        self.refresh();
                    }
                    None => self.estimate.record_ms(service.as_millis() as u64),
                }
            }
        }
    }

    fn admit(&mut self, task: Arc<TaskState>) -> Result<TaskAdmitted, Refusal> {
        let now = Instant::now();
        if let Some(drain) = self.drain {
            let left = drain.deadline.saturating_duration_since(now).as_millis() as u64;
            let mut refusal = Refusal::new(
                503,
                ErrorCode::PoolDraining,
                format!(
                    "pool `{}` is draining and admits no new task; retry once the drain is lifted                      (`orchctl drain pool/{} --resume`) or on another pool",
                    self.pool, self.pool
                ),
                true,
            );
            refusal.error.retry_after_ms = Some(left.max(1_000));
            task.finish(Some(refusal.error.clone()));
            return Err(refusal);
        }
        if let Some(refusal) = self.over_budget(&task, now) {
            task.finish(Some(refusal.error.clone()));
            return Err(refusal);
        }
        let (slots_total, busy) = (self.slots.slots_total(), self.slots.busy_slots());
        let Some(queue) = self.queue.as_mut() else {
            return Err(Refusal::new(
                503,
                ErrorCode::PoolUnavailable,
                "the pool is not available",
                true,
            ));
        };
        let id = task.id.clone();
        let telemetry = &self.telemetry;
        let admitted = |position: u32, estimate: &ServiceTimeEstimator| {
            let predicted = estimate.predicted_start_ms(position, slots_total, busy);
            telemetry.enqueued(&task.pool, task.request.priority);
            log::admitted(&task, position, predicted);
            task.send(TaskEvent::Started(Started {
                queue_position: position,
                predicted_start_ms: predicted,
            }));
            TaskAdmitted {
                task_id: id.clone(),
                pool: task.pool.clone(),
                queue_position: position,
                predicted_start_ms: predicted,
                events_url: format!("/v2/tasks/{id}/events"),
            }
        };
        match queue.enqueue(id.clone(), task.request.priority, task.clone(), now) {
            Admission::Enqueued { position } => {
                self.waiting.insert(id.clone(), task.clone());
                if let Some(session) = task.request.session_id.as_deref() {
                    self.sessions
                        .reserve(session, u64::from(task.request.generate.max_tokens), now);
                }
                Ok(admitted(position, &self.estimate))
            }
            Admission::EnqueuedDroppingOldest {
                position,
                dropped: (dropped_id, dropped),
            } => {
                self.waiting.remove(&dropped_id);
                self.waiting.insert(id.clone(), task.clone());
                if let Some(session) = dropped.request.session_id.as_deref() {
                    self.sessions
                        .refund(session, u64::from(dropped.request.generate.max_tokens));
                }
                if let Some(session) = task.request.session_id.as_deref() {
                    self.sessions
                        .reserve(session, u64::from(task.request.generate.max_tokens), now);
                }
                let retry = self
                    .estimate
                    .retry_after_ms(queue.depth(), queue.capacity(), slots_total);
                let err = TaskError {
                    code: ErrorCode::QueueFullDropLru,
                    message: format!(
                        "dropped from pool `{}`'s full queue to make room for a newer task (policy drop-lru)",
                        self.pool
                    ),
                    retriable: true,
                    retry_after_ms: Some(retry),
                    policy_label: Some("drop-lru".into()),
                    engine: None,
                };
                self.telemetry.rejected(err.code);
                self.telemetry.backpressure(&self.pool, "drop-lru");
                log::rejected(
                    Some(&dropped.id),
                    Some(&self.pool),
                    &dropped.meta.correlation_id,
                    dropped.request.session_id.as_deref(),
                    0,
                    &err,
                );
                dropped.finish(Some(err.clone()));
                dropped.send(TaskEvent::Error(err));
                Ok(admitted(position, &self.estimate))
            }
            Admission::Rejected { .. } | Admission::AlreadyQueued { .. } => {
                let retry = self
                    .estimate
                    .retry_after_ms(queue.depth(), queue.capacity(), slots_total);
                let label = policy_label(queue.policy());
                self.telemetry.backpressure(&self.pool, label);
                let mut refusal = Refusal::new(
                    429,
                    ErrorCode::AdmissionReject,
                    format!(
                        "pool `{}`'s queue is full ({} waiting, capacity {}, policy {label}); retry in {retry} ms",
                        self.pool,
                        queue.depth(),
                        queue.capacity()
                    ),
                    true,
                );
                refusal.error.retry_after_ms = Some(retry);
                refusal.error.policy_label = Some(label.to_string());
                task.finish(Some(refusal.error.clone()));
                Err(refusal)
            }
        }
    }

    /// Gives back the part of a task's session reservation it did not generate.
    fn release(&mut self, task: &TaskState, generated: u32) {
        if let Some(session) = task.request.session_id.as_deref() {
            let unused = task.request.generate.max_tokens.saturating_sub(generated);
            self.sessions.refund(session, u64::from(unused));
        }
    }

    /// Tokens the task's session may still generate, when the Pool sets a budget.
    fn budget_left(&self, task: &TaskState, now: Instant) -> Option<u64> {
        let budget = self.view.as_ref()?.sessions.token_budget?;
        let session = task.request.session_id.as_deref()?;
        Some(budget.saturating_sub(self.sessions.used(session, now)))
    }

    /// ORCH-3099: a task whose `max_tokens` exceeds what its session has left is refused
    /// before enqueue.
    fn over_budget(&self, task: &TaskState, now: Instant) -> Option<Refusal> {
        let left = self.budget_left(task, now)?;
        let want = u64::from(task.request.generate.max_tokens);
        if want <= left {
            return None;
        }
        let mut refusal = Refusal::new(
            429,
            ErrorCode::AdmissionReject,
            format!(
                "session `{}` has {left} tokens left of its budget on pool `{}`, and the task asks for up to {want}; \
                 lower max_tokens, or start a new session",
                task.request.session_id.as_deref().unwrap_or_default(),
                self.pool
            ),
            false,
        );
        refusal.error.policy_label = Some("session-budget".into());
        Some(refusal)
    }

    fn dispatch(&mut self, tx: &mpsc::Sender<Command>) {
        let Some(view) = self.view.clone() else { return };
        let now = Instant::now();
        while self.slots.has_free_slot() {
            let next = match self.held.pop_front() {
                Some(held) => Some(held),
                None => self.queue.as_mut().and_then(|q| q.next(now)),
            };
            let Some((id, task)) = next else { return };
            self.waiting.remove(&id);
            if task.is_canceled() || task.phase().is_final() {
                self.release(&task, 0);
                continue;
            }
            if let Some(session) = task.request.session_id.as_deref()
                && self.sessions.turn(session, now) == Turn::Fresh
            {
                // New, idle past its TTL, or out of turns: placed like a new session.
                self.slots.forget_session(session);
            }
            let Some((placement, in_flight)) = self.reserve(task.request.session_id.as_deref(), &view) else {
                // Every free slot was on a container being retired: wait for the snapshot
                // that shows its replacement (the task keeps its place at the front).
                self.held.push_front((id, task));
                return;
            };
            let replica = placement.guard.replica_id().to_string();
            let endpoint = view
                .replicas
                .iter()
                .find(|(r, _)| r.id == replica)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            let waited_ms = now.saturating_duration_since(task.created).as_millis() as u64;
            self.telemetry
                .started(&self.pool, task.request.priority, task.request.prompt_tokens);
            self.telemetry.placed(&self.pool, &replica);
            log::placed(&task, &replica, &placement.affinity, waited_ms);
            let target = runner::Target {
                endpoint,
                client: self.engines.for_api(view.api),
                engine: format!("{} {}", view.engine, view.engine_version),
                in_flight,
            };
            self.running.insert(task.id.clone(), task.clone());
            let telemetry = self.telemetry.clone();
            tokio::spawn(runner::run(task, placement, target, telemetry, tx.clone()));
        }
    }

    /// A slot on a replica whose container's gate lets the task in. A container that refuses
    /// (closed by the controller: it is being retired) leaves the slot table, and the next
    /// best replica is tried; `None` when no replica with a free slot is left.
    fn reserve(
        &mut self,
        session: Option<&str>,
        view: &PoolView,
    ) -> Option<(crate::dataplane::Placement, Option<super::gate::InFlight>)> {
        loop {
            let Acquire::Placed(placement) = self.slots.acquire(session) else {
                return None;
            };
            let replica = placement.guard.replica_id().to_string();
            let Some(container) = self.containers.get(&replica).cloned() else {
                return Some((placement, None));
            };
            if let Some(in_flight) = self.gates.try_enter(&container) {
                return Some((placement, Some(in_flight)));
            }
            drop(placement);
            let mut rest = view.clone();
            rest.replicas
                .retain(|(r, _)| self.containers.get(&r.id).is_some_and(|c| !self.gates.is_closed(c)));
            self.place_on(&rest);
        }
    }

    fn send_metrics(&self) {
        let Some(queue) = self.queue.as_ref() else { return };
        let (slots_total, busy) = (self.slots.slots_total(), self.slots.busy_slots());
        for (id, task) in &self.waiting {
            let Some(position) = queue.position(id.as_str()) else {
                continue;
            };
            let predicted = self.estimate.predicted_start_ms(position, slots_total, busy);
            task.send(TaskEvent::Metrics(Metrics {
                queue_depth: queue.depth(),
                queue_position: Some(position),
                predicted_start_ms: Some(predicted),
                on_time_probability: self
                    .estimate
                    .on_time_probability(position, slots_total, busy, predicted.max(1)),
                kv_warmth: true,
                budget_tokens_remaining: self.budget_left(task, Instant::now()),
            }));
        }
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
