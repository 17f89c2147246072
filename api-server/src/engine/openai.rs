//! The OpenAI-compatible adapter (vLLM, TGI's OpenAI route, llama-cpp-python, llama-server's
//! `/v1`): `POST /v1/completions` for a raw prompt, `POST /v1/chat/completions` for chat, both
//! with `stream: true` and `stream_options.include_usage`.
//!
//! Events are `data: {chunk}` with the text in `choices[0].text` (completions) or
//! `choices[0].delta.content` (chat), `finish_reason` on the last choice, `usage` (often in a
//! chunk of its own with empty `choices`), then `data: [DONE]`. Only those fields are read, and
//! only the first choice (we always ask for one).

use std::fmt;

use llorch_manifests::task::ChatMessage;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::http::{error_event, join, open_stream};
use super::stream::{ChunkParser, Parsed};
use super::transport::Transport;
use super::{EngineClient, EngineError, Finish, GenerateRequest, Prompt, TokenStream};
use crate::sources::BoxFuture;

/// Speaks the OpenAI completions and chat completions APIs.
#[derive(Clone)]
pub struct OpenAi {
    transport: Transport,
}

impl OpenAi {
    /// An adapter on `transport` (share one: it holds the connection pool).
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }
}

impl EngineClient for OpenAi {
    fn generate(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        match &req.prompt {
            Prompt::Text(prompt) => {
                let url = join(base_url, "/v1/completions");
                let body = OpenAiBody::new(req, Some(prompt), None, None);
                let body = serde_json::to_vec(&body);
                Box::pin(open_stream(self.transport.clone(), url, body, OpenAiParser::default()))
            }
            Prompt::Chat(messages) => chat(&self.transport, base_url, req, messages, false),
        }
    }
}

/// A streamed `POST /v1/chat/completions`; `cache_prompt` adds llama-server's extension.
pub(crate) fn chat(
    transport: &Transport,
    base_url: &str,
    req: &GenerateRequest,
    messages: &[ChatMessage],
    cache_prompt: bool,
) -> BoxFuture<'static, Result<TokenStream, EngineError>> {
    let url = join(base_url, "/v1/chat/completions");
    let body = OpenAiBody::new(req, None, Some(messages), cache_prompt.then_some(true));
    let body = serde_json::to_vec(&body);
    Box::pin(open_stream(transport.clone(), url, body, OpenAiParser::default()))
}

/// The request body of both endpoints (the fields we set).
#[derive(Debug, Serialize)]
struct OpenAiBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [ChatMessage]>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_prompt: Option<bool>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> OpenAiBody<'a> {
    fn new(
        req: &'a GenerateRequest,
        prompt: Option<&'a str>,
        messages: Option<&'a [ChatMessage]>,
        cache_prompt: Option<bool>,
    ) -> Self {
        Self {
            prompt,
            messages,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            stop: &req.stop,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
            cache_prompt,
        }
    }
}

/// One chunk; `id`, `model`, `created`, `timings`, … are skipped unread.
#[derive(Debug, Deserialize)]
struct Chunk {
    /// The first choice; the rest of the array is skipped without allocating.
    #[serde(default, rename = "choices", deserialize_with = "first_choice")]
    choice: Option<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FinishReason {
    Length,
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct Usage {
    completion_tokens: u32,
}

fn first_choice<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Choice>, D::Error> {
    struct First;

    impl<'de> Visitor<'de> for First {
        type Value = Option<Choice>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of choices")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Choice>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_any(First)
}

/// Reads chunks until `[DONE]`, remembering the finish reason and usage it saw on the way.
#[derive(Debug, Default)]
pub(super) struct OpenAiParser {
    tokens_seen: u32,
    finish: Option<Finish>,
    completion_tokens: Option<u32>,
}

impl OpenAiParser {
    fn done(&self) -> (u32, Finish) {
        (
            self.completion_tokens.unwrap_or(self.tokens_seen),
            self.finish.unwrap_or(Finish::Stop),
        )
    }
}

impl ChunkParser for OpenAiParser {
    fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError> {
        if data == b"[DONE]" {
            return Ok(Parsed {
                token: None,
                done: Some(self.done()),
            });
        }
        let chunk: Chunk = serde_json::from_slice(data)
            .map_err(|err| EngineError::Protocol(format!("an OpenAI stream chunk could not be read: {err}")))?;
        if chunk.error.is_some() {
            return Err(error_event(data));
        }
        if let Some(usage) = chunk.usage {
            self.completion_tokens = Some(usage.completion_tokens);
        }
        let Some(choice) = chunk.choice else {
            return Ok(Parsed::default());
        };
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(match reason {
                FinishReason::Length => Finish::Length,
                FinishReason::Other => Finish::Stop,
            });
        }
        let text = choice.text.or(choice.delta.and_then(|d| d.content)).unwrap_or_default();
        let parsed = Parsed::token(text);
        if parsed.token.is_some() {
            self.tokens_seen = self.tokens_seen.saturating_add(1);
        }
        Ok(parsed)
    }

    /// Some servers (ik_llama.cpp) end the body without `[DONE]`: after a finish reason that
    /// is a complete reply; before one, the reply was cut off.
    fn end(&mut self) -> Result<(u32, Finish), EngineError> {
        match self.finish {
            Some(_) => Ok(self.done()),
            None => Err(EngineError::Reset { source: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(parser: &mut OpenAiParser, data: &str) -> Parsed {
        parser.data(data.as_bytes()).unwrap()
    }

    #[test]
    fn chat_chunks_give_deltas_then_done_with_usage_at_the_marker() {
        let mut p = OpenAiParser::default();
        let role =
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#;
        assert_eq!(feed(&mut p, role), Parsed::default());
        let text = r#"{"choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null},{"index":1}]}"#;
        assert_eq!(feed(&mut p, text).token.as_deref(), Some(" hi"));
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#
            ),
            Parsed::default()
        );
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":5}}"#
            ),
            Parsed::default()
        );
        assert_eq!(feed(&mut p, "[DONE]").done, Some((3, Finish::Length)));
    }

    #[test]
    fn completion_chunks_read_text_and_count_tokens_without_usage() {
        let mut p = OpenAiParser::default();
        feed(&mut p, r#"{"choices":[{"text":" a","finish_reason":null}]}"#);
        let last = feed(&mut p, r#"{"choices":[{"text":" b","finish_reason":"stop"}]}"#);
        assert_eq!(last.token.as_deref(), Some(" b"));
        assert_eq!(feed(&mut p, "[DONE]").done, Some((2, Finish::Stop)));
    }

    #[test]
    fn an_end_without_done_completes_only_after_a_finish_reason() {
        let mut cut = OpenAiParser::default();
        feed(&mut cut, r#"{"choices":[{"text":" a","finish_reason":null}]}"#);
        assert!(matches!(cut.end(), Err(EngineError::Reset { source: None })));
        let mut finished = OpenAiParser::default();
        feed(&mut finished, r#"{"choices":[{"text":" a","finish_reason":"length"}]}"#);
        assert_eq!(finished.end().unwrap(), (1, Finish::Length));
    }

    #[test]
    fn stream_errors_are_rejections() {
        let err = OpenAiParser::default()
            .data(br#"{"error":{"code":400,"message":"bad","type":"invalid_request_error"}}"#)
            .unwrap_err();
        assert!(matches!(err, EngineError::Rejected { status: 400, .. }), "{err:?}");
    }

    #[test]
    fn request_bodies_carry_stream_options_and_only_set_fields() {
        let mut req = GenerateRequest::text("Once", 8);
        req.seed = Some(7);
        let body = serde_json::to_value(OpenAiBody::new(&req, Some("Once"), None, None)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"prompt":"Once","max_tokens":8,"seed":7,"stream":true,"stream_options":{"include_usage":true}})
        );
    }
}
