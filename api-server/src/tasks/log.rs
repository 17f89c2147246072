//! One log line per step of a task's life (requirements §5, ORCH-3027): admission, rejection,
//! placement, stream start, end, failure and cancel. Each carries the task's identity
//! (`job_id`, `session_id`, `correlation_id`), where it runs (`pool_id`, `replica_id`,
//! `engine`, `engine_version`), the numbers of that step, and a short `human` sentence. The
//! daemon writes them as JSON lines; fields that do not apply to a step are left out.
//!
//! Only what the server decided goes here: prompts and generated text never do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llorch_manifests::ReplicaId;
use llorch_manifests::task::{ErrorCode, TaskError, TaskPhase};

use super::task::TaskState;
use super::telemetry::priority_label;
use crate::dataplane::Affinity;
use crate::front_door::Identity;

/// Why a task was canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// `POST /v2/tasks/{id}/cancel`.
    Requested,
    /// The client closed the task's stream before it ended.
    Disconnected,
}

impl CancelReason {
    /// `requested` or `disconnected`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Requested => "requested",
            CancelReason::Disconnected => "disconnected",
        }
    }
}

/// `queued at position N; predicted start in ~M ms`.
pub fn admitted(task: &TaskState, queue_position: u32, predicted_start_ms: u64) {
    let human = if queue_position == 0 {
        format!(
            "task {} admitted to pool {}, first in line; predicted start in ~{predicted_start_ms} ms",
            task.id, task.pool
        )
    } else {
        format!(
            "task {} queued on pool {} behind {queue_position} other task(s); predicted start in ~{predicted_start_ms} ms",
            task.id, task.pool
        )
    };
    tracing::info!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        priority = priority_label(task.request.priority),
        queue_position,
        predicted_start_ms,
        tokens_in = task.request.prompt_tokens,
        tokens_in_source = task.request.prompt_source.as_str(),
        human = %human,
        "task admitted"
    );
}

/// Refusal lines at overload, per Pool and code: the first in each second is written, the
/// others are counted into the next line written (`also_refused`). A 429 storm is then a line a
/// second per Pool, not one per request; the counters in `/metrics` still count every one.
#[derive(Debug, Default)]
pub struct RefusalLog {
    windows: Mutex<HashMap<Option<String>, HashMap<ErrorCode, Window>>>,
}

#[derive(Debug)]
struct Window {
    since: Instant,
    left_out: u64,
}

impl RefusalLog {
    /// The interval in which only the first refusal of a kind is written.
    pub const EVERY: Duration = Duration::from_secs(1);

    /// `Some(n)` when this refusal's line is to be written, `n` being how many like it were
    /// left out since the last one; `None` when it is left out (and counted).
    pub fn write(&self, pool: Option<&str>, code: ErrorCode, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let per_pool = match windows.get_mut(&pool.map(str::to_string)) {
            Some(p) => p,
            None => windows.entry(pool.map(str::to_string)).or_default(),
        };
        match per_pool.get_mut(&code) {
            Some(w) if now.saturating_duration_since(w.since) < Self::EVERY => {
                w.left_out += 1;
                None
            }
            Some(w) => {
                w.since = now;
                Some(std::mem::take(&mut w.left_out))
            }
            None => {
                per_pool.insert(
                    code,
                    Window {
                        since: now,
                        left_out: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// Who sent a request, for its log lines.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// Its `X-Correlation-Id`.
    pub correlation_id: &'a str,
    /// The session it named, if any.
    pub session_id: Option<&'a str>,
    /// Who presented it.
    pub identity: &'a Identity,
}

/// A refusal before the task ran: an HTTP error at submit (`status`), or a drop from a full
/// queue (`status` 0: the task's stream carries the error instead). `also_refused` counts the
/// refusals like it whose lines were left out since the last one ([`RefusalLog`]).
pub fn rejected(
    job_id: Option<&str>,
    pool_id: Option<&str>,
    who: Requester<'_>,
    status: u16,
    error: &TaskError,
    also_refused: u64,
) {
    let more = match also_refused {
        0 => String::new(),
        n => format!(" ({n} more refused like it since the last such line)"),
    };
    let human = match status {
        0 => format!(
            "task dropped from the queue with {}: {}",
            error.code.as_str(),
            error.message
        ),
        _ => format!(
            "task refused with {} (HTTP {status}): {}{more}",
            error.code.as_str(),
            error.message
        ),
    };
    tracing::info!(
        job_id,
        session_id = who.session_id,
        correlation_id = %who.correlation_id,
        identity = %who.identity,
        pool_id,
        code = error.code.as_str(),
        status,
        retriable = error.retriable,
        retry_after_ms = error.retry_after_ms,
        policy = error.policy_label.as_deref(),
        also_refused,
        human = %human,
        "task rejected"
    );
}

/// The task left the queue for a slot on `replica_id`.
pub fn placed(task: &TaskState, replica_id: &ReplicaId, affinity: &Affinity, waited_ms: u64) {
    let session = match affinity {
        Affinity::NoSession => String::new(),
        Affinity::FirstTurn => "; its session starts here".to_string(),
        Affinity::Kept => "; its session stays on its replica (KV cache warm)".to_string(),
        Affinity::FailedOver { from } => format!("; its session moved from {from} (KV cache cold)"),
    };
    tracing::info!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        replica_id = replica_id.as_str(),
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        queue_wait_ms = waited_ms,
        kv_warmth = affinity.kv_warmth(),
        tokens_in = task.request.prompt_tokens,
        human = %format!("task {} placed on replica {replica_id} after {waited_ms} ms in the queue{session}", task.id),
        "task placed"
    );
}

/// The engine sent the first token.
pub fn stream_started(task: &TaskState, replica_id: Option<&ReplicaId>, first_token_ms: u64) {
    let replica = replica_id.map(ReplicaId::as_str).unwrap_or("?");
    tracing::info!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        replica_id = replica,
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        first_token_ms,
        human = %format!(
            "task {} streaming from {replica}: first token {first_token_ms} ms after admission",
            task.id
        ),
        "task stream started"
    );
}

/// The stream ended with `end`.
pub fn ended(task: &TaskState, replica_id: Option<&ReplicaId>, tokens_out: u32, decode_time_ms: u64) {
    let replica = replica_id.map(ReplicaId::as_str).unwrap_or("?");
    let rate = if decode_time_ms > 0 {
        format!(
            " ({:.1} tokens/s)",
            f64::from(tokens_out) * 1000.0 / decode_time_ms as f64
        )
    } else {
        String::new()
    };
    tracing::info!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        replica_id = replica,
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        tokens_in = task.request.prompt_tokens,
        tokens_out,
        decode_time_ms,
        human = %format!(
            "task {} done on {replica}: {tokens_out} tokens in {decode_time_ms} ms{rate}",
            task.id
        ),
        "task ended"
    );
}

/// The stream ended with `error` after admission.
pub fn failed(task: &TaskState, replica_id: Option<&ReplicaId>, error: &TaskError) {
    let replica_id = replica_id.map(ReplicaId::as_str);
    let at = replica_id.map(|r| format!(" on {r}")).unwrap_or_default();
    tracing::warn!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        replica_id,
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        tokens_out = task.tokens_out(),
        code = error.code.as_str(),
        retriable = error.retriable,
        human = %format!("task {} failed{at} with {}: {}", task.id, error.code.as_str(), error.message),
        "task failed"
    );
}

/// The task was canceled while `was` (queued or running); `tokens_streamed` reached the client.
pub fn canceled(task: &TaskState, reason: CancelReason, was: TaskPhase, tokens_streamed: u32) {
    let replica_id = task.replica();
    let by = match reason {
        CancelReason::Requested => "canceled by its client",
        CancelReason::Disconnected => "canceled: its client disconnected",
    };
    let while_ = match was {
        TaskPhase::Queued => "while queued".to_string(),
        _ => format!(
            "while running on {}",
            replica_id.as_ref().map_or("?", ReplicaId::as_str)
        ),
    };
    tracing::info!(
        job_id = %task.id,
        session_id = task.request.session_id.as_deref(),
        correlation_id = %task.meta.correlation_id,
        identity = %task.meta.identity,
        pool_id = %task.pool,
        replica_id = replica_id.as_ref().map(ReplicaId::as_str),
        engine = %task.meta.engine,
        engine_version = %task.meta.engine_version,
        reason = reason.as_str(),
        tokens_out = tokens_streamed,
        human = %format!("task {} {by} {while_}; {tokens_streamed} token(s) reached the client", task.id),
        "task canceled"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refusal_line_per_pool_and_code_per_second_counts_the_rest() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let full = ErrorCode::AdmissionReject;
        assert_eq!(log.write(Some("chat"), full, t0), Some(0));
        assert_eq!(log.write(Some("chat"), full, t0 + Duration::from_millis(10)), None);
        assert_eq!(log.write(Some("chat"), full, t0 + Duration::from_millis(20)), None);
        assert_eq!(
            log.write(Some("code"), full, t0),
            Some(0),
            "another pool has its own line"
        );
        assert_eq!(
            log.write(Some("chat"), ErrorCode::InvalidParams, t0),
            Some(0),
            "another code too"
        );
        assert_eq!(
            log.write(Some("chat"), full, t0 + Duration::from_millis(1_000)),
            Some(2)
        );
        assert_eq!(log.write(Some("chat"), full, t0 + Duration::from_millis(1_001)), None);
    }
}
