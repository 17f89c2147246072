//! Response objects and stream chunks in OpenAI's shapes — `chat.completion`,
//! `chat.completion.chunk`, `text_completion` — built from a task's events. Pure: no I/O, no
//! channels; [`super::stream`] drives them, [`super::reply`] collects a whole reply.
//!
//! What the engine said is relayed as it said it: `finish_reason`, `usage` (the engine's own
//! prompt and completion counts; the prompt count admission used when the engine gave none),
//! and each chunk's `reasoning_content`, `tool_calls` and `logprobs`, unchanged.

use llorch_manifests::task::End;
use serde::Serialize;
use serde_json::{Value, json};

use super::request::Endpoint;
use crate::engine::Delta;
use crate::error::ApiError;
use crate::tasks::task::TaskEvent;

/// Token counts of one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

impl Usage {
    /// Counts for a reply of `completion_tokens` after `prompt_tokens`.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }

    /// The counts of a completed task.
    pub fn of(end: &End) -> Self {
        Self::new(end.tokens_in, end.tokens_out)
    }
}

/// What every object of one reply shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Which shapes to use.
    pub endpoint: Endpoint,
    /// `chatcmpl-<task id>` or `cmpl-<task id>`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model to echo.
    pub model: String,
    /// `<engine>@<version>`: same fingerprint and seed, same tokens (ORCH-3045).
    pub fingerprint: Option<String>,
    /// Stream option: `usage: null` on every chunk and a usage chunk at the end.
    pub include_usage: bool,
}

impl Envelope {
    /// An envelope for task `task_id`.
    pub fn new(endpoint: Endpoint, task_id: &str, model: String) -> Self {
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completions => "cmpl",
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            endpoint,
            id: format!("{prefix}-{task_id}"),
            created,
            model,
            fingerprint: None,
            include_usage: false,
        }
    }

    fn object(&self, object: &str, choices: Value) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The whole reply (non-streaming): `message` (chat) or `text` (completions) and the
    /// choice's `logprobs` come from `reply`.
    pub fn completion(&self, reply: super::reply::Reply, end: &End) -> Value {
        let finish = end.finish_reason.as_str();
        let (object, choice) = match self.endpoint {
            Endpoint::Chat => (
                "chat.completion",
                json!({"index": 0, "message": reply.message(), "finish_reason": finish, "logprobs": reply.logprobs}),
            ),
            Endpoint::Completions => (
                "text_completion",
                json!({"index": 0, "text": reply.text, "finish_reason": finish, "logprobs": reply.logprobs}),
            ),
        };
        let mut v = self.object(object, json!([choice]));
        v["usage"] = json!(Usage::of(end));
        v
    }

    /// One stream chunk: `delta` (chat) or `text` (completions), the choice's `logprobs`, a
    /// `finish_reason`.
    fn chunk(&self, delta: Value, logprobs: Value, finish: Option<&str>) -> Value {
        match self.endpoint {
            Endpoint::Chat => self.object(
                "chat.completion.chunk",
                json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]),
            ),
            Endpoint::Completions => {
                let text = delta.get("content").cloned().unwrap_or(json!(""));
                self.object(
                    "text_completion",
                    json!([{"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}]),
                )
            }
        }
    }

    /// Frames sent as soon as the stream opens: the chat role chunk (none for completions).
    pub fn opening(&self) -> Vec<String> {
        match self.endpoint {
            Endpoint::Chat => vec![
                self.chunk(json!({"role": "assistant", "content": ""}), Value::Null, None)
                    .to_string(),
            ],
            Endpoint::Completions => Vec::new(),
        }
    }

    /// One token's chunk.
    pub fn token(&self, text: &str) -> String {
        self.chunk(json!({"content": text}), Value::Null, None).to_string()
    }

    /// A chunk with more than text, its parts as the engine sent them.
    pub fn delta(&self, d: &Delta) -> String {
        let mut delta = json!({});
        if let Some(c) = &d.content {
            delta["content"] = json!(c);
        }
        if let Some(r) = &d.reasoning {
            delta["reasoning_content"] = json!(r);
        }
        if let Some(calls) = &d.tool_calls {
            delta["tool_calls"] = raw(calls);
        }
        let logprobs = d.logprobs.as_deref().map(raw).unwrap_or(Value::Null);
        self.chunk(delta, logprobs, None).to_string()
    }

    /// The last frames of a completed stream: the finish chunk, the usage chunk when asked,
    /// then `[DONE]`.
    pub fn end(&self, end: &End) -> Vec<String> {
        let finish = end.finish_reason.as_str();
        let mut frames = vec![self.chunk(json!({}), Value::Null, Some(finish)).to_string()];
        if self.include_usage {
            let mut usage = self.object(self.chunk_object(), json!([]));
            usage["usage"] = json!(Usage::of(end));
            frames.push(usage.to_string());
        }
        frames.push(DONE.to_string());
        frames
    }

    fn chunk_object(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        }
    }
}

/// A raw JSON piece as a value (it was valid JSON when the engine's chunk was read).
pub(super) fn raw(r: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(r.get()).unwrap_or(Value::Null)
}

/// The stream's terminator.
pub const DONE: &str = "[DONE]";

/// The last frames of a stream that failed after it began: the error object, then `[DONE]`.
pub fn error_frames(e: &ApiError) -> Vec<String> {
    vec![e.openai_body().to_string(), DONE.to_string()]
}

/// Where a task's event leaves a stream.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Frames to send; the stream goes on.
    More(Vec<String>),
    /// Frames to send; nothing follows.
    Last(Vec<String>),
}

/// The frames for one task event (tokens already let through the cancel gate).
pub fn frames_for(env: &Envelope, ev: &TaskEvent) -> Step {
    match ev {
        // Embeddings are answered whole, never streamed.
        TaskEvent::Started(_) | TaskEvent::Metrics(_) | TaskEvent::Embeddings(_) => Step::More(Vec::new()),
        TaskEvent::Tokens(tokens) => Step::More(tokens.iter().map(|t| env.token(&t.t)).collect()),
        TaskEvent::Delta { delta, .. } => Step::More(vec![env.delta(delta)]),
        TaskEvent::End(end) => Step::Last(env.end(end)),
        TaskEvent::Error(e) => Step::Last(error_frames(&ApiError::from_task_error(e.clone()))),
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
