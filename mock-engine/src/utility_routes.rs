//! llama-server's utility routes: `POST /tokenize`, `/detokenize` and `/apply-template`, in
//! llama-server's shapes, over the mock [`crate::tokenizer`] and [`crate::chat_template`] (the
//! same ones chat replies and `usage.prompt_tokens` use).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::chat_template::{self, ChatMessage};
use crate::request::decode;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct TokenizeBody {
    #[serde(default)]
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default)]
    with_pieces: bool,
}

/// `POST /tokenize`: `{"tokens":[ids]}`, or `{"tokens":[{"id","piece"}]}` with `with_pieces`.
pub async fn tokenize(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let body: TokenizeBody = match decode(&body) {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let tokens = state.tokenizer.tokenize(&body.content, body.add_special);
    let tokens: Vec<Value> = tokens
        .into_iter()
        .map(|(id, piece)| match body.with_pieces {
            true => json!({ "id": id, "piece": piece }),
            false => json!(id),
        })
        .collect();
    Json(json!({ "tokens": tokens })).into_response()
}

#[derive(Debug, Deserialize)]
struct DetokenizeBody {
    #[serde(default)]
    tokens: Vec<u32>,
}

/// `POST /detokenize`: `{"content": text}`.
pub async fn detokenize(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match decode::<DetokenizeBody>(&body) {
        Ok(body) => Json(json!({ "content": state.tokenizer.detokenize(&body.tokens) })).into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ApplyTemplateBody {
    messages: Option<Vec<ChatMessage>>,
}

/// `POST /apply-template`: `{"prompt": text}`, the prompt a chat request with these messages reads.
pub async fn apply_template(body: Bytes) -> Response {
    let messages = match decode::<ApplyTemplateBody>(&body) {
        Ok(ApplyTemplateBody {
            messages: Some(messages),
        }) => messages,
        Ok(_) => return ApiError::invalid_request("messages: is required").into_response(),
        Err(err) => return err.into_response(),
    };
    match chat_template::render(&messages) {
        Ok(prompt) => Json(json!({ "prompt": prompt })).into_response(),
        Err(err) => err.into_response(),
    }
}
