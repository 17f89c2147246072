//! OpenAI request bodies and their mapping onto the native [`TaskRequest`].
//!
//! Decisions, so the two front doors admit the same tasks:
//! - `model` names a Pool (pinned: never placed elsewhere) or, when no Pool has that name, a
//!   Model (any Pool serving it). Absent, the only Pool is used, as on `/v2/tasks`.
//! - `max_completion_tokens` wins over `max_tokens`; with neither, the default is
//!   [`DEFAULT_MAX_TOKENS`] capped by what the pool's context leaves after the prompt.
//! - Priority: a body field `priority`, else the `X-Priority` header, else `interactive`.
//! - `n` > 1 is refused (one task, one stream).
//! - Every other field of the body (tools, `response_format`, `logprobs`, penalties, engine
//!   extras …) is kept as the client wrote it ([`parse`]) and relayed to the engine, or refused
//!   at admission when the chosen Pool's engine cannot honour it
//!   ([`crate::engine::fields`]). The messages relayed are the client's own, `tool_calls`,
//!   `tool_call_id` and all; the typed reading below only feeds validation and estimates.
//! - Message content may be a string or a list of `text` parts (joined with newlines); other
//!   parts (images, audio) are refused. `developer` messages count as `system`.
//!
//! Range checks (temperature, top_p, stop, context) stay in [`crate::tasks::validate`].

use std::sync::Arc;

use llorch_manifests::task::{ChatMessage, Priority, TaskRequest};
use serde::Deserialize;
use serde_json::Value;

use crate::engine::fields::{ClientFields, Surface};
use crate::error::ApiError;

/// Body fields the data plane sets or reads itself: never relayed as written.
pub const DATA_PLANE_FIELDS: [&str; 8] = [
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "priority",
    "session_id",
];

/// Reads a body: its typed view, and the client's other fields to relay.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<(OpenAiRequest, ClientFields), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    let typed = OpenAiRequest::deserialize(&value).map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::invalid("request body: must be a JSON object"));
    };
    fields.retain(|name, _| !DATA_PLANE_FIELDS.contains(&name.as_str()));
    let surface = match endpoint {
        Endpoint::Chat => Surface::Chat,
        Endpoint::Completions => Surface::Completions,
    };
    Ok((
        typed,
        ClientFields {
            surface,
            fields: Arc::new(fields),
        },
    ))
}

/// `max_tokens` when the request gives none (capped by the context the prompt leaves).
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// Which endpoint a body came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`: `messages`.
    Chat,
    /// `/v1/completions`: `prompt`.
    Completions,
}

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One chat message as OpenAI clients send it.
#[derive(Clone, Debug, Deserialize)]
pub struct OpenAiMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, a list of content parts, or null (an assistant turn with tool calls).
    #[serde(default)]
    pub content: Option<Value>,
}

/// A chat or completions body. Unknown fields are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OpenAiRequest {
    /// A Pool name, or a Model served by a Pool.
    #[serde(default)]
    pub model: Option<String>,
    /// Chat messages (`/v1/chat/completions`).
    #[serde(default)]
    pub messages: Option<Vec<OpenAiMessage>>,
    /// A prompt (`/v1/completions`): a string, or a list holding one string.
    #[serde(default)]
    pub prompt: Option<Value>,
    /// Most tokens to generate (legacy name).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// A stop string or a list of them.
    #[serde(default)]
    pub stop: Option<Value>,
    /// Stream chunks instead of one reply.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices; only 1 is served.
    #[serde(default)]
    pub n: Option<u32>,
    /// Extra field: `interactive` or `batch`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Extra field: keeps a conversation on one replica.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Where `model` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Pool by name.
    Pool(String),
    /// Any Pool serving this Model.
    Model(String),
    /// No `model`: the only Pool.
    Any,
}

/// Resolves `model` against the declared Pool names: a Pool name wins over a Model name.
pub fn resolve_target<'a>(model: Option<&str>, mut pools: impl Iterator<Item = &'a str>) -> Target {
    match model.map(str::trim).filter(|m| !m.is_empty()) {
        None => Target::Any,
        Some(m) if pools.any(|p| p == m) => Target::Pool(m.to_string()),
        Some(m) => Target::Model(m.to_string()),
    }
}

/// A body mapped onto a task, with the edge's own options.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The native request. `max_tokens` is 0 when the body gave none (see [`Mapped::fill_default_max_tokens`]).
    pub task: TaskRequest,
    /// Stream chunks.
    pub stream: bool,
    /// Send a usage chunk before `[DONE]`.
    pub include_usage: bool,
    /// The `model` to echo in replies (the request's, else the Pool's name once known).
    pub model: Option<String>,
}

impl Mapped {
    /// Sets the default `max_tokens` when the body gave none: [`DEFAULT_MAX_TOKENS`], capped by
    /// what a context of `ctx_size` leaves after `prompt_tokens` (at least 1, so a prompt that
    /// fills the context is refused by validation with its own message).
    pub fn fill_default_max_tokens(&mut self, ctx_size: u32, prompt_tokens: u32) {
        if self.task.max_tokens == 0 {
            self.task.max_tokens = DEFAULT_MAX_TOKENS.min(ctx_size.saturating_sub(prompt_tokens)).max(1);
        }
    }
}

/// Parses a priority named in the body or the `X-Priority` header.
fn priority(value: &str, source: &str) -> Result<Priority, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "interactive" => Ok(Priority::Interactive),
        "batch" => Ok(Priority::Batch),
        other => Err(ApiError::invalid_field(
            "priority",
            format!("{source} `{other}` is not a priority; use `interactive` or `batch`"),
        )),
    }
}

/// The task's priority: the body field `priority`, else the `X-Priority` header, else
/// `interactive`.
pub fn priority_of(body: Option<&str>, header: Option<&str>) -> Result<Priority, ApiError> {
    match (body, header) {
        (Some(p), _) => priority(p, "body field `priority`"),
        (None, Some(h)) => priority(h, "header `X-Priority`"),
        (None, None) => Ok(Priority::Interactive),
    }
}

fn text_of(content: Option<Value>, i: usize) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    let bad = |why: &str| ApiError::invalid_field(&param, format!("`{param}` {why}"));
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => texts.push(t.to_string()),
                    (kind, _) => {
                        return Err(bad(&format!(
                            "has a `{}` part; only text parts are supported",
                            kind.unwrap_or("untyped")
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(bad("must be a string or a list of text parts")),
    }
}

fn messages(ms: Vec<OpenAiMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    ms.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "developer" => "system",
                r @ ("system" | "user" | "assistant" | "tool") => r,
                other => {
                    return Err(ApiError::invalid_field(
                        &format!("messages[{i}].role"),
                        format!("role `{other}` is not one of system, developer, user, assistant, tool"),
                    ));
                }
            };
            Ok(ChatMessage {
                role: role.to_string(),
                content: text_of(m.content, i)?,
            })
        })
        .collect()
}

fn prompt(p: Value) -> Result<String, ApiError> {
    match p {
        Value::String(s) => Ok(s),
        Value::Array(mut items) if items.len() == 1 && items[0].is_string() => match items.remove(0) {
            Value::String(s) => Ok(s),
            _ => Err(ApiError::invalid_field("prompt", "`prompt` must be a string")),
        },
        _ => Err(ApiError::invalid_field(
            "prompt",
            "`prompt` must be a string (or a list of exactly one string); token arrays and batches are not supported",
        )),
    }
}

fn stop(s: Option<Value>) -> Result<Vec<String>, ApiError> {
    match s {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid_field("stop", "`stop` must hold only strings")),
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_field(
            "stop",
            "`stop` must be a string or a list of strings",
        )),
    }
}

/// Maps a body that came to `endpoint` onto a task for `target`. `header_priority` is the
/// `X-Priority` header, if any.
pub fn map_request(
    endpoint: Endpoint,
    body: OpenAiRequest,
    target: Target,
    header_priority: Option<&str>,
) -> Result<Mapped, ApiError> {
    if let Some(n) = body.n
        && n != 1
    {
        return Err(ApiError::invalid_field(
            "n",
            format!("`n` = {n}: one request gives one choice here; send {n} requests instead"),
        ));
    }
    let (prompt, messages) = match endpoint {
        Endpoint::Chat => match body.messages {
            Some(ms) if !ms.is_empty() => (None, Some(messages(ms)?)),
            _ => {
                return Err(ApiError::invalid_field(
                    "messages",
                    "`messages` is missing or empty; send at least one message",
                ));
            }
        },
        Endpoint::Completions => match body.prompt {
            Some(p) => (Some(prompt(p)?), None),
            None => return Err(ApiError::invalid_field("prompt", "`prompt` is missing")),
        },
    };
    let seed = match body.seed {
        Some(s) if s < 0 => {
            return Err(ApiError::invalid_field("seed", format!("`seed` {s} must be 0 or more")));
        }
        s => s.map(|s| s.unsigned_abs()),
    };
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if max_tokens == Some(0) {
        return Err(ApiError::invalid_field("max_tokens", "`max_tokens` must be at least 1"));
    }
    let priority = priority_of(body.priority.as_deref(), header_priority)?;
    let (pool, model) = match target {
        Target::Pool(p) => (Some(p), None),
        Target::Model(m) => (None, Some(m)),
        Target::Any => (None, None),
    };
    Ok(Mapped {
        task: TaskRequest {
            pool,
            model,
            prompt,
            messages,
            max_tokens: max_tokens.unwrap_or(0),
            temperature: body.temperature,
            top_p: body.top_p,
            seed,
            stop: stop(body.stop)?,
            priority,
            session_id: body.session_id,
            record: None,
        },
        stream: body.stream.unwrap_or(false),
        include_usage: body.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        model: body.model.filter(|m| !m.trim().is_empty()),
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
