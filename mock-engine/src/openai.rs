//! The OpenAI-compatible API llama-server serves: `/v1/models` and `/v1/completions` (chat is
//! in [`crate::chat`]), streamed (`data: {chunk}` … `data: [DONE]`) or not. Shapes follow
//! llama-server's and satisfy the official `openai` SDK (ids, `object`, `created`, `usage`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::emitter::{Emitted, Emitter, Summary};
use crate::envelope::{self, Envelope};
use crate::logprobs;
use crate::request::parse_completion;
use crate::sse::stream_response;
use crate::state::AppState;
use crate::tokens::VOCABULARY;

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
    let top = request.logprobs;
    if request.stream {
        // Bytes of text sent so far: the legacy `text_offset` of the next token.
        let mut offset = 0;
        let render = move |emitted: Emitted| {
            match emitted {
            Emitted::Piece(piece) => {
                let logprobs = top.map_or(Value::Null, |top| {
                    let first = piece.n_decoded - u32::try_from(piece.token_ids.len()).unwrap_or(0);
                    logprobs::legacy_json(&logprobs::for_tokens(&piece.token_ids, first, top), offset)
                });
                offset += piece.text.len();
                vec![envelope.wrap(json!({
                    "choices": [{ "text": piece.text, "index": 0, "logprobs": logprobs, "finish_reason": null }],
                }))]
            }
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
    let logprobs = top.map_or(Value::Null, |top| {
        logprobs::legacy_json(&logprobs::for_tokens(&summary.token_ids, 0, top), 0)
    });
    Json(envelope.wrap(json!({
        "choices": [{
            "text": summary.content,
            "index": 0,
            "logprobs": logprobs,
            "finish_reason": summary.stop_type.finish_reason(),
        }],
        "usage": usage(&summary),
        "timings": summary.timings.to_json(),
    })))
    .into_response()
}

fn usage(summary: &Summary) -> Value {
    envelope::usage(summary.tokens_evaluated, summary.tokens_predicted)
}
