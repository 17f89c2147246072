//! The llama-server adapter: `POST /completion` with `stream: true` for a raw prompt, and
//! llama-server's `POST /v1/chat/completions` for chat (its native `/completion` takes no
//! messages, and only the server knows the model's chat template).
//!
//! A request that came through the OpenAI front door (it carries the client's own fields) goes
//! to llama-server's `/v1` instead, raw prompt included, so every field reaches the engine as
//! the client wrote it.
//!
//! Native events are `data: {"content":"…","stop":false,…}`, then one with `"stop":true`, the
//! token counts (`tokens_predicted`, `tokens_evaluated` for the prompt) and why it stopped
//! (`stop_type`: `limit` is a length stop; `eos`, `word` and `none` are not). Only those
//! fields are read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{error_event, join, open_stream};
use super::stream::{ChunkParser, Ending, Parsed};
use super::transport::Transport;
use super::{EngineClient, EngineError, Finish, GenerateRequest, Prompt, TokenStream, openai};
use crate::sources::BoxFuture;

/// Speaks llama.cpp's `llama-server`.
#[derive(Clone)]
pub struct LlamaCpp {
    transport: Transport,
}

impl LlamaCpp {
    /// An adapter on `transport` (share one: it holds the connection pool).
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }
}

impl EngineClient for LlamaCpp {
    fn generate(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        let prompt = match &req.prompt {
            Prompt::Text(prompt) if req.passthrough.is_some() => {
                return openai::completion(&self.transport, base_url, req, prompt, true);
            }
            Prompt::Text(prompt) => prompt,
            Prompt::Chat(messages) => return openai::chat(&self.transport, base_url, req, messages, true),
        };
        let url = join(base_url, "/completion");
        let body = CompletionBody {
            prompt,
            n_predict: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            stop: &req.stop,
            stream: true,
            cache_prompt: true,
        };
        let body = serde_json::to_vec(&body);
        Box::pin(open_stream(self.transport.clone(), url, body, NativeParser::default()))
    }

    /// llama-server's OpenAI-compatible `/v1/embeddings` (started with `--embeddings`).
    fn embed(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<Value, EngineError>> {
        openai::embeddings(&self.transport, base_url, req)
    }
}

/// llama-server's `/completion` body (the fields we set).
#[derive(Debug, Serialize)]
struct CompletionBody<'a> {
    prompt: &'a str,
    n_predict: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    /// Reuse the slot's KV cache for a shared prompt prefix (llama-server's default is on in
    /// recent builds; older ones need it asked for).
    cache_prompt: bool,
}

/// One native event; everything else in it (`tokens`, `timings`, …) is skipped unread.
#[derive(Debug, Deserialize)]
struct NativeChunk {
    #[serde(default)]
    content: String,
    #[serde(default)]
    stop: bool,
    #[serde(default)]
    tokens_predicted: Option<u32>,
    #[serde(default)]
    tokens_evaluated: Option<u32>,
    #[serde(default)]
    stop_type: Option<StopType>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StopType {
    Limit,
    #[serde(other)]
    Other,
}

/// Reads native events; counts tokens in case the final event does not.
#[derive(Debug, Default)]
pub(super) struct NativeParser {
    tokens_seen: u32,
}

impl ChunkParser for NativeParser {
    fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError> {
        let chunk: NativeChunk = serde_json::from_slice(data).map_err(|err| {
            EngineError::Protocol(format!("a llama-server event is not what /completion sends: {err}"))
        })?;
        if chunk.error.is_some() {
            return Err(error_event(data));
        }
        let mut parsed = Parsed::token(chunk.content);
        if parsed.has_text() {
            self.tokens_seen = self.tokens_seen.saturating_add(1);
        }
        if chunk.stop {
            let finish = match chunk.stop_type {
                Some(StopType::Limit) => Finish::Length,
                _ => Finish::Stop,
            };
            parsed.done = Some(Ending {
                tokens_out: chunk.tokens_predicted.unwrap_or(self.tokens_seen),
                finish,
                tokens_in: chunk.tokens_evaluated,
            });
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineEvent;

    fn parse(parser: &mut NativeParser, data: &str) -> Parsed {
        parser.data(data.as_bytes()).unwrap()
    }

    #[test]
    fn native_events_give_tokens_then_done_with_llama_servers_count() {
        let mut parser = NativeParser::default();
        let first = parse(
            &mut parser,
            r#"{"index":0,"content":" Once","tokens":[5],"stop":false,"id_slot":0}"#,
        );
        assert_eq!(first.event, Some(EngineEvent::Token(" Once".into())));
        assert_eq!(first.done, None);
        let last = parse(
            &mut parser,
            r#"{"content":"","stop":true,"tokens_predicted":4,"tokens_evaluated":6,"stop_type":"limit","timings":{"predicted_n":4}}"#,
        );
        assert_eq!(
            last,
            Parsed {
                event: None,
                done: Some(Ending {
                    tokens_out: 4,
                    finish: Finish::Length,
                    tokens_in: Some(6)
                })
            }
        );
    }

    #[test]
    fn stop_types_other_than_limit_are_stops_and_missing_counts_are_counted() {
        let mut parser = NativeParser::default();
        parse(&mut parser, r#"{"content":"a","stop":false}"#);
        let last = parse(&mut parser, r#"{"content":"b","stop":true,"stop_type":"word"}"#);
        assert_eq!(last.event, Some(EngineEvent::Token("b".into())));
        assert_eq!(last.done, Some(Ending::new(2, Finish::Stop)));
        let eos = parse(
            &mut NativeParser::default(),
            r#"{"content":"","stop":true,"stop_type":"eos","tokens_predicted":9}"#,
        );
        assert_eq!(eos.done, Some(Ending::new(9, Finish::Stop)));
    }

    #[test]
    fn errors_in_data_are_rejections_and_garbage_is_a_protocol_error() {
        let mut parser = NativeParser::default();
        let err = parser
            .data(br#"{"error":{"code":500,"message":"slot crashed"}}"#)
            .unwrap_err();
        assert!(matches!(err, EngineError::Rejected { status: 500, .. }), "{err:?}");
        let err = parser.data(b"{\"content\":").unwrap_err();
        assert!(matches!(err, EngineError::Protocol(_)), "{err:?}");
    }
}
