//! The text-generation-inference adapter: TGI's native `POST /generate_stream` for a raw
//! prompt, and its OpenAI-compatible Messages API (`POST /v1/chat/completions`) for chat (only
//! the server knows the model's chat template).
//!
//! Sampling is translated to what TGI's validation accepts. TGI refuses `temperature: 0`
//! ("must be strictly positive") and samples only when asked (`do_sample`, default off) or
//! when a warper such as `top_p` is set: a temperature of 0 is sent as `do_sample: false`
//! with neither `temperature` nor `top_p` (greedy), any other temperature as
//! `do_sample: true` plus the temperature (what TGI's own chat route does). TGI also refuses
//! `top_p` ≥ 1.0, which means "no nucleus cut": it is left out instead. Unset fields are left
//! out, so TGI's defaults apply (greedy, like its `/generate`).
//!
//! Native events are `data: {"token":{"text","special",…},"generated_text":null,…}`; the
//! last one carries `generated_text` and, since we ask for `details`, `details` with
//! `finish_reason` (`length` is a length stop; `eos_token` and `stop_sequence` are not) and
//! `generated_tokens`. Special tokens (the EOS token) yield no text. An error is an event of
//! its own, `data: {"error":"…","error_type":"validation"|"overloaded"|"generation"|…}`.
//! Only those fields are read.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::http::{join, open_stream};
use super::stream::{ChunkParser, Ending, Parsed};
use super::transport::Transport;
use super::{EngineClient, EngineError, Finish, GenerateRequest, Prompt, TokenStream, openai};
use crate::sources::BoxFuture;

/// Speaks Hugging Face text-generation-inference.
#[derive(Clone)]
pub struct Tgi {
    transport: Transport,
}

impl Tgi {
    /// An adapter on `transport` (share one: it holds the connection pool).
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }
}

impl EngineClient for Tgi {
    fn generate(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        let prompt = match &req.prompt {
            Prompt::Text(prompt) => prompt,
            Prompt::Chat(messages) => {
                // The Messages API maps temperature 0 to greedy itself, but refuses top_p 1.0.
                let sampling = GenerateRequest {
                    prompt: Prompt::Text(String::new()),
                    max_tokens: req.max_tokens,
                    temperature: req.temperature,
                    top_p: nucleus(req.top_p),
                    seed: req.seed,
                    stop: req.stop.clone(),
                    passthrough: req.passthrough.as_ref().map(|fields| {
                        let mut fields = (**fields).clone();
                        if fields
                            .get("top_p")
                            .and_then(serde_json::Value::as_f64)
                            .is_some_and(|p| p >= 1.0)
                        {
                            // No nucleus filter either way; TGI refuses 1.0.
                            fields.remove("top_p");
                        }
                        std::sync::Arc::new(fields)
                    }),
                };
                return openai::chat(&self.transport, base_url, &sampling, messages, false);
            }
        };
        let url = join(base_url, "/generate_stream");
        let body = serde_json::to_vec(&GenerateBody::new(prompt, req));
        Box::pin(open_stream(self.transport.clone(), url, body, TgiParser::default()))
    }
}

/// `top_p` as TGI accepts it: below 1.0, or left out.
fn nucleus(top_p: Option<f32>) -> Option<f32> {
    top_p.filter(|p| *p < 1.0)
}

/// TGI's `/generate_stream` body.
#[derive(Debug, Serialize)]
struct GenerateBody<'a> {
    inputs: &'a str,
    parameters: Parameters<'a>,
}

/// `parameters` (the fields we set; see the module doc for the sampling rules).
#[derive(Debug, Serialize)]
struct Parameters<'a> {
    max_new_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    do_sample: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    /// Without it the final event has no `finish_reason` and no token count.
    details: bool,
}

impl<'a> GenerateBody<'a> {
    fn new(inputs: &'a str, req: &'a GenerateRequest) -> Self {
        let greedy = req.temperature.is_some_and(|t| t <= 0.0);
        let parameters = Parameters {
            max_new_tokens: req.max_tokens,
            do_sample: req.temperature.map(|_| !greedy),
            temperature: req.temperature.filter(|_| !greedy),
            top_p: nucleus(req.top_p).filter(|_| !greedy),
            seed: req.seed,
            stop: &req.stop,
            details: true,
        };
        Self { inputs, parameters }
    }
}

/// One `/generate_stream` event; `index`, `id`, `logprob`, `top_tokens`, … are skipped unread.
#[derive(Debug, Deserialize)]
struct StreamEvent {
    #[serde(default)]
    token: Option<Token>,
    /// Present (not null) on the last event only; its text is not needed.
    #[serde(default)]
    generated_text: Option<IgnoredAny>,
    #[serde(default)]
    details: Option<Details>,
    /// An error event: `error` and `error_type`, nothing else.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Token {
    #[serde(default)]
    text: String,
    #[serde(default)]
    special: bool,
}

#[derive(Debug, Deserialize)]
struct Details {
    #[serde(default)]
    finish_reason: Option<FinishReason>,
    #[serde(default)]
    generated_tokens: Option<u32>,
    #[serde(default)]
    input_length: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FinishReason {
    Length,
    #[serde(other)]
    Other,
}

/// The HTTP status TGI itself answers for an error of this type before streaming starts:
/// validation, template and tool errors are the request's fault (422), `overloaded` is TGI's
/// 429 (no room in its queue), and a failure during generation is the engine's (500).
fn error_status(error_type: Option<&str>) -> u16 {
    match error_type {
        Some("validation" | "template_error" | "tool_error" | "missing_template_variable") => 422,
        Some("overloaded") => 429,
        _ => 500,
    }
}

/// Reads `/generate_stream` events; counts tokens in case the final event does not.
#[derive(Debug, Default)]
pub(super) struct TgiParser {
    tokens_seen: u32,
}

impl ChunkParser for TgiParser {
    fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError> {
        let event: StreamEvent = serde_json::from_slice(data)
            .map_err(|err| EngineError::Protocol(format!("a TGI event is not what /generate_stream sends: {err}")))?;
        if let Some(message) = event.error {
            return Err(EngineError::Rejected {
                status: error_status(event.error_type.as_deref()),
                message,
            });
        }
        let mut parsed = Parsed::default();
        if let Some(token) = event.token {
            self.tokens_seen = self.tokens_seen.saturating_add(1);
            if !token.special {
                parsed = Parsed::token(token.text);
            }
        }
        if event.generated_text.is_some() || event.details.is_some() {
            let details = event.details.as_ref();
            let finish = match details.and_then(|d| d.finish_reason.as_ref()) {
                Some(FinishReason::Length) => Finish::Length,
                _ => Finish::Stop,
            };
            parsed.done = Some(Ending {
                tokens_out: details.and_then(|d| d.generated_tokens).unwrap_or(self.tokens_seen),
                finish,
                tokens_in: details.and_then(|d| d.input_length),
            });
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(parser: &mut TgiParser, data: &str) -> Parsed {
        parser.data(data.as_bytes()).unwrap()
    }

    fn body(req: &GenerateRequest) -> serde_json::Value {
        serde_json::to_value(GenerateBody::new("Once", req)).unwrap()
    }

    #[test]
    fn tokens_then_a_final_event_with_tgis_count_and_length_finish() {
        let mut parser = TgiParser::default();
        let first = parse(
            &mut parser,
            r#"{"index":1,"token":{"id":9,"text":" upon","logprob":-0.3,"special":false},"generated_text":null,"details":null}"#,
        );
        assert_eq!(first, Parsed::token(" upon".into()));
        let last = parse(
            &mut parser,
            r#"{"index":2,"token":{"id":10,"text":" a","logprob":-0.1,"special":false},"generated_text":" upon a","details":{"finish_reason":"length","generated_tokens":2,"seed":null,"input_length":3}}"#,
        );
        assert_eq!(
            last,
            Parsed {
                event: Some(crate::engine::EngineEvent::Token(" a".into())),
                done: Some(Ending {
                    tokens_out: 2,
                    finish: Finish::Length,
                    tokens_in: Some(3)
                })
            }
        );
    }

    #[test]
    fn a_special_eos_token_yields_no_text_and_ends_with_a_stop() {
        let mut parser = TgiParser::default();
        parse(
            &mut parser,
            r#"{"index":1,"token":{"id":5,"text":"Hi","logprob":0.0,"special":false},"generated_text":null,"details":null}"#,
        );
        let last = parse(
            &mut parser,
            r#"{"index":2,"token":{"id":2,"text":"</s>","logprob":0.0,"special":true},"generated_text":"Hi","details":{"finish_reason":"eos_token","generated_tokens":2,"seed":7}}"#,
        );
        assert_eq!(
            last,
            Parsed {
                event: None,
                done: Some(Ending::new(2, Finish::Stop))
            }
        );
    }

    #[test]
    fn a_final_event_without_details_counts_the_tokens_seen_and_stop_sequences_are_stops() {
        let mut parser = TgiParser::default();
        parse(
            &mut parser,
            r#"{"token":{"id":1,"text":"a","special":false},"generated_text":null}"#,
        );
        let last = parse(
            &mut parser,
            r#"{"token":{"id":2,"text":"b","special":false},"generated_text":"ab","details":null}"#,
        );
        assert_eq!(last.done, Some(Ending::new(2, Finish::Stop)));
        let stop = parse(
            &mut TgiParser::default(),
            r#"{"token":{"id":3,"text":"\n","special":false},"generated_text":"x\n","details":{"finish_reason":"stop_sequence","generated_tokens":4}}"#,
        );
        assert_eq!(stop.done, Some(Ending::new(4, Finish::Stop)));
    }

    #[test]
    fn error_events_are_rejections_with_tgis_status_and_garbage_is_a_protocol_error() {
        let mut parser = TgiParser::default();
        let cases = [
            ("validation", 422),
            ("overloaded", 429),
            ("generation", 500),
            ("incomplete_generation", 500),
        ];
        for (error_type, status) in cases {
            let event = json!({"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048", "error_type": error_type});
            match parser.data(event.to_string().as_bytes()).unwrap_err() {
                EngineError::Rejected { status: got, message } => {
                    assert_eq!(got, status, "{error_type}");
                    assert!(message.starts_with("Input validation error"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        let err = parser.data(br#"{"token":"#).unwrap_err();
        assert!(matches!(err, EngineError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn request_bodies_carry_only_set_fields_and_ask_for_details() {
        let mut req = GenerateRequest::text("Once", 8);
        assert_eq!(
            body(&req),
            json!({"inputs":"Once","parameters":{"max_new_tokens":8,"details":true}})
        );
        req.temperature = Some(0.5);
        req.top_p = Some(0.75);
        req.seed = Some(7);
        req.stop = vec!["\n".into()];
        assert_eq!(
            body(&req),
            json!({"inputs":"Once","parameters":{"max_new_tokens":8,"do_sample":true,"temperature":0.5,"top_p":0.75,"seed":7,"stop":["\n"],"details":true}})
        );
    }

    #[test]
    fn temperature_zero_is_greedy_and_top_p_one_is_left_out() {
        let mut req = GenerateRequest::text("Once", 8);
        req.temperature = Some(0.0);
        req.top_p = Some(0.5);
        assert_eq!(
            body(&req),
            json!({"inputs":"Once","parameters":{"max_new_tokens":8,"do_sample":false,"details":true}})
        );
        req.temperature = None;
        req.top_p = Some(1.0);
        assert_eq!(
            body(&req),
            json!({"inputs":"Once","parameters":{"max_new_tokens":8,"details":true}})
        );
    }
}
