//! The OpenAI-compatible API llama-server serves: `/v1/models`, `/v1/completions` and
//! `/v1/chat/completions`, streamed (`data: {chunk}` … `data: [DONE]`) or not. Shapes follow
//! llama-server's and satisfy the official `openai` SDK (ids, `object`, `created`, `usage`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::emitter::{Emitted, Emitter, Summary};
use crate::request::{ValidRequest, parse_chat, parse_completion};
use crate::sse::stream_response;
use crate::state::{AppState, BUILD_INFO, unix_now};
use crate::tokens::{VOCABULARY, splitmix64};

/// `GET /v1/models`: the one loaded model, under `--alias` (default: the model's file name).
pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.config.alias,
            "object": "model",
            "created": state.started_unix(),
            "owned_by": "llamacpp",
            "meta": {
                "vocab_type": 2,
                "n_vocab": VOCABULARY.len(),
                "n_ctx_train": state.config.ctx_size,
                "n_embd": 0,
                "n_params": 0,
                "size": state.model_size(),
            },
        }],
    }))
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let request = match parse_completion(&body, state.config.default_seed) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let emitter = match Emitter::start(Arc::clone(&state), &request, tally).await {
        Ok(emitter) => emitter,
        Err(err) => return err.into_response(),
    };
    let envelope = Envelope::new(&state, "cmpl", "text_completion");
    if request.stream {
        let render = move |emitted: Emitted| {
            match emitted {
            Emitted::Piece(piece) => vec![envelope.wrap(json!({
                "choices": [{ "text": piece.text, "index": 0, "logprobs": null, "finish_reason": null }],
            }))],
            Emitted::Done(summary) => vec![envelope.wrap(json!({
                "choices": [{ "text": "", "index": 0, "logprobs": null, "finish_reason": summary.stop_type.finish_reason() }],
                "usage": usage(&summary),
                "timings": summary.timings.to_json(),
            }))],
        }
        };
        return stream_response(emitter, render, true);
    }
    let summary = emitter.collect().await;
    Json(envelope.wrap(json!({
        "choices": [{
            "text": summary.content,
            "index": 0,
            "logprobs": null,
            "finish_reason": summary.stop_type.finish_reason(),
        }],
        "usage": usage(&summary),
        "timings": summary.timings.to_json(),
    })))
    .into_response()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let request = match parse_chat(&body, state.config.default_seed) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let emitter = match Emitter::start(Arc::clone(&state), &request, tally).await {
        Ok(emitter) => emitter,
        Err(err) => return err.into_response(),
    };
    if request.stream {
        let envelope = Envelope::new(&state, "chatcmpl", "chat.completion.chunk");
        return stream_response(emitter, chat_chunks(envelope, &request), true);
    }
    let envelope = Envelope::new(&state, "chatcmpl", "chat.completion");
    let summary = emitter.collect().await;
    Json(envelope.wrap(json!({
        "choices": [{
            "finish_reason": summary.stop_type.finish_reason(),
            "index": 0,
            "message": { "role": "assistant", "content": summary.content },
        }],
        "usage": usage(&summary),
        "timings": summary.timings.to_json(),
    })))
    .into_response()
}

/// Renders chat chunks: a role delta first, content deltas, a finish chunk, and a usage chunk
/// (empty `choices`) when the request asked for `stream_options.include_usage`.
fn chat_chunks(envelope: Envelope, request: &ValidRequest) -> impl FnMut(Emitted) -> Vec<Value> + Send + 'static {
    let include_usage = request.include_usage;
    let mut role_sent = false;
    let delta = move |envelope: &Envelope, delta: Value, finish_reason: Value| {
        envelope.wrap(json!({ "choices": [{ "finish_reason": finish_reason, "index": 0, "delta": delta }] }))
    };
    move |emitted: Emitted| {
        let mut chunks = Vec::new();
        if !role_sent {
            role_sent = true;
            chunks.push(delta(
                &envelope,
                json!({ "role": "assistant", "content": null }),
                Value::Null,
            ));
        }
        match emitted {
            Emitted::Piece(piece) => chunks.push(delta(&envelope, json!({ "content": piece.text }), Value::Null)),
            Emitted::Done(summary) => {
                let mut finish = delta(&envelope, json!({}), json!(summary.stop_type.finish_reason()));
                finish["timings"] = summary.timings.to_json();
                chunks.push(finish);
                if include_usage {
                    chunks.push(envelope.wrap(json!({ "choices": [], "usage": usage(&summary) })));
                }
            }
        }
        chunks
    }
}

fn usage(summary: &Summary) -> Value {
    json!({
        "completion_tokens": summary.tokens_predicted,
        "prompt_tokens": summary.tokens_evaluated,
        "total_tokens": summary.tokens_predicted + summary.tokens_evaluated,
        "prompt_tokens_details": { "cached_tokens": 0 },
    })
}

/// The fields every OpenAI response object and chunk of one request share.
#[derive(Debug, Clone)]
struct Envelope {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
}

impl Envelope {
    fn new(state: &AppState, prefix: &str, object: &'static str) -> Self {
        Self {
            id: response_id(prefix),
            object,
            created: unix_now(),
            model: state.config.alias.clone(),
        }
    }

    fn wrap(&self, mut body: Value) -> Value {
        body["id"] = json!(self.id);
        body["object"] = json!(self.object);
        body["created"] = json!(self.created);
        body["model"] = json!(self.model);
        body["system_fingerprint"] = json!(BUILD_INFO);
        body
    }
}

/// A unique-enough id like llama-server's (`chatcmpl-<32 chars>`); not part of determinism.
fn response_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let a = splitmix64(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32));
    let b = splitmix64(a ^ u64::from(std::process::id()));
    format!("{prefix}-{a:016x}{b:016x}")
}
