//! Hugging Face text-generation-inference's native API: `POST /generate`, `POST /generate_stream`
//! and `GET /info`, in TGI's shapes, so the product's TGI adapter can be tested.
//!
//! Tokens come from the same mock model as the other APIs. As in TGI, a stop sequence ends the
//! reply *including* the sequence (`finish_reason: "stop_sequence"`), validation errors are 422
//! `{"error","error_type":"validation"}`, unknown `parameters` fields are refused, and an error
//! after the stream started is an event `data: {"error","error_type":"generation"}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::emitter::{Emitted, Emitter};
use crate::generation::{GenerationSpec, StopType};
use crate::logprobs::token_logprob;
use crate::request::{DEFAULT_TOP_P, ValidRequest};
use crate::state::AppState;
use crate::tokens::{Sampling, count_prompt_tokens, token_text};

/// TGI's `max_new_tokens` when a request gives none.
pub const DEFAULT_MAX_NEW_TOKENS: u32 = 100;

/// A refusal in TGI's shape; the same value renders as an HTTP body or an SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgiError {
    pub error_type: &'static str,
    pub message: String,
}

impl TgiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self {
            error_type: "validation",
            message: message.into(),
        }
    }

    pub fn generation(message: impl Into<String>) -> Self {
        Self {
            error_type: "generation",
            message: message.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.message, "error_type": self.error_type })
    }
}

impl IntoResponse for TgiError {
    fn into_response(self) -> Response {
        let status = match self.error_type {
            "validation" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.body())).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct GenerateBody {
    inputs: String,
    #[serde(default)]
    parameters: Parameters,
}

/// TGI's `GenerateParameters`; only the fields marked are used, the rest are accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Accepted for TGI compatibility; their values are not used.
struct Parameters {
    best_of: Option<Value>,
    temperature: Option<f64>,
    repetition_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    top_k: Option<i64>,
    top_p: Option<f64>,
    typical_p: Option<f64>,
    #[serde(default)]
    do_sample: bool,
    max_new_tokens: Option<u32>,
    #[serde(default)]
    return_full_text: Option<bool>,
    #[serde(default)]
    stop: Vec<String>,
    truncate: Option<Value>,
    watermark: Option<bool>,
    #[serde(default)]
    details: bool,
    decoder_input_details: Option<bool>,
    seed: Option<u64>,
    top_n_tokens: Option<Value>,
    grammar: Option<Value>,
    adapter_id: Option<Value>,
}

/// A validated TGI request.
#[derive(Debug, Clone)]
struct TgiRequest {
    request: ValidRequest,
    inputs: String,
    stop: Vec<String>,
    details: bool,
    return_full_text: bool,
    /// Reported in `details.seed` when sampling.
    seed: Option<u64>,
}

fn parse(body: &[u8], default_seed: u64, max_total_tokens: u32) -> Result<TgiRequest, TgiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let body: GenerateBody = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        TgiError::validation(format!(
            "Failed to deserialize the JSON body into the target type: {}: {}",
            err.path(),
            err.inner()
        ))
    })?;
    let p = body.parameters;
    if body.inputs.is_empty() {
        return Err(TgiError::validation("Input validation error: `inputs` cannot be empty"));
    }
    if p.temperature.is_some_and(|t| t <= 0.0) {
        return Err(TgiError::validation(
            "Input validation error: `temperature` must be strictly positive",
        ));
    }
    if p.top_p.is_some_and(|t| t <= 0.0 || t >= 1.0) {
        return Err(TgiError::validation(
            "Input validation error: `top_p` must be > 0.0 and < 1.0",
        ));
    }
    if p.top_k.is_some_and(|k| k <= 0) {
        return Err(TgiError::validation(
            "Input validation error: `top_k` must be strictly positive",
        ));
    }
    let max_new_tokens = p.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS);
    if max_new_tokens == 0 {
        return Err(TgiError::validation(
            "Input validation error: `max_new_tokens` must be strictly positive",
        ));
    }
    let input_length = count_prompt_tokens(&body.inputs);
    if input_length.saturating_add(max_new_tokens) > max_total_tokens {
        return Err(TgiError::validation(format!(
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= {max_total_tokens}. \
             Given: {input_length} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )));
    }
    let sampling_on = p.do_sample || p.temperature.is_some() || p.top_p.is_some() || p.top_k.is_some();
    let seed = p.seed.unwrap_or(default_seed);
    let sampling = Sampling {
        seed,
        // TGI decodes greedily unless asked to sample.
        temperature: if sampling_on { p.temperature.unwrap_or(1.0) } else { 0.0 },
        top_p: p.top_p.unwrap_or(DEFAULT_TOP_P),
    };
    let request = ValidRequest {
        spec: GenerationSpec {
            prompt: body.inputs.clone(),
            sampling,
            n_predict: Some(max_new_tokens),
            // TGI keeps the stop sequence in the text, so the check is done here, not by the scanner.
            stop: Vec::new(),
        },
        prompt_tokens: input_length,
        stream: false,
        include_usage: false,
        logprobs: None,
    };
    Ok(TgiRequest {
        request,
        inputs: body.inputs,
        stop: p.stop,
        details: p.details,
        return_full_text: p.return_full_text.unwrap_or(false),
        seed: sampling_on.then_some(seed),
    })
}

/// One generated token as TGI reports it.
fn token_json(id: u32, position: u32) -> Value {
    json!({
        "id": id,
        "text": token_text(id),
        "logprob": token_logprob(id, position, 0).logprob,
        "special": false,
    })
}

/// Drives an [`Emitter`] and turns its tokens into TGI stream events, one token behind so that
/// the last token's event can carry `generated_text` and `details`.
struct TgiRun {
    emitter: Option<Emitter>,
    tgi: TgiRequest,
    held: Option<Value>,
    text: String,
    tokens: Vec<Value>,
    /// Set with the last event.
    finish_reason: Option<&'static str>,
}

impl TgiRun {
    /// The next events; `None` once the last event was sent.
    async fn next_events(&mut self) -> Option<Vec<Value>> {
        let emitter = self.emitter.as_mut()?;
        match emitter.next().await {
            Emitted::Piece(piece) => {
                let mut events: Vec<Value> = self.held.take().into_iter().collect();
                let first = piece.n_decoded - u32::try_from(piece.token_ids.len()).unwrap_or(0);
                for (id, position) in piece.token_ids.iter().zip(first..) {
                    self.text.push_str(token_text(*id));
                    let token = token_json(*id, position);
                    self.tokens.push(token.clone());
                    let event =
                        json!({ "index": position + 1, "token": token, "generated_text": null, "details": null });
                    if let Some(held) = self.held.replace(event) {
                        events.push(held);
                    }
                    if self
                        .tgi
                        .stop
                        .iter()
                        .any(|stop| !stop.is_empty() && self.text.contains(stop.as_str()))
                    {
                        // Dropping the emitter ends the generation and frees the slot.
                        self.emitter = None;
                        events.extend(self.finish("stop_sequence"));
                        return Some(events);
                    }
                }
                Some(events)
            }
            Emitted::Done(summary) => {
                self.emitter = None;
                let reason = match summary.stop_type {
                    StopType::Eos => "eos_token",
                    StopType::Word => "stop_sequence",
                    StopType::Limit => "length",
                };
                match self.finish(reason) {
                    Some(last) => Some(vec![last]),
                    None => Some(vec![TgiError::generation("no token was generated").body()]),
                }
            }
        }
    }

    /// The held event, completed as the last one.
    fn finish(&mut self, finish_reason: &'static str) -> Option<Value> {
        let mut last = self.held.take()?;
        last["generated_text"] = json!(self.generated_text());
        if self.tgi.details {
            last["details"] = self.details(finish_reason, false);
        }
        self.finish_reason = Some(finish_reason);
        Some(last)
    }

    fn generated_text(&self) -> String {
        match self.tgi.return_full_text {
            true => format!("{}{}", self.tgi.inputs, self.text),
            false => self.text.clone(),
        }
    }

    fn details(&self, finish_reason: &str, with_tokens: bool) -> Value {
        let mut details = json!({
            "finish_reason": finish_reason,
            "generated_tokens": self.tokens.len(),
            "seed": self.tgi.seed,
            "input_length": self.tgi.request.prompt_tokens,
        });
        if with_tokens {
            details["prefill"] = json!([]);
            details["tokens"] = json!(self.tokens);
        }
        details
    }
}

async fn start(state: Arc<AppState>, body: &[u8], tally: TokenTally) -> Result<TgiRun, TgiError> {
    let tgi = parse(body, state.config.default_seed, state.config.n_ctx_slot())?;
    let emitter = Emitter::start(state, &tgi.request, tally)
        .await
        .map_err(|err| TgiError::validation(err.body()["error"]["message"].as_str().unwrap_or_default()))?;
    Ok(TgiRun {
        emitter: Some(emitter),
        tgi,
        held: None,
        text: String::new(),
        tokens: Vec::new(),
        finish_reason: None,
    })
}

/// `POST /generate_stream`: `data: {"index","token","generated_text","details"}` per token.
pub async fn generate_stream(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let run = match start(state, &body, tally).await {
        Ok(run) => run,
        Err(err) => return err.into_response(),
    };
    let events = stream::unfold(run, |mut run| async move {
        let events = run.next_events().await?;
        Some((events, run))
    })
    .flat_map(stream::iter)
    .map(|event| Ok::<_, Infallible>(Event::default().data(event.to_string())));
    Sse::new(events).into_response()
}

/// `POST /generate`: `{"generated_text", "details"?}` (details only when asked, as TGI).
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let mut run = match start(state, &body, tally).await {
        Ok(run) => run,
        Err(err) => return err.into_response(),
    };
    let mut last = Value::Null;
    while let Some(events) = run.next_events().await {
        if let Some(event) = events.into_iter().last() {
            last = event;
        }
    }
    if last.get("error").is_some() {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(last)).into_response();
    }
    let finish_reason = run.finish_reason.unwrap_or("length");
    let mut reply = json!({ "generated_text": run.generated_text() });
    if run.tgi.details {
        reply["details"] = run.details(finish_reason, true);
    }
    Json(reply).into_response()
}

/// `GET /info`.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let max_total_tokens = state.config.n_ctx_slot();
    Json(json!({
        "model_id": state.config.alias,
        "max_total_tokens": max_total_tokens,
        "max_input_tokens": max_total_tokens.saturating_sub(1),
        "max_concurrent_requests": state.config.parallel,
        "version": "mock",
    }))
}
