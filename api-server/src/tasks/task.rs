//! One task: its validated request, its phase, the channel its events flow through, and the
//! cancel flag that makes cancel race-free: the SSE side checks the flag before it emits each
//! token, and the flag is set before a cancel is acknowledged, so no token follows the ack.
//! It also carries what its log lines need ([`TaskMeta`]: correlation id, engine).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use llorch_manifests::task::{End, Metrics, Started, TaskError, Token};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::validate::ValidTask;

/// One SSE event of a task stream.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// First event: queue position and start estimate.
    Started(Started),
    /// Queue and warmth updates.
    Metrics(Metrics),
    /// A token.
    Token(Token),
    /// The stream completed.
    End(End),
    /// The stream failed; nothing follows.
    Error(TaskError),
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskPhase {
    /// Waiting in the pool's queue.
    Queued,
    /// Streaming from a replica.
    Running,
    /// Ended with `end`.
    Done,
    /// Ended with `error`.
    Failed,
    /// Canceled by the client (explicitly or by disconnecting).
    Canceled,
}

impl TaskPhase {
    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, TaskPhase::Done | TaskPhase::Failed | TaskPhase::Canceled)
    }
}

#[derive(Debug)]
struct Progress {
    phase: TaskPhase,
    replica: Option<String>,
    tokens_out: u32,
    error: Option<TaskError>,
    finished_at: Option<Instant>,
}

/// Where a task came from and what serves it: what its logs and stream response carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMeta {
    /// The `X-Correlation-Id` of the request that submitted it.
    pub correlation_id: String,
    /// The Pool's engine.
    pub engine: String,
    /// Its version label.
    pub engine_version: String,
}

/// A task.
#[derive(Debug)]
pub struct TaskState {
    /// `task-…`.
    pub id: String,
    /// The Pool it runs on.
    pub pool: String,
    /// The validated request.
    pub request: ValidTask,
    /// When it was admitted.
    pub created: Instant,
    /// Correlation id and engine.
    pub meta: TaskMeta,
    canceled: AtomicBool,
    /// Tokens handed to the client's stream. Held while a token is emitted and while cancel
    /// flips the flag, so the count a cancel reports is exactly what the client will get.
    emitted: Mutex<u32>,
    token: CancellationToken,
    /// Fires when the task is stopped by the daemon (a drain's deadline), after its `error`
    /// event was queued; only the runner listens, so the stream still delivers that event.
    abort: CancellationToken,
    // Unbounded on purpose: a task's events are bounded by its max_tokens (itself bounded by
    // the context size), and a runner that never blocks on a slow or absent client can never
    // hold a replica slot hostage.
    tx: mpsc::UnboundedSender<TaskEvent>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<TaskEvent>>>,
    progress: Mutex<Progress>,
}

impl TaskState {
    /// A new queued task with a fresh correlation id and no engine named.
    pub fn new(pool: String, request: ValidTask) -> Arc<Self> {
        let meta = TaskMeta {
            correlation_id: crate::correlation::generate(),
            ..TaskMeta::default()
        };
        Self::with_meta(pool, request, meta)
    }

    /// A new queued task.
    pub fn with_meta(pool: String, request: ValidTask, meta: TaskMeta) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            id: new_id(),
            pool,
            request,
            created: Instant::now(),
            meta,
            canceled: AtomicBool::new(false),
            emitted: Mutex::new(0),
            token: CancellationToken::new(),
            abort: CancellationToken::new(),
            tx,
            rx: Mutex::new(Some(rx)),
            progress: Mutex::new(Progress {
                phase: TaskPhase::Queued,
                replica: None,
                tokens_out: 0,
                error: None,
                finished_at: None,
            }),
        })
    }

    /// Marks the task canceled and returns how many tokens its stream carried: no token
    /// follows (ORCH-3026). Idempotent; a finished task stays as it ended.
    pub fn cancel(&self) -> u32 {
        self.cancel_from().0
    }

    /// [`cancel`](Self::cancel), also returning the phase the task was in: a final phase means
    /// this call changed nothing.
    pub fn cancel_from(&self) -> (u32, TaskPhase) {
        let emitted = {
            let gate = self.emitted.lock().unwrap_or_else(|p| p.into_inner());
            self.canceled.store(true, Ordering::SeqCst);
            *gate
        };
        self.token.cancel();
        let mut p = self.progress();
        let was = p.phase;
        if !was.is_final() {
            p.phase = TaskPhase::Canceled;
            p.finished_at = Some(Instant::now());
        }
        (emitted, was)
    }

    /// Lets one token out to the client unless the task was canceled; the stream calls this
    /// right before it yields a token.
    pub fn admit_token(&self) -> bool {
        let mut gate = self.emitted.lock().unwrap_or_else(|p| p.into_inner());
        if self.canceled.load(Ordering::SeqCst) {
            return false;
        }
        *gate += 1;
        true
    }

    /// True once canceled.
    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::SeqCst)
    }

    /// Fires when canceled.
    pub fn cancellation(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Ends the task with `err` (its stream's last event) and stops its runner; a task that
    /// already ended is left as it was. True when this call ended it.
    pub fn abort(&self, err: TaskError) -> bool {
        let ended = self.finish(Some(err.clone()));
        if ended {
            self.send(TaskEvent::Error(err));
        }
        self.abort.cancel();
        ended
    }

    /// Fires when [`abort`](Self::abort) is called.
    pub fn aborted(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// The event receiver; only the first caller gets it (one stream per task).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<TaskEvent>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Queues an event for the stream; false when the stream is gone or the task canceled.
    pub fn send(&self, event: TaskEvent) -> bool {
        !self.is_canceled() && self.tx.send(event).is_ok()
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves to Running on `replica`.
    pub fn set_running(&self, replica: &str) {
        let mut p = self.progress();
        if p.phase == TaskPhase::Queued {
            p.phase = TaskPhase::Running;
            p.replica = Some(replica.to_string());
        }
    }

    /// Records a token.
    pub fn count_token(&self) {
        self.progress().tokens_out += 1;
    }

    /// Tokens the engine sent so far.
    pub fn tokens_out(&self) -> u32 {
        self.progress().tokens_out
    }

    /// The replica, once dispatched.
    pub fn replica(&self) -> Option<String> {
        self.progress().replica.clone()
    }

    /// Records the end (unless canceled first); true when this call ended the task. Call it
    /// before sending the final event, so that a client that has read `end` or `error` finds
    /// the task final (and its disconnect cancels nothing).
    pub fn finish(&self, error: Option<TaskError>) -> bool {
        let mut p = self.progress();
        if p.phase.is_final() {
            return false;
        }
        p.phase = if error.is_some() {
            TaskPhase::Failed
        } else {
            TaskPhase::Done
        };
        p.error = error;
        p.finished_at = Some(Instant::now());
        true
    }

    /// The phase.
    pub fn phase(&self) -> TaskPhase {
        self.progress().phase
    }

    /// When it ended.
    pub fn finished_at(&self) -> Option<Instant> {
        self.progress().finished_at
    }

    /// A JSON summary for `GET /v2/tasks/{id}`.
    pub fn summary(&self) -> TaskSummary {
        let p = self.progress();
        TaskSummary {
            task_id: self.id.clone(),
            pool: self.pool.clone(),
            state: p.phase,
            replica: p.replica.clone(),
            tokens_out: p.tokens_out,
            priority: self.request.priority,
            session_id: self.request.session_id.clone(),
            age_ms: self.created.elapsed().as_millis() as u64,
            error: p.error.clone(),
            correlation_id: self.meta.correlation_id.clone(),
        }
    }
}

/// `GET /v2/tasks/{id}` body.
#[derive(Clone, Debug, Serialize)]
pub struct TaskSummary {
    /// Id.
    pub task_id: String,
    /// Pool.
    pub pool: String,
    /// Phase.
    pub state: TaskPhase,
    /// Replica, once dispatched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Tokens streamed so far.
    pub tokens_out: u32,
    /// Priority.
    pub priority: llorch_manifests::task::Priority,
    /// Session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Milliseconds since admission.
    pub age_ms: u64,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// The `X-Correlation-Id` it was submitted with; its logs carry it.
    pub correlation_id: String,
}

fn new_id() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("task-{:x}-{n:x}", t & 0xffff_ffff_ffff)
}
