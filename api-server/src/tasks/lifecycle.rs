//! A task's life as one transition function: [`TaskState::step`] moves a task from one phase
//! to the next and, in the same call, records the move everywhere it is recorded — the task's
//! progress (what `GET /v2/tasks/{id}` shows), the Prometheus series ([`Telemetry`]), the log
//! line ([`log`]), the task's spans ([`spans`](super::spans): the queue span closed at
//! placement, the engine request's opened, …) and, once it ends, its job record
//! ([`record`](super::record)). The rest of the data plane says *what happened*; only this
//! file decides what that means for state, metrics, logs, spans and records.
//!
//! Refusals before a task exists (a bad body, a full queue) are recorded by [`refused`].
//!
//! [`Telemetry`]: super::telemetry::Telemetry

use std::time::Instant;

use llorch_manifests::ReplicaId;
use llorch_manifests::task::{End, FinishReason, TaskError, TaskPhase, Token};

use super::log::{self, CancelReason, RefusalLog};
use super::task::{TaskEvent, TaskState};
use super::telemetry::Telemetry;
use crate::dataplane::Affinity;
use crate::engine::Delta;
use crate::error::ApiError;

/// What happened to a task.
#[derive(Debug)]
pub enum Step<'a> {
    /// It entered the queue at `position` (its `started` frame is already queued).
    Admitted {
        /// 0-based queue position.
        position: u32,
        /// Estimated milliseconds until it starts.
        predicted_start_ms: u64,
    },
    /// It was dropped from a full queue to make room (`drop-lru`): its stream ends with
    /// `error`.
    Dropped(ApiError),
    /// It left the queue for a slot on `replica`.
    Placed {
        /// The replica.
        replica: &'a ReplicaId,
        /// How its session fared.
        affinity: &'a Affinity,
        /// Milliseconds it waited in the queue.
        waited_ms: u64,
    },
    /// The engine's first token reached its stream.
    FirstToken,
    /// The engine completed the reply.
    Ended {
        /// Tokens generated, as the engine counted them.
        tokens_out: u32,
        /// First token to last.
        decode_time_ms: u64,
        /// Why, as the engine said.
        finish: FinishReason,
        /// Prompt tokens, when the engine counted them.
        tokens_in: Option<u32>,
    },
    /// It failed after admission (engine error, pool gone).
    Failed(ApiError),
    /// The daemon stopped it (a drain's deadline): like `Failed`, and its runner stops too.
    Aborted(ApiError),
}

/// What a cancel found and left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canceled {
    /// The phase after the cancel: `Canceled`, or how the task had already ended.
    pub state: TaskPhase,
    /// The phase before it; a final one means the cancel changed nothing.
    pub was: TaskPhase,
    /// Tokens the task's stream carried; none follows.
    pub tokens_streamed: u32,
}

impl TaskState {
    /// Records `step`; true when it changed the task (an ended task ignores later ends).
    pub fn step(&self, step: Step<'_>) -> bool {
        let span = self.spans.task();
        let _in_task = span.enter();
        match step {
            Step::Admitted {
                position,
                predicted_start_ms,
            } => self.on_admitted(position, predicted_start_ms),
            Step::Dropped(error) => self.on_dropped(error),
            Step::Placed {
                replica,
                affinity,
                waited_ms,
            } => self.on_placed(replica, affinity, waited_ms),
            Step::FirstToken => self.on_first_token(),
            Step::Ended {
                tokens_out,
                decode_time_ms,
                finish,
                tokens_in,
            } => self.on_ended(tokens_out, decode_time_ms, finish, tokens_in),
            Step::Failed(error) => self.fail(error.into_body()),
            Step::Aborted(error) => {
                let ended = self.fail(error.into_body());
                self.abort.cancel();
                ended
            }
        }
    }

    /// [`Step::Admitted`]: counts and logs the task's entry into the queue.
    fn on_admitted(&self, position: u32, predicted_start_ms: u64) -> bool {
        self.telemetry.enqueued(&self.pool, self.request.priority);
        self.spans.admitted(position);
        log::admitted(self, position, predicted_start_ms);
        true
    }

    /// [`Step::Dropped`]: ends the task with `error` (a `drop-lru` eviction from a full queue).
    fn on_dropped(&self, error: ApiError) -> bool {
        let error = error.into_body();
        let ended = self.finish(Some(error.clone()));
        if ended {
            self.telemetry.rejected(error.code);
            self.telemetry.backpressure(&self.pool, "drop-lru");
            self.spans.failed(error.code, 0);
            log::rejected(
                Some(&self.id),
                Some(&self.pool),
                log::Requester {
                    correlation_id: &self.meta.correlation_id,
                    session_id: self.request.session_id.as_deref(),
                    identity: &self.meta.identity,
                },
                0,
                &error,
                0,
            );
            self.send(TaskEvent::Error(error));
            self.record_end(None);
        }
        ended
    }

    /// [`Step::Placed`]: moves a queued task to `Running` on `replica`; false when it had
    /// already left the queue.
    fn on_placed(&self, replica: &ReplicaId, affinity: &Affinity, waited_ms: u64) -> bool {
        {
            let mut p = self.progress();
            if p.phase != TaskPhase::Queued {
                return false;
            }
            p.phase = TaskPhase::Running;
            p.replica = Some(replica.clone());
            p.figures.queue_wait_ms = Some(waited_ms);
        }
        self.spans.placed(replica, waited_ms, affinity.kv_warmth());
        self.telemetry
            .started(&self.pool, self.request.priority, self.request.prompt_tokens);
        self.telemetry.placed(&self.pool, replica.as_str());
        log::placed(self, replica, affinity, waited_ms);
        true
    }

    /// [`Step::FirstToken`]: records the time to first token.
    fn on_first_token(&self) -> bool {
        let ms = self.created.elapsed().as_millis() as u64;
        self.progress().figures.ttft_ms = Some(ms);
        self.telemetry.first_token_ms(&self.pool, ms);
        self.spans.first_token();
        log::stream_started(self, self.replica().as_ref(), ms);
        true
    }

    /// [`Step::Ended`]: ends the task with the engine's figures and sends its `end` frame
    /// (sent even when the task had already ended, as before).
    fn on_ended(&self, tokens_out: u32, decode_time_ms: u64, finish: FinishReason, tokens_in: Option<u32>) -> bool {
        let ended = self.finish(None);
        if ended {
            // The engine's count includes what is not streamed as text (reasoning,
            // tool-call arguments): that is what a session's budget is charged.
            let mut p = self.progress();
            p.tokens_out = p.tokens_out.max(tokens_out);
            p.figures.decode_ms = Some(decode_time_ms);
            p.figures.tokens_in = Some(tokens_in.unwrap_or(self.request.prompt_tokens));
            p.figures.finish = Some(finish);
            drop(p);
            self.telemetry.decode_ms(&self.pool, decode_time_ms);
            let tokens_in = tokens_in.unwrap_or(self.request.prompt_tokens);
            self.spans.ended(tokens_in, tokens_out, finish);
            log::ended(self, self.replica().as_ref(), tokens_out, decode_time_ms);
        }
        self.send(TaskEvent::End(End {
            tokens_out,
            decode_time_ms,
            finish_reason: finish,
            tokens_in: tokens_in.unwrap_or(self.request.prompt_tokens),
        }));
        if ended {
            self.record_end(None);
        }
        ended
    }

    /// Hands tokens that arrived together to the stream and counts them (the per-token path:
    /// one send, one lock, one atomic add per batch). False when the stream is gone.
    pub fn emit_tokens(&self, tokens: Vec<Token>) -> bool {
        let n = tokens.len() as u32;
        if !self.send(TaskEvent::Tokens(tokens)) {
            return false;
        }
        self.progress().tokens_out += n;
        self.tokens_counter.inc_by(u64::from(n));
        true
    }

    /// Hands a chunk with more than text to the stream, in order after the tokens before it;
    /// its text counts as one token. False when the stream is gone.
    pub fn emit_delta(&self, index: u32, delta: Box<Delta>) -> bool {
        let n = u32::from(delta.content.is_some());
        if !self.send(TaskEvent::Delta { index, delta }) {
            return false;
        }
        if n > 0 {
            self.progress().tokens_out += n;
            self.tokens_counter.inc_by(u64::from(n));
        }
        true
    }

    /// Cancels the task: after this returns, its stream carries no further token (ORCH-3026).
    /// Idempotent; a finished task stays as it ended.
    pub fn cancel(&self, reason: CancelReason) -> Canceled {
        let streamed = self.close_gate();
        let was = {
            let mut p = self.progress();
            let was = p.phase;
            if !was.is_final() {
                p.phase = TaskPhase::Canceled;
                p.finished_at = Some(Instant::now());
            }
            was
        };
        if !was.is_final() {
            let span = self.spans.task();
            let _in_task = span.enter();
            self.spans.canceled(streamed);
            self.telemetry.canceled(&self.pool, self.request.priority);
            log::canceled(self, reason, was, streamed);
            self.record_end(Some(streamed));
        }
        Canceled {
            state: self.phase(),
            was,
            tokens_streamed: streamed,
        }
    }

    fn fail(&self, error: TaskError) -> bool {
        let ended = self.finish(Some(error.clone()));
        if ended {
            self.telemetry.failed(&self.pool, error.code);
            self.spans.failed(error.code, self.tokens_out());
            log::failed(self, self.replica().as_ref(), &error);
        }
        self.send(TaskEvent::Error(error));
        if ended {
            self.record_end(None);
        }
        ended
    }

    /// Records the end (unless canceled first); true when this call ended the task. Called
    /// before the final event is sent, so that a client that has read `end` or `error` finds
    /// the task final (and its disconnect cancels nothing).
    fn finish(&self, error: Option<TaskError>) -> bool {
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
}

/// Counts and logs a refusal before any task existed: an HTTP error at submit. At overload the
/// lines are summarized ([`RefusalLog`]); the count is exact.
pub fn refused(
    telemetry: &Telemetry,
    lines: &RefusalLog,
    error: &ApiError,
    pool: Option<&str>,
    who: log::Requester<'_>,
) {
    telemetry.rejected(error.code());
    if let Some(also_refused) = lines.write(pool, error.code(), Instant::now()) {
        log::rejected(
            None,
            pool,
            who,
            error.http_status().as_u16(),
            error.body(),
            also_refused,
        );
    }
}
