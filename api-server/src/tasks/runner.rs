//! Streams one dispatched task from its replica's engine into the task's event channel, under
//! idle and wall-clock watchdogs, and gives the slot back (by dropping its guard) however the
//! task ends: completion, engine error, cancel or client disconnect. It records first-token
//! and decode latency and generated tokens (one atomic add per token), and logs the stream's
//! start, end or failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llorch_manifests::task::{End, Metrics, TaskError, Token};
use tokio::sync::mpsc;

use super::gate::InFlight;
use super::log;
use super::task::{TaskEvent, TaskState};
use super::telemetry::Telemetry;
use super::worker::Command;
use crate::dataplane::Placement;
use crate::engine::{EngineClient, EngineError, EngineEvent, Watchdog};

/// No token for this long: `DECODE_TIMEOUT`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole reply longer than this: `DECODE_TIMEOUT`.
pub const WALL_TIMEOUT: Duration = Duration::from_secs(600);

fn task_error(e: &EngineError, engine: &str) -> TaskError {
    TaskError {
        code: e.code(),
        message: e.to_string(),
        retriable: e.retriable(),
        retry_after_ms: e.retriable().then_some(0),
        policy_label: None,
        engine: Some(engine.to_string()),
    }
}

/// The engine a task runs on.
pub struct Target {
    /// The replica's base URL.
    pub endpoint: String,
    /// The adapter for its API.
    pub client: Arc<dyn EngineClient>,
    /// `name version`, for `error.engine`.
    pub engine: String,
    /// The task's count on its container's retirement gate.
    pub in_flight: Option<InFlight>,
}

/// Ends the task with `err` (recorded unless it was canceled first), then sends the event.
fn fail(task: &TaskState, replica: &str, err: TaskError, telemetry: &Telemetry) {
    if task.finish(Some(err.clone())) {
        telemetry.failed(&task.pool, err.code);
        log::failed(task, Some(replica), &err);
    }
    task.send(TaskEvent::Error(err));
}

/// Runs `task` on the replica of `placement` at `target`.
pub async fn run(
    task: Arc<TaskState>,
    placement: Placement,
    target: Target,
    telemetry: Telemetry,
    done: mpsc::Sender<Command>,
) {
    let Target {
        endpoint,
        client,
        engine,
        in_flight,
    } = target;
    let began = Instant::now();
    let replica = placement.guard.replica_id().to_string();
    task.set_running(&replica);
    if !placement.affinity.kv_warmth() {
        task.send(TaskEvent::Metrics(Metrics {
            queue_depth: 0,
            queue_position: None,
            predicted_start_ms: None,
            on_time_probability: 1.0,
            kv_warmth: false,
            budget_tokens_remaining: None,
        }));
    }
    let cancel = task.cancellation();
    let abort = task.aborted();
    let mut failed = false;
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        _ = abort.cancelled() => None,
        r = client.generate(&endpoint, &task.request.generate) => Some(r),
    };
    match opened {
        None => {}
        Some(Err(e)) => {
            failed = engine_gone(&e);
            fail(&task, &replica, task_error(&e, &engine), &telemetry);
        }
        Some(Ok(stream)) => {
            let mut stream = Watchdog::new(IDLE_TIMEOUT, WALL_TIMEOUT).wrap(stream);
            let generated = telemetry.tokens_out(&task.pool);
            let mut index = 0u32;
            let mut first: Option<Instant> = None;
            // One cancellation future for the whole stream: building one per token takes the
            // token's lock each time (it showed in the relay profile).
            let cancelled = cancel.cancelled();
            let aborted = abort.cancelled();
            tokio::pin!(cancelled, aborted);
            loop {
                let next = tokio::select! {
                    biased;
                    _ = &mut cancelled => break,
                    _ = &mut aborted => break,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(EngineEvent::Token(t))) => {
                        if first.is_none() {
                            first = Some(Instant::now());
                            let ms = task.created.elapsed().as_millis() as u64;
                            telemetry.first_token_ms(&task.pool, ms);
                            log::stream_started(&task, &replica, ms);
                        }
                        if !task.send(TaskEvent::Token(Token { t, i: index })) {
                            break;
                        }
                        generated.inc();
                        task.count_token();
                        index += 1;
                    }
                    Some(Ok(EngineEvent::Done { tokens_out, .. })) => {
                        let decode_time_ms = first.map(|f| f.elapsed().as_millis() as u64).unwrap_or(0);
                        if task.finish(None) {
                            telemetry.decode_ms(&task.pool, decode_time_ms);
                            log::ended(&task, &replica, tokens_out, decode_time_ms);
                        }
                        task.send(TaskEvent::End(End {
                            tokens_out,
                            decode_time_ms,
                        }));
                        break;
                    }
                    Some(Err(e)) => {
                        failed = engine_gone(&e);
                        fail(&task, &replica, task_error(&e, &engine), &telemetry);
                        break;
                    }
                    None => {
                        let e = EngineError::Protocol("the engine's stream ended without a final event".into());
                        fail(&task, &replica, task_error(&e, &engine), &telemetry);
                        break;
                    }
                }
            }
        }
    }
    // The stream (and the engine connection, which makes llama-server stop generating) is
    // dropped above; now the slot, and the task's count on the container's gate.
    drop(placement);
    drop(in_flight);
    let failed_endpoint = failed.then_some(endpoint);
    let _ = done
        .send(Command::Finished {
            id: task.id.clone(),
            service: began.elapsed(),
            failed_endpoint,
            session: task
                .request
                .session_id
                .clone()
                .map(|s| (s, task.summary().tokens_out, task.request.generate.max_tokens)),
        })
        .await;
}

/// The engine is unreachable or dropped the connection: likely dead.
fn engine_gone(e: &EngineError) -> bool {
    matches!(e, EngineError::Connect { .. } | EngineError::Reset { .. })
}
