//! Drives one [`Generation`] in time: holds the slot, paces tokens (`--token-rate`), applies the
//! token faults, and records metrics. Yields protocol-neutral pieces; the protocol modules turn
//! them into JSON. Dropping an emitter (say, the client hung up) frees its slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::api_error::ApiError;
use crate::faults::Admission;
use crate::generation::{Advance, Generation, StopType};
use crate::request::ValidRequest;
use crate::slots::SlotGuard;
use crate::state::AppState;

/// Text ready to send, with the tokens it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Tokens generated so far in this reply.
    pub n_decoded: u32,
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub content: String,
    /// Every generated token, in order.
    pub token_ids: Vec<u32>,
    pub tokens_predicted: u32,
    pub tokens_evaluated: u32,
    pub stop_type: StopType,
    pub stopping_word: String,
    pub timings: Timings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Emitted {
    Piece(Piece),
    Done(Summary),
}

/// llama-server's `timings` object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub prompt_n: u32,
    pub prompt_ms: f64,
    pub predicted_n: u32,
    pub predicted_ms: f64,
}

impl Timings {
    pub fn to_json(self) -> Value {
        let per_token = |ms: f64, n: u32| if n > 0 { ms / f64::from(n) } else { 0.0 };
        let per_second = |ms: f64, n: u32| if ms > 0.0 { 1e3 / ms * f64::from(n) } else { 0.0 };
        json!({
            "cache_n": 0,
            "prompt_n": self.prompt_n,
            "prompt_ms": self.prompt_ms,
            "prompt_per_token_ms": per_token(self.prompt_ms, self.prompt_n),
            "prompt_per_second": per_second(self.prompt_ms, self.prompt_n),
            "predicted_n": self.predicted_n,
            "predicted_ms": self.predicted_ms,
            "predicted_per_token_ms": per_token(self.predicted_ms, self.predicted_n),
            "predicted_per_second": per_second(self.predicted_ms, self.predicted_n),
        })
    }
}

pub struct Emitter {
    state: Arc<AppState>,
    generation: Generation,
    slot: Option<SlotGuard>,
    id_slot: usize,
    id_task: u64,
    tally: TokenTally,
    prompt_tokens: u32,
    content: String,
    token_ids: Vec<u32>,
    n_decoded: u32,
    prompt_ms: f64,
    decode_started: Instant,
    pending_done: Option<Summary>,
}

impl Emitter {
    /// Checks the prompt fits a slot, then waits for a free slot (FIFO).
    pub async fn start(state: Arc<AppState>, request: &ValidRequest, tally: TokenTally) -> Result<Self, ApiError> {
        let n_ctx = state.config.n_ctx_slot();
        if request.prompt_tokens >= n_ctx {
            return Err(ApiError::exceeds_context(request.prompt_tokens, n_ctx));
        }
        let id_task = state.next_task_id();
        let slot = state.slots.acquire(i64::try_from(id_task).unwrap_or(i64::MAX)).await;
        slot.set_prompt(request.prompt_tokens);
        let prompt_started = Instant::now();
        let generation = Generation::new(&request.spec, n_ctx - request.prompt_tokens);
        let prompt_took = prompt_started.elapsed();
        state.metrics.record_prompt(request.prompt_tokens, prompt_took);
        Ok(Self {
            id_slot: slot.id(),
            slot: Some(slot),
            id_task,
            generation,
            tally,
            prompt_tokens: request.prompt_tokens,
            content: String::new(),
            token_ids: Vec::new(),
            n_decoded: 0,
            prompt_ms: ms(prompt_took),
            decode_started: Instant::now(),
            pending_done: None,
            state,
        })
    }

    pub fn id_slot(&self) -> usize {
        self.id_slot
    }

    pub fn id_task(&self) -> u64 {
        self.id_task
    }

    /// The next non-empty piece of text, or the end. Do not call again after [`Emitted::Done`].
    pub async fn next(&mut self) -> Emitted {
        if let Some(done) = self.pending_done.take() {
            return Emitted::Done(done);
        }
        let mut piece = Piece {
            text: String::new(),
            token_ids: Vec::new(),
            n_decoded: self.n_decoded,
        };
        loop {
            match self.generation.advance() {
                Advance::Token { id, text } => {
                    self.pace_and_admit().await;
                    self.n_decoded += 1;
                    self.record_token();
                    self.content.push_str(&text);
                    piece.text.push_str(&text);
                    piece.token_ids.push(id);
                    self.token_ids.push(id);
                    piece.n_decoded = self.n_decoded;
                    if !piece.text.is_empty() {
                        return Emitted::Piece(piece);
                    }
                }
                Advance::Finished {
                    text,
                    stop_type,
                    stopping_word,
                } => {
                    self.content.push_str(&text);
                    piece.text.push_str(&text);
                    let summary = self.finish(stop_type, stopping_word);
                    if piece.text.is_empty() {
                        return Emitted::Done(summary);
                    }
                    self.pending_done = Some(summary);
                    return Emitted::Piece(piece);
                }
            }
        }
    }

    /// Runs to the end (non-streaming requests).
    pub async fn collect(mut self) -> Summary {
        loop {
            if let Emitted::Done(summary) = self.next().await {
                return summary;
            }
        }
    }

    async fn pace_and_admit(&self) {
        match self.state.config.token_interval {
            Some(interval) => tokio::time::sleep(interval).await,
            None => tokio::task::yield_now().await,
        }
        match self.state.faults.admit() {
            Admission::Emit { then_crash } => {
                if then_crash {
                    self.state.faults.schedule_crash();
                }
            }
            Admission::Stall { crash } => {
                if crash {
                    self.state.faults.schedule_crash();
                }
                // A hung engine: never produce this token. Dropping the emitter still frees the slot.
                std::future::pending::<()>().await;
            }
        }
    }

    fn record_token(&self) {
        if let Some(slot) = &self.slot {
            slot.record_token();
        }
        self.state.metrics.record_token(self.state.slots.busy());
        self.tally.add(1);
    }

    fn finish(&mut self, stop_type: StopType, stopping_word: String) -> Summary {
        let took = self.decode_started.elapsed();
        self.state
            .metrics
            .record_generation(took, self.prompt_tokens + self.n_decoded);
        // Free the slot before the final message goes out, as llama-server does.
        self.slot = None;
        Summary {
            content: std::mem::take(&mut self.content),
            token_ids: std::mem::take(&mut self.token_ids),
            tokens_predicted: self.n_decoded,
            tokens_evaluated: self.prompt_tokens,
            stop_type,
            stopping_word,
            timings: Timings {
                prompt_n: self.prompt_tokens,
                prompt_ms: self.prompt_ms,
                predicted_n: self.n_decoded,
                predicted_ms: ms(took),
            },
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
