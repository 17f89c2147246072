//! Response objects and stream chunks in OpenAI's shapes — `chat.completion`,
//! `chat.completion.chunk`, `text_completion` — built from a task's events. Pure: no I/O, no
//! channels; [`super::stream`] drives them.
//!
//! Usage: `completion_tokens` is the engine's count (the `end` event); `prompt_tokens` is the
//! data plane's admission estimate (bytes/4 plus 4 per chat message, see
//! [`crate::tasks::validate`]), since the engine edge does not report the prompt's real count.
//! `finish_reason` is `length` when the reply used all of `max_tokens`, else `stop`.

use llorch_manifests::task::{End, TaskError};
use serde::Serialize;
use serde_json::{Value, json};

use super::request::Endpoint;
use crate::error::ApiError;
use crate::tasks::task::TaskEvent;

/// Token counts of one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens (estimated at admission).
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
}

/// `length` when the reply used all of `max_tokens`, else `stop`.
pub fn finish_reason(tokens_out: u32, max_tokens: u32) -> &'static str {
    if tokens_out >= max_tokens { "length" } else { "stop" }
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
    /// The task's `max_tokens`, for `finish_reason`.
    pub max_tokens: u32,
    /// The task's estimated prompt tokens, for `usage`.
    pub prompt_tokens: u32,
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
            max_tokens: 0,
            prompt_tokens: 0,
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

    fn usage_of(&self, end: &End) -> Usage {
        Usage::new(self.prompt_tokens, end.tokens_out)
    }

    /// The whole reply (non-streaming).
    pub fn completion(&self, text: &str, end: &End) -> Value {
        let finish = finish_reason(end.tokens_out, self.max_tokens);
        let (object, choice) = match self.endpoint {
            Endpoint::Chat => (
                "chat.completion",
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": null}),
            ),
            Endpoint::Completions => (
                "text_completion",
                json!({"index": 0, "text": text, "finish_reason": finish, "logprobs": null}),
            ),
        };
        let mut v = self.object(object, json!([choice]));
        v["usage"] = json!(self.usage_of(end));
        v
    }

    fn chunk(&self, content: Option<&str>, role: bool, finish: Option<&str>) -> Value {
        match self.endpoint {
            Endpoint::Chat => {
                let mut delta = json!({});
                if role {
                    delta["role"] = json!("assistant");
                }
                if let Some(c) = content {
                    delta["content"] = json!(c);
                }
                self.object(
                    "chat.completion.chunk",
                    json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]),
                )
            }
            Endpoint::Completions => self.object(
                "text_completion",
                json!([{"index": 0, "text": content.unwrap_or(""), "finish_reason": finish, "logprobs": null}]),
            ),
        }
    }

    /// Frames sent as soon as the stream opens: the chat role chunk (none for completions).
    pub fn opening(&self) -> Vec<String> {
        match self.endpoint {
            Endpoint::Chat => vec![self.chunk(Some(""), true, None).to_string()],
            Endpoint::Completions => Vec::new(),
        }
    }

    /// One token's chunk.
    pub fn token(&self, text: &str) -> String {
        self.chunk(Some(text), false, None).to_string()
    }

    /// The last frames of a completed stream: the finish chunk, the usage chunk when asked,
    /// then `[DONE]`.
    pub fn end(&self, end: &End) -> Vec<String> {
        let finish = finish_reason(end.tokens_out, self.max_tokens);
        let mut frames = vec![self.chunk(None, false, Some(finish)).to_string()];
        if self.include_usage {
            let mut usage = self.object(self.chunk_object(), json!([]));
            usage["usage"] = json!(self.usage_of(end));
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
        TaskEvent::Started(_) | TaskEvent::Metrics(_) => Step::More(Vec::new()),
        TaskEvent::Tokens(tokens) => Step::More(tokens.iter().map(|t| env.token(&t.t)).collect()),
        TaskEvent::End(end) => Step::Last(env.end(end)),
        TaskEvent::Error(e) => Step::Last(error_frames(&ApiError::from_task_error(e.clone()))),
    }
}

/// A non-streaming reply being collected.
#[derive(Debug, Default)]
pub struct Collector {
    text: String,
}

/// How a collected reply ended.
#[derive(Debug, PartialEq)]
pub enum Collected {
    /// Completed: the text and the `end` event.
    Done(String, End),
    /// Failed after admission.
    Failed(TaskError),
}

impl Collector {
    /// Takes one event; `Some` once the reply is over.
    pub fn push(&mut self, ev: TaskEvent) -> Option<Collected> {
        match ev {
            TaskEvent::Started(_) | TaskEvent::Metrics(_) => None,
            TaskEvent::Tokens(tokens) => {
                for t in tokens {
                    self.text.push_str(&t.t);
                }
                None
            }
            TaskEvent::End(end) => Some(Collected::Done(std::mem::take(&mut self.text), end)),
            TaskEvent::Error(e) => Some(Collected::Failed(e)),
        }
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
