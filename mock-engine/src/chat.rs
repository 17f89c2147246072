//! `POST /v1/chat/completions`: text replies (optionally preceded by reasoning and by the quoted
//! tool result), and tool-call replies, streamed in OpenAI's chunk shape or whole.
//!
//! Decisions about *what* the reply holds live in [`crate::request`], [`crate::tools`] and
//! [`crate::reasoning`]; this module turns them into JSON. A tool-call reply is complete before
//! it is sent: it takes no slot, no pacing and no token faults.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::emitter::{Emitted, Emitter};
use crate::envelope::{Envelope, usage};
use crate::request::{ValidChat, parse_chat};
use crate::sse::{stream_response, stream_values};
use crate::state::AppState;
use crate::tools::ToolCall;
use crate::{logprobs, reasoning};

/// The text a reply to a `tool` message starts with, before the tool's answer.
pub const TOOL_RESULT_PREFIX: &str = "Tool result: ";

/// What comes before the generated content.
#[derive(Debug, Clone, Default)]
struct Opening {
    reasoning: Vec<String>,
    /// `Tool result: …`, or empty.
    content: String,
}

impl Opening {
    fn of(chat: &ValidChat) -> Self {
        Self {
            reasoning: if chat.reasoning {
                reasoning::pieces(&chat.request.spec)
            } else {
                Vec::new()
            },
            content: chat
                .tool_result
                .as_ref()
                .map(|result| format!("{TOOL_RESULT_PREFIX}{result}"))
                .unwrap_or_default(),
        }
    }

    /// Reasoning pieces count as generated tokens; the quoted tool result does not.
    fn tokens(&self) -> u32 {
        u32::try_from(self.reasoning.len()).unwrap_or(u32::MAX)
    }

    /// `message` fields for a whole reply whose generated content is `generated`.
    fn message(&self, generated: &str) -> Value {
        let mut message = json!({ "role": "assistant", "content": format!("{}{generated}", self.content) });
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning.concat());
        }
        message
    }

    /// The streamed deltas before the generated content.
    fn deltas(&self) -> Vec<Value> {
        let reasoning = self.reasoning.iter().map(|piece| json!({ "reasoning_content": piece }));
        let content = (!self.content.is_empty()).then(|| json!({ "content": self.content }));
        reasoning.chain(content).collect()
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let chat = match parse_chat(&body, state.config.default_seed) {
        Ok(chat) => chat,
        Err(err) => return err.into_response(),
    };
    let opening = Opening::of(&chat);
    if let Some(call) = &chat.tool_call {
        return tool_call_reply(&state, &chat, call, &opening);
    }
    let request = &chat.request;
    let emitter = match Emitter::start(Arc::clone(&state), request, tally).await {
        Ok(emitter) => emitter,
        Err(err) => return err.into_response(),
    };
    if request.stream {
        let envelope = Envelope::new(&state, "chatcmpl", "chat.completion.chunk");
        return stream_response(emitter, text_chunks(envelope, &chat, opening), true);
    }
    let envelope = Envelope::new(&state, "chatcmpl", "chat.completion");
    let summary = emitter.collect().await;
    Json(envelope.wrap(json!({
        "choices": [{
            "finish_reason": summary.stop_type.finish_reason(),
            "index": 0,
            "message": opening.message(&summary.content),
            "logprobs": request.logprobs.map_or(Value::Null, |top| {
                logprobs::chat_json(&logprobs::for_tokens(&summary.token_ids, 0, top))
            }),
        }],
        "usage": usage(summary.tokens_evaluated, summary.tokens_predicted + opening.tokens()),
        "timings": summary.timings.to_json(),
    })))
    .into_response()
}

/// Renders a text reply's chunks: a role delta, the opening, content deltas, a finish chunk,
/// and a usage chunk (empty `choices`) when the request asked for `stream_options.include_usage`.
fn text_chunks(
    envelope: Envelope,
    chat: &ValidChat,
    opening: Opening,
) -> impl FnMut(Emitted) -> Vec<Value> + Send + 'static {
    let include_usage = chat.request.include_usage;
    let top = chat.request.logprobs;
    let extra_tokens = opening.tokens();
    let mut first = Some(opening_chunks(&envelope, &opening));
    move |emitted: Emitted| {
        let mut chunks = first.take().unwrap_or_default();
        match emitted {
            Emitted::Piece(piece) => {
                let mut content = chunk(&envelope, json!({ "content": piece.text }), Value::Null);
                if let Some(top) = top {
                    let first = piece.n_decoded - u32::try_from(piece.token_ids.len()).unwrap_or(0);
                    let entries = logprobs::for_tokens(&piece.token_ids, first, top);
                    content["choices"][0]["logprobs"] = logprobs::chat_json(&entries);
                }
                chunks.push(content);
            }
            Emitted::Done(summary) => {
                let mut finish = chunk(&envelope, json!({}), json!(summary.stop_type.finish_reason()));
                finish["timings"] = summary.timings.to_json();
                chunks.push(finish);
                if include_usage {
                    let usage = usage(summary.tokens_evaluated, summary.tokens_predicted + extra_tokens);
                    chunks.push(envelope.wrap(json!({ "choices": [], "usage": usage })));
                }
            }
        }
        chunks
    }
}

fn opening_chunks(envelope: &Envelope, opening: &Opening) -> Vec<Value> {
    let role = chunk(envelope, json!({ "role": "assistant", "content": null }), Value::Null);
    std::iter::once(role)
        .chain(
            opening
                .deltas()
                .into_iter()
                .map(|delta| chunk(envelope, delta, Value::Null)),
        )
        .collect()
}

fn chunk(envelope: &Envelope, delta: Value, finish_reason: Value) -> Value {
    envelope.wrap(json!({ "choices": [{ "finish_reason": finish_reason, "index": 0, "delta": delta }] }))
}

fn tool_call_reply(state: &AppState, chat: &ValidChat, call: &ToolCall, opening: &Opening) -> Response {
    let prompt_tokens = chat.request.prompt_tokens;
    let usage = usage(prompt_tokens, call.completion_tokens() + opening.tokens());
    if !chat.request.stream {
        let envelope = Envelope::new(state, "chatcmpl", "chat.completion");
        let mut message = call.message_json();
        if !opening.reasoning.is_empty() {
            message["reasoning_content"] = json!(opening.reasoning.concat());
        }
        return Json(envelope.wrap(json!({
            "choices": [{ "finish_reason": "tool_calls", "index": 0, "message": message }],
            "usage": usage,
        })))
        .into_response();
    }
    let envelope = Envelope::new(state, "chatcmpl", "chat.completion.chunk");
    let reasoning_only = Opening {
        reasoning: opening.reasoning.clone(),
        content: String::new(),
    };
    let mut chunks = opening_chunks(&envelope, &reasoning_only);
    chunks.extend(
        call.deltas()
            .into_iter()
            .map(|delta| chunk(&envelope, delta, Value::Null)),
    );
    chunks.push(chunk(&envelope, json!({}), json!("tool_calls")));
    if chat.request.include_usage {
        chunks.push(envelope.wrap(json!({ "choices": [], "usage": usage })));
    }
    stream_values(chunks)
}
