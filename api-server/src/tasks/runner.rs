//! Streams one dispatched task from its replica's engine into the task's event channel, under
//! idle and wall-clock watchdogs, and gives the slot back (by dropping its guard) however the
//! task ends: completion, engine error, cancel or client disconnect.
//!
//! Tokens travel in batches: after each wake-up the runner takes every event the engine
//! stream has ready (a read from the engine usually holds many tokens) and hands them to the
//! task in one message, so the client's stream writes them in one go. A lone token is sent at
//! once. Each step is recorded through the task's [`lifecycle`](super::lifecycle).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use llorch_manifests::task::{Metrics, Token};
use llorch_manifests::{Endpoint, Workload};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::gate::InFlight;
use super::lifecycle::Step;
use super::task::{TaskEvent, TaskState};
use super::worker::Command;
use crate::dataplane::Placement;
use crate::engine::{EngineClient, EngineError, EngineEvent, TokenStream, Watchdog};
use crate::error::ApiError;

/// No token for this long: `DECODE_TIMEOUT`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole reply longer than this: `DECODE_TIMEOUT`.
pub const WALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Most tokens in one batch (a bound on one message, not a delay: a batch is what is ready).
const MAX_BATCH: usize = 256;

fn task_error(e: &EngineError, engine: &str) -> ApiError {
    let error = ApiError::new(e.code(), e.to_string()).engine(engine);
    if e.retriable() { error.retry_after_ms(0) } else { error }
}

/// The engine a task runs on.
pub struct Target {
    /// The replica's base URL.
    pub endpoint: Endpoint,
    /// The adapter for its API.
    pub client: Arc<dyn EngineClient>,
    /// `name version`, for `error.engine`.
    pub engine: String,
    /// The task's count on its container's retirement gate.
    pub in_flight: Option<InFlight>,
}

/// How the engine's stream ended for the task.
enum Outcome {
    /// Completed, failed with a recorded error, or stopped by a cancel or abort.
    Over,
    /// The engine is unreachable or dropped the connection: likely dead.
    EngineGone,
}

/// Runs `task` on the replica of `placement` at `target`.
pub async fn run(task: Arc<TaskState>, placement: Placement, target: Target, done: mpsc::Sender<Command>) {
    let Target {
        endpoint,
        client,
        engine,
        in_flight,
    } = target;
    let began = Instant::now();
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
    if task.request.workload == Workload::Embeddings {
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => Outcome::Over,
            _ = abort.cancelled() => Outcome::Over,
            r = tokio::time::timeout(WALL_TIMEOUT, client.embed(endpoint.as_str(), &task.request.generate).instrument(task.spans.engine_request())) => {
                embedded(&task, r, &engine, began)
            }
        };
        return finished(task, placement, in_flight, outcome, endpoint, began, done).await;
    }
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        _ = abort.cancelled() => None,
        // Under the engine request's span: the request carries its `traceparent`.
        r = client.generate(endpoint.as_str(), &task.request.generate).instrument(task.spans.engine_request()) => Some(r),
    };
    let outcome = match opened {
        None => Outcome::Over,
        Some(Err(e)) => fail(&task, &e, &engine),
        Some(Ok(stream)) => relay(&task, Watchdog::new(IDLE_TIMEOUT, WALL_TIMEOUT).wrap(stream), &engine).await,
    };
    finished(task, placement, in_flight, outcome, endpoint, began, done).await;
}

/// Gives the slot back, and the task's count on the container's gate, and tells the worker.
async fn finished(
    task: Arc<TaskState>,
    placement: Placement,
    in_flight: Option<InFlight>,
    outcome: Outcome,
    endpoint: Endpoint,
    began: Instant,
    done: mpsc::Sender<Command>,
) {
    // The stream (and the engine connection, which makes llama-server stop generating) is
    // dropped by now; then the slot, and the task's count on the container's gate.
    drop(placement);
    drop(in_flight);
    let failed_endpoint = matches!(outcome, Outcome::EngineGone).then_some(endpoint);
    let _ = done
        .send(Command::Finished {
            id: task.id.clone(),
            service: began.elapsed(),
            failed_endpoint,
            session: task
                .request
                .session_id
                .clone()
                .map(|s| (s, task.tokens_out(), task.request.generate.max_tokens)),
        })
        .await;
}

/// Records an embeddings answer (the engine's JSON, then `end` with its prompt count), or
/// what stopped it.
fn embedded(
    task: &TaskState,
    answer: Result<Result<serde_json::Value, EngineError>, tokio::time::error::Elapsed>,
    engine: &str,
    began: Instant,
) -> Outcome {
    let answer = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return fail(task, &e, engine),
        Err(_) => {
            let e = EngineError::Protocol(format!("no embeddings answer within {} s", WALL_TIMEOUT.as_secs()));
            return fail(task, &e, engine);
        }
    };
    let tokens_in = answer["usage"]["prompt_tokens"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok());
    if !task.send(TaskEvent::Embeddings(Box::new(answer))) {
        return Outcome::Over;
    }
    task.step(Step::Ended {
        tokens_out: 0,
        decode_time_ms: began.elapsed().as_millis() as u64,
        finish: llorch_manifests::task::FinishReason::Stop,
        tokens_in,
    });
    Outcome::Over
}

/// Relays the engine's reply to the task until it ends, is canceled or aborted.
async fn relay(task: &TaskState, mut stream: TokenStream, engine: &str) -> Outcome {
    let (cancel, abort) = (task.cancellation(), task.aborted());
    // One cancellation future each for the whole stream: building one per wake-up takes the
    // token's lock each time (it showed in the relay profile).
    let cancelled = cancel.cancelled();
    let aborted = abort.cancelled();
    tokio::pin!(cancelled, aborted);
    let mut index = 0u32;
    let mut first: Option<Instant> = None;
    let mut batch: Vec<Token> = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled => return Outcome::Over,
            _ = &mut aborted => return Outcome::Over,
            next = stream.next() => next,
        };
        // Everything else the engine has ready joins this wake-up's batch.
        let mut ready = Some(next);
        let mut last = None;
        while let Some(next) = ready.take() {
            match next {
                Some(Ok(EngineEvent::Token(t))) => {
                    batch.push(Token { t, i: index });
                    index += 1;
                    if batch.len() < MAX_BATCH {
                        ready = stream.next().now_or_never();
                    }
                }
                other => last = Some(other),
            }
        }
        if !batch.is_empty() && !emit(task, std::mem::take(&mut batch), &mut first) {
            return Outcome::Over;
        }
        match last {
            None => {}
            Some(Some(Ok(EngineEvent::Token(_)))) => {}
            Some(Some(Ok(EngineEvent::Delta(delta)))) => {
                let has_text = delta.content.is_some();
                if !task.emit_delta(index, delta) {
                    return Outcome::Over;
                }
                if has_text {
                    index += 1;
                    first_token(task, &mut first);
                }
            }
            Some(Some(Ok(EngineEvent::Done {
                tokens_out,
                finish,
                tokens_in,
            }))) => {
                let decode_time_ms = first.map(|f| f.elapsed().as_millis() as u64).unwrap_or(0);
                task.step(Step::Ended {
                    tokens_out,
                    decode_time_ms,
                    finish,
                    tokens_in,
                });
                return Outcome::Over;
            }
            Some(Some(Err(e))) => return fail(task, &e, engine),
            Some(None) => {
                let e = EngineError::Protocol("the engine's stream ended without a final event".into());
                return fail(task, &e, engine);
            }
        }
    }
}

/// Hands a batch of tokens to the task; false when its stream is gone.
fn emit(task: &TaskState, batch: Vec<Token>, first: &mut Option<Instant>) -> bool {
    let sent = task.emit_tokens(batch);
    first_token(task, first);
    sent
}

/// Marks the first token, once: after the tokens went, so the log line is not on the first
/// token's path.
fn first_token(task: &TaskState, first: &mut Option<Instant>) {
    if first.is_none() {
        *first = Some(Instant::now());
        task.step(Step::FirstToken);
    }
}

/// Records the engine's failure on the task.
fn fail(task: &TaskState, e: &EngineError, engine: &str) -> Outcome {
    task.step(Step::Failed(task_error(e, engine)));
    if matches!(e, EngineError::Connect { .. } | EngineError::Reset { .. }) {
        Outcome::EngineGone
    } else {
        Outcome::Over
    }
}
