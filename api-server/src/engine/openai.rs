//! The OpenAI-compatible adapter (vLLM, SGLang, TGI's Messages API, llama-cpp-python,
//! llama-server's `/v1`): `POST /v1/completions` for a raw prompt, `POST /v1/chat/completions`
//! for chat, both with `stream: true` and `stream_options.include_usage`.
//!
//! A request that came through the OpenAI front door carries the client's own fields
//! ([`GenerateRequest::passthrough`]); they are sent as the client wrote them (tools,
//! `response_format`, penalties, engine extras …), over the typed fields. Only `max_tokens`,
//! `stream` and `stream_options` are the data plane's.
//!
//! Events are `data: {chunk}` with the text in `choices[0].text` (completions) or
//! `choices[0].delta.content` (chat), `finish_reason` on the last choice, `usage` (often in a
//! chunk of its own with empty `choices`), then `data: [DONE]`. Of the first choice, the text,
//! `reasoning_content`, `tool_calls` and `logprobs` are read (the last two kept raw, to be
//! relayed unchanged); other choices are skipped (we always ask for one).

use std::fmt;

use llorch_manifests::task::ChatMessage;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::http::{error_event, join, open_stream, post_for_json};
use super::stream::{ChunkParser, Ending, Parsed};
use super::transport::Transport;
use super::{Delta, EngineClient, EngineError, Finish, GenerateRequest, Prompt, TokenStream};
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
            Prompt::Text(prompt) => completion(&self.transport, base_url, req, prompt, false),
            Prompt::Chat(messages) => chat(&self.transport, base_url, req, messages, false),
        }
    }

    fn embed(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<Value, EngineError>> {
        embeddings(&self.transport, base_url, req)
    }
}

/// `POST /v1/embeddings` with the client's fields as written (`input`, `encoding_format` …).
pub(crate) fn embeddings(
    transport: &Transport,
    base_url: &str,
    req: &GenerateRequest,
) -> BoxFuture<'static, Result<Value, EngineError>> {
    let url = join(base_url, "/v1/embeddings");
    let empty = serde_json::Map::new();
    let body = serde_json::to_vec(req.passthrough.as_deref().unwrap_or(&empty));
    Box::pin(post_for_json(transport.clone(), url, body))
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
    let body = OpenAiBody::new(req, None, Some(messages), cache_prompt.then_some(true)).encode(req);
    Box::pin(open_stream(transport.clone(), url, body, OpenAiParser::default()))
}

/// A streamed `POST /v1/completions`; `cache_prompt` adds llama-server's extension.
pub(crate) fn completion(
    transport: &Transport,
    base_url: &str,
    req: &GenerateRequest,
    prompt: &str,
    cache_prompt: bool,
) -> BoxFuture<'static, Result<TokenStream, EngineError>> {
    let url = join(base_url, "/v1/completions");
    let body = OpenAiBody::new(req, Some(prompt), None, cache_prompt.then_some(true)).encode(req);
    Box::pin(open_stream(transport.clone(), url, body, OpenAiParser::default()))
}

/// Fields of a client's body that the data plane sets itself.
const OWNED: [&str; 3] = ["max_tokens", "stream", "stream_options"];

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

    /// The JSON body: the typed fields, then the client's own fields over them (but not over
    /// [`OWNED`] ones).
    fn encode(&self, req: &GenerateRequest) -> serde_json::Result<Vec<u8>> {
        let Some(fields) = req.passthrough.as_deref() else {
            return serde_json::to_vec(self);
        };
        let Value::Object(mut body) = serde_json::to_value(self)? else {
            return serde_json::to_vec(self);
        };
        for (name, value) in fields {
            if !OWNED.contains(&name.as_str()) {
                body.insert(name.clone(), value.clone());
            }
        }
        serde_json::to_vec(&body)
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
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens: Option<u32>,
}

/// `Some` unless the raw value is JSON `null`.
fn present(raw: Option<Box<RawValue>>) -> Option<Box<RawValue>> {
    raw.filter(|r| r.get() != "null")
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
    prompt_tokens: Option<u32>,
}

impl OpenAiParser {
    fn done(&self) -> Ending {
        Ending {
            tokens_out: self.completion_tokens.unwrap_or(self.tokens_seen),
            finish: self.finish.unwrap_or(Finish::Stop),
            tokens_in: self.prompt_tokens,
        }
    }
}

impl ChunkParser for OpenAiParser {
    fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError> {
        if data == b"[DONE]" {
            return Ok(Parsed {
                event: None,
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
            self.prompt_tokens = usage.prompt_tokens.or(self.prompt_tokens);
        }
        let Some(choice) = chunk.choice else {
            return Ok(Parsed::default());
        };
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(Finish::from_engine(&reason));
        }
        let (content, reasoning, tool_calls) = match choice.delta {
            Some(d) => (choice.text.or(d.content), d.reasoning_content, present(d.tool_calls)),
            None => (choice.text, None, None),
        };
        let parsed = Parsed::delta(Delta {
            content,
            reasoning: reasoning.filter(|r| !r.is_empty()),
            tool_calls,
            logprobs: present(choice.logprobs),
        });
        if parsed.has_text() {
            self.tokens_seen = self.tokens_seen.saturating_add(1);
        }
        Ok(parsed)
    }

    /// Some servers (ik_llama.cpp) end the body without `[DONE]`: after a finish reason that
    /// is a complete reply; before one, the reply was cut off.
    fn end(&mut self) -> Result<Ending, EngineError> {
        match self.finish {
            Some(_) => Ok(self.done()),
            None => Err(EngineError::Reset { source: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::EngineEvent;

    fn feed(parser: &mut OpenAiParser, data: &str) -> Parsed {
        parser.data(data.as_bytes()).unwrap()
    }

    fn text(p: &Parsed) -> Option<&str> {
        match &p.event {
            Some(EngineEvent::Token(t)) => Some(t),
            Some(EngineEvent::Delta(d)) => d.content.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn chat_chunks_give_deltas_then_done_with_usage_at_the_marker() {
        let mut p = OpenAiParser::default();
        let role =
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#;
        assert_eq!(feed(&mut p, role), Parsed::default());
        let text_chunk = r#"{"choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null},{"index":1}]}"#;
        assert_eq!(feed(&mut p, text_chunk).event, Some(EngineEvent::Token(" hi".into())));
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
        let done = feed(&mut p, "[DONE]").done.unwrap();
        assert_eq!(
            done,
            Ending {
                tokens_out: 3,
                finish: Finish::Length,
                tokens_in: Some(5)
            }
        );
    }

    #[test]
    fn completion_chunks_read_text_and_count_tokens_without_usage() {
        let mut p = OpenAiParser::default();
        feed(&mut p, r#"{"choices":[{"text":" a","finish_reason":null}]}"#);
        let last = feed(&mut p, r#"{"choices":[{"text":" b","finish_reason":"stop"}]}"#);
        assert_eq!(text(&last), Some(" b"));
        assert_eq!(feed(&mut p, "[DONE]").done, Some(Ending::new(2, Finish::Stop)));
    }

    #[test]
    fn tool_calls_reasoning_and_logprobs_are_kept_raw_and_the_finish_reason_is_the_engines() {
        let mut p = OpenAiParser::default();
        let reasoning = feed(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think"},"logprobs":null}]}"#,
        );
        let Some(EngineEvent::Delta(d)) = reasoning.event else {
            panic!("{reasoning:?}")
        };
        assert_eq!((d.reasoning.as_deref(), d.content.as_deref()), (Some("think"), None));
        let call = r#"[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]"#;
        let parsed = feed(
            &mut p,
            &format!(r#"{{"choices":[{{"index":0,"delta":{{"content":null,"tool_calls":{call}}}}}]}}"#),
        );
        let Some(EngineEvent::Delta(d)) = &parsed.event else {
            panic!("{parsed:?}")
        };
        assert_eq!(d.tool_calls.as_ref().map(|r| r.get()), Some(call));
        assert!(!parsed.has_text(), "a tool-call delta is not a text token");
        let lp = r#"{"content":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}]}"#;
        let parsed = feed(
            &mut p,
            &format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"a"}},"logprobs":{lp}}}]}}"#),
        );
        let Some(EngineEvent::Delta(d)) = &parsed.event else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (d.content.as_deref(), d.logprobs.as_ref().map(|r| r.get())),
            (Some("a"), Some(lp))
        );
        feed(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        );
        assert_eq!(feed(&mut p, "[DONE]").done.unwrap().finish, Finish::ToolCalls);
    }

    #[test]
    fn an_end_without_done_completes_only_after_a_finish_reason() {
        let mut cut = OpenAiParser::default();
        feed(&mut cut, r#"{"choices":[{"text":" a","finish_reason":null}]}"#);
        assert!(matches!(cut.end(), Err(EngineError::Reset { source: None })));
        let mut finished = OpenAiParser::default();
        feed(&mut finished, r#"{"choices":[{"text":" a","finish_reason":"length"}]}"#);
        assert_eq!(finished.end().unwrap(), Ending::new(1, Finish::Length));
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

    #[test]
    fn the_clients_fields_go_over_the_typed_ones_but_not_over_the_data_planes() {
        let mut req = GenerateRequest::text("Once", 8);
        req.temperature = Some(0.7);
        let fields = serde_json::json!({
            "prompt": ["Once"], "temperature": 0.7, "logit_bias": {"50256": -100},
            "top_k": 40, "stream": false, "max_tokens": 999
        });
        let serde_json::Value::Object(fields) = fields else {
            unreachable!()
        };
        req.passthrough = Some(Arc::new(fields));
        let body = OpenAiBody::new(&req, Some("Once"), None, None).encode(&req).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "prompt": ["Once"], "temperature": 0.7, "logit_bias": {"50256": -100}, "top_k": 40,
                "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }
}
