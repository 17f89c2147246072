//! The task data plane (`/v2/tasks` and the OpenAI front door): admission into a per-pool
//! queue, dispatch onto Ready replica slots, and the token stream each task feeds. One
//! [`DataPlane`] per daemon; it reads the controller's serving view and never touches
//! containers or manifests.
//!
//! A task's way through, file by file: [`route`] picks its Pool, [`validate`] checks it
//! against the Pool's contract, [`worker`] queues and places it (admission, dispatch), the
//! [`runner`] streams it from its engine, [`lifecycle`] records each step (state, metrics,
//! log, span), and the client reads it through a [`stream::TaskStream`].
//!
//! - [`task`]: one task's state, its event channel and its race-free cancel gate.
//! - [`gate`]: per engine container, tasks in flight and whether a retirement closed it.
//! - [`sessions`]: session affinity, turns and token budgets.
//! - [`prompt_count`]: the prompt token count admission's context check uses.
//! - [`telemetry`] and [`log`]: the Prometheus series and log lines `lifecycle` records into.

pub mod gate;
pub mod lifecycle;
pub mod log;
pub mod native_frames;
pub mod prompt_count;
mod record;
pub mod route;
pub mod runner;
pub mod sessions;
pub mod spans;
pub mod stream;
pub mod task;
pub mod telemetry;
pub mod validate;
pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use llorch_manifests::Workload;
use llorch_manifests::api::Snapshot;
use llorch_manifests::task::{ErrorCode, TaskAdmitted, TaskRequest};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::engine::EngineClients;
use crate::engine::fields::{ClientFields, Surface};
use crate::error::ApiError;
use crate::front_door::Identity;
use crate::records::{RecordSetup, Records};
use crate::sources::{DrainStore, NoDrainStore};
use crate::trace_context::RemoteParent;
use gate::ReplicaGates;
use lifecycle::Canceled;
use llorch_manifests::records::{OpenAiSurface, RecordedEngine, RecordedModel};
use log::CancelReason;
use task::{TaskMeta, TaskState};
use telemetry::Telemetry;
use worker::{Command, PoolLoad, WorkerHandle};

/// Finished tasks are forgotten this long after they end.
pub const KEEP_FINISHED: Duration = Duration::from_secs(300);

/// The data plane.
pub struct DataPlane {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    engines: EngineClients,
    counter: prompt_count::PromptCounter,
    workers: Mutex<HashMap<String, WorkerHandle>>,
    tasks: Mutex<HashMap<String, Arc<TaskState>>>,
    last_sweep: Mutex<Option<Instant>>,
    telemetry: Telemetry,
    gates: ReplicaGates,
    shutting_down: AtomicBool,
    refusal_lines: log::RefusalLog,
    /// Wakes the controller when a task arrives for a Pool with no replica (it scales up).
    wake_controller: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// Where drains outlive the process.
    drains: Arc<dyn DrainStore>,
    /// The drains in force, by Pool name, with their deadlines: a worker started later (or
    /// after a restart) starts drained.
    drained: Mutex<HashMap<String, SystemTime>>,
    /// Where finished tasks are recorded (set once, before serving); none: nothing is.
    records: std::sync::OnceLock<Arc<Records>>,
}

impl DataPlane {
    /// A data plane over the controller's snapshots.
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>, engines: EngineClients) -> Arc<Self> {
        Self::with_drain_store(snapshot, engines, Arc::new(NoDrainStore))
    }

    /// A data plane whose drains are kept in `drains` across restarts (call
    /// [`DataPlane::restore_drains`] before serving).
    pub fn with_drain_store(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        engines: EngineClients,
        drains: Arc<dyn DrainStore>,
    ) -> Arc<Self> {
        Arc::new(Self {
            snapshot,
            counter: prompt_count::PromptCounter::new(engines.tokenizer().clone()),
            engines,
            workers: Mutex::default(),
            tasks: Mutex::default(),
            last_sweep: Mutex::default(),
            telemetry: Telemetry::new(),
            gates: ReplicaGates::new(),
            shutting_down: AtomicBool::new(false),
            refusal_lines: log::RefusalLog::default(),
            wake_controller: std::sync::OnceLock::new(),
            drains,
            drained: Mutex::default(),
            records: std::sync::OnceLock::new(),
        })
    }

    /// The controller's waker, poked when a task arrives for a Pool that has no replica and
    /// scales to zero (set once, after the controller exists).
    pub fn set_controller_waker(&self, wake: Arc<tokio::sync::Notify>) {
        let _ = self.wake_controller.set(wake);
    }

    /// Records finished tasks in `records` (set once, before serving).
    pub fn set_records(&self, records: Arc<Records>) {
        let _ = self.records.set(records);
    }

    /// The job records, when kept.
    pub fn records(&self) -> Option<&Arc<Records>> {
        self.records.get()
    }

    /// `pool`'s demand: tasks queued or running now, when it last had any (none for a Pool
    /// that never had a task since start), and whether a wake was asked for.
    pub fn demand(&self, pool: &str) -> (u32, Option<std::time::SystemTime>, bool) {
        lock(&self.workers)
            .get(pool)
            .map_or((0, None, false), |w| w.hint.demand())
    }

    /// Asks for `pool` to be woken now (`POST /v2/pools/{name}/wake`): it wants a replica as if
    /// a task waited, until one is up, then stays up for its idle timeout; the controller is
    /// woken at once.
    pub fn wake(self: &Arc<Self>, pool: &str) {
        self.worker_for(pool).hint.wake();
        if let Some(wake) = self.wake_controller.get() {
            wake.notify_one();
        }
    }

    /// Wakes the controller when any of `pools` next goes idle (nothing queued or running);
    /// the others forget an earlier request.
    pub fn wake_when_idle(&self, pools: &[String]) {
        let wake = self.wake_controller.get();
        for (name, worker) in lock(&self.workers).iter() {
            let wanted = pools.contains(name).then(|| wake.cloned()).flatten();
            worker.hint.wake_when_idle(wanted);
        }
    }

    /// When admission asks the engine for a prompt's token count (default
    /// [`CountMode::NearLimit`](prompt_count::CountMode::NearLimit)).
    pub fn set_token_counting(&self, mode: prompt_count::CountMode) {
        self.counter.set_mode(mode);
    }

    /// The series this data plane records, for `/metrics`.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Validates and admits a task under a fresh correlation id; `Ok` carries the 202 body.
    pub async fn submit(self: &Arc<Self>, req: TaskRequest) -> Result<TaskAdmitted, ApiError> {
        self.submit_with(req, None, Identity::Localhost, RemoteParent::default())
            .await
    }

    /// Validates and admits a task that carries `correlation_id` (the submitting request's
    /// `X-Correlation-Id`; a fresh one when `None`) in its logs and stream responses, and
    /// whose span continues the client's trace `parent`.
    pub async fn submit_with(
        self: &Arc<Self>,
        req: TaskRequest,
        correlation_id: Option<String>,
        identity: Identity,
        parent: RemoteParent,
    ) -> Result<TaskAdmitted, ApiError> {
        self.submit_relaying(req, None, correlation_id, identity, parent).await
    }

    /// Like [`DataPlane::submit_with`], for a task that also relays a client's own OpenAI
    /// `fields` to the engine: refused (400, naming the field and the engine) when the chosen
    /// Pool's engine API cannot honour one of them.
    pub async fn submit_relaying(
        self: &Arc<Self>,
        req: TaskRequest,
        fields: Option<ClientFields>,
        correlation_id: Option<String>,
        identity: Identity,
        parent: RemoteParent,
    ) -> Result<TaskAdmitted, ApiError> {
        let correlation_id = correlation_id.unwrap_or_else(crate::correlation::generate);
        let span = spans::task_span(&correlation_id, &parent);
        let admission = spans::admission_span(&span);
        // Only an id that validation would accept goes into a refusal's log line.
        let session_id = req.session_id.clone().filter(|s| validate::acceptable_session_id(s));
        let mut pool = None;
        let result = self
            .admit(
                req,
                fields,
                correlation_id.clone(),
                identity.clone(),
                span.clone(),
                &mut pool,
            )
            .instrument(admission.clone())
            .await;
        if let Err(refusal) = &result {
            spans::refused(&span, &admission, refusal.code());
            let who = log::Requester {
                correlation_id: &correlation_id,
                session_id: session_id.as_deref(),
                identity: &identity,
            };
            self.refused(refusal, pool.as_deref(), who);
        }
        result
    }

    /// Counts and logs a refusal at submit (also for requests refused before they reach the
    /// data plane, such as an unreadable body).
    pub fn refused(&self, refusal: &ApiError, pool: Option<&str>, who: log::Requester<'_>) {
        lifecycle::refused(&self.telemetry, &self.refusal_lines, refusal, pool, who);
    }

    async fn admit(
        self: &Arc<Self>,
        req: TaskRequest,
        fields: Option<ClientFields>,
        correlation_id: String,
        identity: Identity,
        span: tracing::Span,
        chosen: &mut Option<String>,
    ) -> Result<TaskAdmitted, ApiError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(ApiError::new(
                ErrorCode::ShuttingDown,
                "llama-orchd is shutting down and admits no new task; retry once it is back",
            )
            .retry_after_ms(1_000));
        }
        let snapshot = self.snapshot.borrow().clone();
        let pool = route::choose(&snapshot, req.pool.as_deref(), req.model.as_deref())?;
        *chosen = Some(pool.pool.clone());
        span.record("pool_id", pool.pool.as_str());
        span.record("model", pool.model.as_str());
        let contract = pool
            .usable()
            .map_err(|why| ApiError::new(ErrorCode::PoolUnready, why.to_string()).retriable())?;
        let wanted = fields.as_ref().map_or(Workload::Generate, |f| f.surface.workload());
        let record = self.record_setup(req.record, pool, contract, fields.as_ref());
        if pool.workload != wanted {
            return Err(wrong_workload(&pool.pool, pool.workload, wanted));
        }
        let mut valid = validate::validate_request(req, pool, contract)?;
        valid.workload = pool.workload;
        if let Some(fields) = fields {
            fields.check(contract.api, &pool.engine)?;
            valid.generate.passthrough = Some(fields.fields);
        }
        let count = self
            .counter
            .count(pool, contract, &valid.generate.prompt, valid.generate.max_tokens)
            .await;
        (valid.prompt_tokens, valid.prompt_source) = (count.tokens, count.source);
        validate::check_context(&valid, pool, contract)?;
        // A Pool that sleeps, or whose replica a Recreate rollout stopped, is coming back: its
        // tasks wait in the queue instead.
        if pool.replicas.is_empty() && !pool.scales_to_zero && !pool.recreating {
            let name = &pool.pool;
            let why = pool.blocked.as_ref().map(|b| format!(" ({b})")).unwrap_or_default();
            return Err(ApiError::new(
                ErrorCode::PoolUnready,
                format!("pool `{name}` has no Ready replica{why}; see `orchctl describe pool/{name}`"),
            )
            .retriable());
        }
        self.sweep();
        let meta = TaskMeta {
            correlation_id,
            identity,
            engine: pool.engine.clone(),
            engine_version: contract.engine_version.clone(),
            record,
        };
        let worker = self.worker_for(&pool.pool);
        // Demand first, then the wake-up: the controller's next pass must see it.
        worker.hint.touch();
        if pool.replicas.is_empty()
            && let Some(wake) = self.wake_controller.get()
        {
            wake.notify_one();
        }
        // A full `reject` queue refuses at once (the worker's published hint), unless a session
        // budget might refuse first.
        let budgeted = valid.session_id.is_some() && pool.sessions.token_budget.is_some();
        if !budgeted && let Some(full) = worker.hint.full() {
            self.telemetry.backpressure(&pool.pool, "reject");
            return Err(worker::queue_full(
                &pool.pool,
                full.depth,
                full.capacity,
                "reject",
                full.retry_after_ms,
            ));
        }
        let stopped = || ApiError::new(ErrorCode::PoolUnavailable, "the pool's dispatcher stopped").retriable();
        let (reply, answer) = oneshot::channel();
        worker
            .tx
            .send(Command::Enqueue {
                request: valid,
                meta,
                span,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        let (admitted, task) = answer.await.map_err(|_| stopped())??;
        lock(&self.tasks).insert(task.id.clone(), task);
        Ok(admitted)
    }

    /// What a task for `pool` records, unless the daemon, the Pool or the request (`asked`:
    /// `record: false`) opted out; embeddings are not recorded (no token stream).
    fn record_setup(
        &self,
        asked: Option<bool>,
        pool: &llorch_manifests::ServingPool,
        contract: &llorch_manifests::ServingContract,
        fields: Option<&ClientFields>,
    ) -> Option<Arc<RecordSetup>> {
        let records = self.records.get().filter(|r| r.enabled())?;
        if asked == Some(false) || pool.records_off || pool.workload != Workload::Generate {
            return None;
        }
        let openai = fields.and_then(|f| match f.surface {
            Surface::Chat => Some(OpenAiSurface::Chat),
            Surface::Completions => Some(OpenAiSurface::Completions),
            Surface::Embeddings => None,
        });
        Some(Arc::new(RecordSetup {
            records: records.clone(),
            engine: RecordedEngine {
                name: pool.engine.clone(),
                version: contract.engine_version.clone(),
                api: contract.api,
            },
            model: RecordedModel {
                name: pool.model.clone(),
                digest: contract.model_digest.clone(),
                file: contract.model_file.clone(),
            },
            openai,
        }))
    }

    /// The task, if known.
    pub fn task(&self, id: &str) -> Option<Arc<TaskState>> {
        lock(&self.tasks).get(id).cloned()
    }

    /// Makes `task` known (tests build tasks without a worker).
    #[cfg(test)]
    pub(crate) fn insert_for_tests(&self, task: Arc<TaskState>) {
        lock(&self.tasks).insert(task.id.clone(), task);
    }

    /// All known tasks, newest first.
    pub fn tasks(&self) -> Vec<Arc<TaskState>> {
        let mut all: Vec<_> = lock(&self.tasks).values().cloned().collect();
        all.sort_by_key(|t| std::cmp::Reverse(t.created));
        all
    }

    /// Cancels a task, saying why in its log line: after this returns, its stream carries no
    /// further token (ORCH-3026). A queued task leaves the queue; a running one stops and
    /// frees its slot.
    pub fn cancel_because(&self, id: &str, reason: CancelReason) -> Option<Canceled> {
        let task = self.task(id)?;
        let canceled = task.cancel(reason);
        if let Some(w) = lock(&self.workers).get(&task.pool).cloned() {
            // The queue entry is removed by the worker; if its channel is momentarily full the
            // entry is skipped at dispatch instead (the task is already marked canceled).
            let _ = w.tx.try_send(Command::Cancel { id: task.id.clone() });
        }
        Some(canceled)
    }

    /// Stops admission to `pool` (503 `POOL_DRAINING`); what is queued or running may finish
    /// within `deadline`, then ends with a `POOL_DRAINING` error. Returns what is in flight.
    /// The drain is recorded, so a restarted daemon drains `pool` again.
    pub async fn drain(self: &Arc<Self>, pool: &str, deadline: Duration) -> PoolLoad {
        let at = SystemTime::now() + deadline;
        lock(&self.drained).insert(pool.to_string(), at);
        let load = self.ask(pool, true, |reply| Command::Drain { deadline, reply }).await;
        self.save_drain(pool, move |store, pool| store.record(pool, at)).await;
        load
    }

    /// Lifts a drain of `pool` (and its record).
    pub async fn resume(self: &Arc<Self>, pool: &str) -> PoolLoad {
        lock(&self.drained).remove(pool);
        let load = self.ask(pool, false, |reply| Command::Resume { reply }).await;
        self.save_drain(pool, |store, pool| store.lift(pool)).await;
        load
    }

    /// Takes the drains that were in force when the daemon last stopped: each Pool drains
    /// again, with what is left of its deadline (none: nothing that ran then runs now), until
    /// it is lifted. Call before serving. Returns how many.
    pub async fn restore_drains(self: &Arc<Self>) -> usize {
        let store = self.drains.clone();
        let drains = tokio::task::spawn_blocking(move || store.load())
            .await
            .unwrap_or_default();
        let now = SystemTime::now();
        for (pool, at) in &drains {
            let left = at.duration_since(now).unwrap_or_default();
            tracing::info!(pool = %pool, deadline_in_ms = left.as_millis() as u64,
                human = %format!("pool {pool} still drains (as before the restart); lift it with `orchctl drain pool/{pool} --resume`"),
                "drain restored");
        }
        lock(&self.drained).extend(drains.iter().cloned());
        drains.len()
    }

    /// How long `pool`'s drain has left, when it drains.
    fn drain_left(&self, pool: &str) -> Option<Duration> {
        let at = *lock(&self.drained).get(pool)?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// Runs `change` on the drain store on a blocking thread; a failure is logged (the drain
    /// holds in memory; a restart would not see it).
    async fn save_drain(
        &self,
        pool: &str,
        change: impl FnOnce(&dyn DrainStore, &str) -> std::io::Result<()> + Send + 'static,
    ) {
        let (store, name) = (self.drains.clone(), pool.to_string());
        match tokio::task::spawn_blocking(move || change(&*store, &name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(pool = %pool, error = %e, "drain state not saved: a daemon restart would forget this change")
            }
            Err(e) => tracing::error!(pool = %pool, error = %e, "drain state not saved"),
        }
    }

    /// What `pool` has in flight and whether it drains.
    pub async fn load(self: &Arc<Self>, pool: &str) -> PoolLoad {
        self.ask(pool, false, |reply| Command::Load { reply }).await
    }

    /// Stops admitting tasks (503 `SHUTTING_DOWN`); what is queued or running goes on.
    pub fn stop_admitting(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Tasks not yet ended (queued or running).
    pub fn unfinished(&self) -> usize {
        lock(&self.tasks).values().filter(|t| !t.phase().is_final()).count()
    }

    async fn ask(
        self: &Arc<Self>,
        pool: &str,
        start: bool,
        command: impl FnOnce(oneshot::Sender<PoolLoad>) -> Command,
    ) -> PoolLoad {
        let worker = if start {
            Some(self.worker_for(pool))
        } else {
            lock(&self.workers).get(pool).filter(|w| !w.tx.is_closed()).cloned()
        };
        // No worker (nothing was ever queued, or the Pool is not in the snapshot yet): nothing
        // is in flight, and the drain, if any, is the one on record.
        let idle = || PoolLoad {
            draining: self.drain_left(pool).is_some(),
            deadline_in_ms: self.drain_left(pool).map(|d| d.as_millis() as u64),
            ..PoolLoad::default()
        };
        let Some(worker) = worker else {
            return idle();
        };
        let (reply, answer) = oneshot::channel();
        if worker.tx.send(command(reply)).await.is_err() {
            return idle();
        }
        answer.await.unwrap_or_else(|_| idle())
    }

    /// Closes engine container `container_id` to new tasks; true when none runs there (the
    /// controller's retirement gate).
    pub fn close_if_idle(&self, container_id: &str) -> bool {
        self.gates.close_if_idle(container_id)
    }

    /// Lets tasks onto `container_id` again.
    pub fn reopen(&self, container_id: &str) {
        self.gates.reopen(container_id);
    }

    fn worker_for(self: &Arc<Self>, pool: &str) -> WorkerHandle {
        let mut workers = lock(&self.workers);
        if let Some(w) = workers.get(pool).filter(|w| !w.tx.is_closed()) {
            return w.clone();
        }
        let (tx, rx) = mpsc::channel(1024);
        let tx_for_runners = tx.clone();
        let hint = Arc::new(worker::QueueHint::default());
        let handle = WorkerHandle { tx, hint: hint.clone() };
        workers.insert(pool.to_string(), handle.clone());
        let worker = worker::PoolWorker::new(
            pool.to_string(),
            self.snapshot.clone(),
            self.engines.clone(),
            self.telemetry.clone(),
            self.gates.clone(),
            hint,
        );
        let worker = match self.drain_left(pool) {
            Some(left) => worker.drained(left),
            None => worker,
        };
        tokio::spawn(worker.run(rx, tx_for_runners));
        handle
    }

    /// Forgets tasks finished more than [`KEEP_FINISHED`] ago; walks the map at most once a
    /// second so admission does not pay O(tasks held) per request.
    fn sweep(&self) {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                return;
            }
            *last = Some(now);
        }
        lock(&self.tasks).retain(|_, t| t.finished_at().is_none_or(|at| now.duration_since(at) < KEEP_FINISHED));
        let snapshot = self.snapshot.borrow().clone();
        self.gates
            .forget_gone(&|id| snapshot.replicas.iter().any(|r| r.container_id.as_deref() == Some(id)));
    }
}

/// How a full-queue policy is named in 429 bodies and metrics.
pub fn policy_label(policy: llorch_manifests::FullQueuePolicy) -> &'static str {
    match policy {
        llorch_manifests::FullQueuePolicy::Reject => "reject",
        llorch_manifests::FullQueuePolicy::DropLru => "drop-lru",
    }
}

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod retire_tests;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request for what Pool `pool` does not serve: a 400 blamed on `model`, saying where to go.
fn wrong_workload(pool: &str, serves: Workload, wanted: Workload) -> ApiError {
    let message = match serves {
        Workload::Embeddings => format!(
            "pool `{pool}` serves embeddings (workload: embeddings), through POST /v1/embeddings; {} needs a Pool that generates",
            wanted.as_str()
        ),
        Workload::Generate => format!(
            "pool `{pool}` generates text; embeddings need a Pool with `workload: embeddings` (see docs/openai.md)"
        ),
    };
    ApiError::invalid_field("model", message)
}
