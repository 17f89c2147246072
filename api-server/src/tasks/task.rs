//! One admitted task: its validated request, its progress, the channel its events flow
//! through, and the cancel gate that makes cancel race-free: the stream lets tokens out only
//! through [`TaskState::admit_tokens`], and a cancel flips the flag under the same lock before
//! it is acknowledged, so no token follows the ack.
//!
//! How a task moves from one phase to the next (and what each move records) is
//! [`lifecycle`](super::lifecycle)'s business; this file only holds the state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use llorch_manifests::ReplicaId;
use llorch_manifests::task::{End, Metrics, Started, TaskError, TaskPhase, TaskSummary, Token};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spans::TaskSpans;
use super::telemetry::Telemetry;
use super::validate::ValidTask;
use crate::engine::Delta;
use crate::front_door::Identity;

/// One SSE event of a task stream.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// First event: queue position and start estimate.
    Started(Started),
    /// Queue and warmth updates.
    Metrics(Metrics),
    /// Tokens that arrived together from the engine (one or more), in order.
    Tokens(Vec<Token>),
    /// A chunk with more than text (reasoning, tool calls, log probabilities), in its place
    /// among the tokens. Its text, when it has some, is token `index`.
    Delta {
        /// The token index its text takes (the next index when it has none).
        index: u32,
        /// The chunk's parts, as the engine sent them.
        delta: Box<Delta>,
    },
    /// An embeddings task's answer: the engine's JSON, whole; `End` follows.
    Embeddings(Box<serde_json::Value>),
    /// The stream completed.
    End(End),
    /// The stream failed; nothing follows.
    Error(TaskError),
}

/// Where a task came from and what serves it: what its logs and stream response carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMeta {
    /// The `X-Correlation-Id` of the request that submitted it.
    pub correlation_id: String,
    /// Who submitted it (`localhost`, `token:<name>`).
    pub identity: Identity,
    /// The Pool's engine.
    pub engine: String,
    /// Its version label.
    pub engine_version: String,
    /// Where its job record goes and what served it; `None` when it is not recorded (the
    /// daemon, its Pool or the request opted out).
    pub record: Option<Arc<crate::records::RecordSetup>>,
}

#[derive(Debug)]
pub(super) struct Progress {
    pub(super) phase: TaskPhase,
    pub(super) replica: Option<ReplicaId>,
    pub(super) tokens_out: u32,
    pub(super) error: Option<TaskError>,
    pub(super) finished_at: Option<Instant>,
    /// Figures a job record keeps.
    pub(super) figures: Figures,
}

/// What a job record keeps of a task's progress besides its phase.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub(super) queue_wait_ms: Option<u64>,
    pub(super) ttft_ms: Option<u64>,
    pub(super) decode_ms: Option<u64>,
    pub(super) tokens_in: Option<u32>,
    pub(super) finish: Option<llorch_manifests::task::FinishReason>,
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
    /// The task's spans: admission → queue → placement → engine request → stream.
    pub spans: TaskSpans,
    pub(super) telemetry: Telemetry,
    /// The pool's generated-token counter (one atomic add per batch).
    pub(super) tokens_counter: Counter,
    canceled: AtomicBool,
    /// Tokens handed to the client's stream. Held while tokens are let out and while cancel
    /// flips the flag, so the count a cancel reports is exactly what the client will get.
    emitted: Mutex<u32>,
    token: CancellationToken,
    /// Fires when the task is stopped by the daemon (a drain's deadline), after its `error`
    /// event was queued; only the runner listens, so the stream still delivers that event.
    pub(super) abort: CancellationToken,
    // Unbounded on purpose: a task's events are bounded by its max_tokens (itself bounded by
    // the context size), and a runner that never blocks on a slow or absent client can never
    // hold a replica slot hostage.
    tx: mpsc::UnboundedSender<TaskEvent>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<TaskEvent>>>,
    progress: Mutex<Progress>,
    /// The native SSE bytes of every event sent, for the job record; `None` when the task is
    /// not recorded. Appended under this lock in the same order as the channel (one append
    /// per batch, amortised growth: no allocation per token).
    transcript: Option<Mutex<Vec<u8>>>,
}

impl TaskState {
    /// A new queued task of `pool`, recording into `telemetry` and `span` (a
    /// [`task_span`](super::spans::task_span)).
    pub fn new(
        pool: String,
        request: ValidTask,
        meta: TaskMeta,
        span: tracing::Span,
        telemetry: Telemetry,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = new_id();
        let spans = TaskSpans::new(span, &id, request.priority, &meta.engine, &meta.engine_version);
        let transcript = meta.record.as_ref().map(|_| Mutex::new(Vec::new()));
        Arc::new(Self {
            tokens_counter: telemetry.tokens_out(&pool),
            telemetry,
            id,
            pool,
            request,
            created: Instant::now(),
            meta,
            spans,
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
                figures: Figures::default(),
            }),
            transcript,
        })
    }

    /// Flips the cancel flag and returns how many tokens the stream carried: none follows.
    pub(super) fn close_gate(&self) -> u32 {
        let gate = lock(&self.emitted);
        self.canceled.store(true, Ordering::SeqCst);
        let emitted = *gate;
        drop(gate);
        self.token.cancel();
        emitted
    }

    /// Lets `n` tokens out to the client unless the task was canceled; the stream calls this
    /// right before it writes them.
    pub fn admit_tokens(&self, n: u32) -> bool {
        let mut gate = lock(&self.emitted);
        if self.canceled.load(Ordering::SeqCst) {
            return false;
        }
        *gate += n;
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

    /// Fires when the daemon stopped the task (a drain's deadline).
    pub fn aborted(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// The event receiver; only the first caller gets it (one stream per task).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<TaskEvent>> {
        lock(&self.rx).take()
    }

    /// Queues an event for the stream; false when the stream is gone or the task canceled.
    pub fn send(&self, event: TaskEvent) -> bool {
        if self.is_canceled() {
            return false;
        }
        let Some(transcript) = &self.transcript else {
            return self.tx.send(event).is_ok();
        };
        // Rendered and sent under one lock: the transcript's order is the channel's.
        let mut bytes = lock(transcript);
        let mark = bytes.len();
        super::native_frames::render(&event, &mut bytes);
        let sent = self.tx.send(event).is_ok();
        if !sent {
            bytes.truncate(mark);
        }
        sent
    }

    /// Takes the transcript's bytes (once, when the task ends).
    pub(super) fn take_transcript(&self) -> Vec<u8> {
        self.transcript
            .as_ref()
            .map(|t| std::mem::take(&mut *lock(t)))
            .unwrap_or_default()
    }

    pub(super) fn progress(&self) -> MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    /// Tokens the engine sent so far.
    pub fn tokens_out(&self) -> u32 {
        self.progress().tokens_out
    }

    /// The replica, once dispatched.
    pub fn replica(&self) -> Option<ReplicaId> {
        self.progress().replica.clone()
    }

    /// The phase.
    pub fn phase(&self) -> TaskPhase {
        self.progress().phase
    }

    /// When it ended.
    pub fn finished_at(&self) -> Option<Instant> {
        self.progress().finished_at
    }

    /// The summary `GET /v2/tasks/{id}` answers.
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
