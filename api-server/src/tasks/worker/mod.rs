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
//!
//! Layout: `run` (the loop and its commands), `admission`, `dispatch` (placement onto replica
//! slots), `replicas` (following the snapshot) and `drain`.

mod admission;
mod dispatch;
mod drain;
mod hint;
mod replicas;
mod run;
mod wake;

pub(crate) use admission::queue_full;
pub use hint::{Full, QueueHint};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::api::Snapshot;
use llorch_manifests::task::TaskAdmitted;
use llorch_manifests::{Endpoint, ServingPool, ServingReplica};
use tokio::sync::{mpsc, oneshot, watch};

use super::gate::ReplicaGates;
use super::sessions::SessionBook;
use super::task::{TaskMeta, TaskState};
use super::telemetry::Telemetry;
use super::validate::ValidTask;
use crate::dataplane::{PoolQueue, ServiceTimeEstimator, SlotTable};
use crate::engine::EngineClients;
use crate::error::ApiError;
use drain::Drain;

/// Interval of `metrics` frames to waiting tasks.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);

/// What the worker is asked to do.
pub enum Command {
    /// Admit a task: the worker makes its [`TaskState`] only when it has room for it.
    Enqueue {
        /// The validated request.
        request: ValidTask,
        /// Its correlation id and engine.
        meta: TaskMeta,
        /// Its `task` span, opened at the request.
        span: tracing::Span,
        /// The 202 body and the task, or the refusal.
        reply: oneshot::Sender<Result<(TaskAdmitted, Arc<TaskState>), ApiError>>,
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
        failed_endpoint: Option<Endpoint>,
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
    /// Tasks waiting in the queue, by priority (`queued` also counts those held back after
    /// losing a race with a retirement).
    pub queued_interactive: u32,
    /// The batch ones.
    pub queued_batch: u32,
    /// Replica slots, and how many are busy.
    pub slots_total: u32,
    /// Busy slots.
    pub slots_busy: u32,
    /// The predicted start, in milliseconds, of a task admitted now (behind every queued one),
    /// from the pool's service-time estimate; `None` before the pool's worker exists.
    pub predicted_wait_ms: Option<u64>,
}

/// The way in.
#[derive(Clone)]
pub struct WorkerHandle {
    /// Commands.
    pub tx: mpsc::Sender<Command>,
    /// Whether the queue is full, as the worker last published it.
    pub hint: Arc<QueueHint>,
}

/// One Pool's dispatcher.
pub struct PoolWorker {
    pool: String,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    engines: EngineClients,
    telemetry: Telemetry,
    /// The Pool as the controller serves it, as of the last snapshot.
    view: Option<ServingPool>,
    /// Its replicas tasks may be placed on now: not suspect, not being retired.
    replicas: Vec<ServingReplica>,
    queue: Option<PoolQueue<String, Arc<TaskState>>>,
    waiting: HashMap<String, Arc<TaskState>>,
    slots: SlotTable,
    estimate: ServiceTimeEstimator,
    /// Endpoints whose engine failed under a task: no new task goes there until the controller
    /// replaces the container (a new endpoint) — it may not have noticed the crash yet.
    suspect: std::collections::HashSet<Endpoint>,
    sessions: SessionBook,
    gates: ReplicaGates,
    /// The container behind each replica id in the slot table (a new container under the same
    /// id is a new incarnation: fresh slots, cold sessions).
    containers: HashMap<String, String>,
    /// What request handlers may read without asking (a full `reject` queue).
    hint: Arc<QueueHint>,
    /// Tasks taken from the queue that lost a race with a retirement: placed first, in order.
    held: VecDeque<(String, Arc<TaskState>)>,
    running: HashMap<String, Arc<TaskState>>,
    drain: Option<Drain>,
    /// When the first task found the Pool asleep (no replica), while it still has none.
    waking_since: Option<std::time::Instant>,
    /// When the wake failure the waiting tasks were last ended with happened (each failure
    /// ends the tasks that waited for it once).
    wake_failed_at: Option<String>,
}

impl PoolWorker {
    /// A dispatcher for `pool`.
    pub fn new(
        pool: String,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        engines: EngineClients,
        telemetry: Telemetry,
        gates: ReplicaGates,
        hint: Arc<QueueHint>,
    ) -> Self {
        Self {
            pool,
            snapshot,
            engines,
            telemetry,
            view: None,
            replicas: Vec::new(),
            queue: None,
            waiting: HashMap::new(),
            slots: SlotTable::new(),
            estimate: ServiceTimeEstimator::new(),
            suspect: std::collections::HashSet::new(),
            sessions: SessionBook::default(),
            gates,
            containers: HashMap::new(),
            hint,
            held: VecDeque::new(),
            running: HashMap::new(),
            drain: None,
            waking_since: None,
            wake_failed_at: None,
        }
    }
}
