//! Streams one dispatched task from its replica's engine into the task's event channel, under
//! idle and wall-clock watchdogs, and gives the slot back (by dropping its guard) however the
//! task ends: completion, engine error, cancel or client disconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llorch_manifests::task::{End, Metrics, TaskError, Token};
use tokio::sync::mpsc;

use super::task::{TaskEvent, TaskState};
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

/// Runs `task` on the replica of `placement` at `endpoint`.
pub async fn run(
    task: Arc<TaskState>,
    placement: Placement,
    endpoint: String,
    client: Arc<dyn EngineClient>,
    engine: String,
    done: mpsc::Sender<Command>,
) {
    let began = Instant::now();
    task.set_running(placement.guard.replica_id());
    if !placement.affinity.kv_warmth() {
        task.send(TaskEvent::Metrics(Metrics {
            queue_depth: 0,
            queue_position: None,
            predicted_start_ms: None,
            on_time_probability: 1.0,
            kv_warmth: false,
        }));
    }
    let cancel = task.cancellation();
    let mut failed = false;
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        r = client.generate(&endpoint, &task.request.generate) => Some(r),
    };
    match opened {
        None => {}
        Some(Err(e)) => {
            failed = engine_gone(&e);
            let err = task_error(&e, &engine);
            task.send(TaskEvent::Error(err.clone()));
            task.finish(Some(err));
        }
        Some(Ok(stream)) => {
            let mut stream = Watchdog::new(IDLE_TIMEOUT, WALL_TIMEOUT).wrap(stream);
            let mut index = 0u32;
            let mut first: Option<Instant> = None;
            loop {
                let next = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(EngineEvent::Token(t))) => {
                        first.get_or_insert_with(Instant::now);
                        if !task.send(TaskEvent::Token(Token { t, i: index })) {
                            break;
                        }
                        task.count_token();
                        index += 1;
                    }
                    Some(Ok(EngineEvent::Done { tokens_out, .. })) => {
                        let decode_time_ms = first.map(|f| f.elapsed().as_millis() as u64).unwrap_or(0);
                        task.send(TaskEvent::End(End {
                            tokens_out,
                            decode_time_ms,
                        }));
                        task.finish(None);
                        break;
                    }
                    Some(Err(e)) => {
                        failed = engine_gone(&e);
                        let err = task_error(&e, &engine);
                        task.send(TaskEvent::Error(err.clone()));
                        task.finish(Some(err));
                        break;
                    }
                    None => {
                        let e = EngineError::Protocol("the engine's stream ended without a final event".into());
                        let err = task_error(&e, &engine);
                        task.send(TaskEvent::Error(err.clone()));
                        task.finish(Some(err));
                        break;
                    }
                }
            }
        }
    }
    // The stream (and the engine connection, which makes llama-server stop generating) is
    // dropped above; now the slot.
    drop(placement);
    let failed_endpoint = failed.then_some(endpoint);
    let _ = done
        .send(Command::Finished {
            service: began.elapsed(),
            failed_endpoint,
        })
        .await;
}

/// The engine is unreachable or dropped the connection: likely dead.
fn engine_gone(e: &EngineError) -> bool {
    matches!(e, EngineError::Connect { .. } | EngineError::Reset { .. })
}
