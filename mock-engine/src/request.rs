//! Request bodies: parses the three generation APIs' JSON into one [`ValidRequest`].
//!
//! Unknown fields are ignored (as llama-server does); fields the mock uses are type-checked and
//! errors name the field. Bodies are read whatever their `Content-Type`, like llama-server.
//! No I/O and no server state beyond the default seed.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api_error::ApiError;
use crate::chat_template::{self, ChatMessage};
use crate::generation::GenerationSpec;
use crate::logprobs::MAX_TOP_LOGPROBS;
use crate::tokens::{Sampling, count_prompt_tokens};
use crate::tools::{self, ToolCall};

/// llama-server's default sampling settings, used when a request leaves them out.
pub const DEFAULT_TEMPERATURE: f64 = 0.8;
pub const DEFAULT_TOP_P: f64 = 0.95;

/// A generation request, whichever API it came through.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    pub spec: GenerationSpec,
    /// Whitespace-separated words of the prompt (for chat: of the rendered conversation).
    pub prompt_tokens: u32,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// Send log probabilities with this many alternatives per token (see [`crate::logprobs`]).
    pub logprobs: Option<u8>,
}

/// The fields the mock reads from any of the three APIs; each parser picks its own.
#[derive(Debug, Default, Deserialize)]
struct RawBody {
    prompt: Option<Value>,
    messages: Option<Vec<ChatMessage>>,
    n_predict: Option<i64>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    reasoning_effort: Option<Value>,
    logprobs: Option<Value>,
    top_logprobs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

pub fn parse_native(body: &[u8], default_seed: u64) -> Result<ValidRequest, ApiError> {
    let mut raw: RawBody = decode(body)?;
    let prompt = prompt_text(raw.prompt.take())?;
    let limit = raw.n_predict.or(raw.max_tokens);
    build(prompt, limit, raw, default_seed)
}

pub fn parse_completion(body: &[u8], default_seed: u64) -> Result<ValidRequest, ApiError> {
    let mut raw: RawBody = decode(body)?;
    let prompt = prompt_text(raw.prompt.take())?;
    let limit = raw.max_tokens;
    let logprobs = match raw.logprobs.take() {
        None | Some(Value::Null) => None,
        Some(Value::Number(k)) => Some(top_count("logprobs", k.as_i64())?),
        Some(_) => return Err(ApiError::invalid_request("logprobs: must be an integer from 0 to 20")),
    };
    Ok(ValidRequest {
        logprobs,
        ..build(prompt, limit, raw, default_seed)?
    })
}

/// A chat request: the generation, plus what shapes the reply around it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidChat {
    pub request: ValidRequest,
    /// Answer with this call instead of text (see [`tools`]).
    pub tool_call: Option<ToolCall>,
    /// The last message was a `tool` message with this text: the reply starts by quoting it.
    pub tool_result: Option<String>,
    /// `reasoning_effort` was set: the reply starts with reasoning (see [`crate::reasoning`]).
    pub reasoning: bool,
}

pub fn parse_chat(body: &[u8], default_seed: u64) -> Result<ValidChat, ApiError> {
    let mut raw: RawBody = decode(body)?;
    let messages = raw
        .messages
        .take()
        .ok_or_else(|| ApiError::invalid_request("messages: is required"))?;
    let Some(last) = messages.last() else {
        return Err(ApiError::invalid_request("messages: must hold at least one message"));
    };
    let prompt = chat_template::render(&messages)?;
    let tool_result = match last.role.as_str() {
        "tool" => Some(chat_template::content_text(messages.len() - 1, last)?),
        _ => None,
    };
    let last_is_user = last.role == "user";
    let tools = raw.tools.take();
    let tool_choice = raw.tool_choice.take();
    let reasoning = raw.reasoning_effort.take().is_some_and(|effort| !effort.is_null());
    let limit = raw.max_completion_tokens.or(raw.max_tokens);
    let logprobs = match raw.logprobs.take() {
        None | Some(Value::Null | Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(top_count("top_logprobs", raw.top_logprobs.or(Some(0)))?),
        Some(_) => return Err(ApiError::invalid_request("logprobs: must be a boolean")),
    };
    let request = ValidRequest {
        logprobs,
        ..build(prompt, limit, raw, default_seed)?
    };
    let tool_call = match last_is_user {
        true => tools::plan(
            tools.as_ref(),
            tool_choice.as_ref(),
            request.spec.sampling.seed,
            &request.spec.prompt,
        )?,
        false => None,
    };
    Ok(ValidChat {
        request,
        tool_call,
        tool_result,
        reasoning,
    })
}

/// A `top_logprobs` count: 0 to [`MAX_TOP_LOGPROBS`].
fn top_count(field: &str, value: Option<i64>) -> Result<u8, ApiError> {
    value
        .and_then(|k| u8::try_from(k).ok())
        .filter(|k| *k <= MAX_TOP_LOGPROBS)
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{field}: must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {}",
                value.map_or_else(|| "nothing".to_owned(), |k| k.to_string())
            ))
        })
}

fn prompt_text(prompt: Option<Value>) -> Result<String, ApiError> {
    match prompt {
        Some(Value::String(text)) => Ok(text),
        Some(Value::Array(mut items)) if items.len() == 1 && items[0].is_string() => match items.pop() {
            Some(Value::String(text)) => Ok(text),
            _ => Err(unsupported_prompt()),
        },
        None | Some(Value::Null) => Err(ApiError::invalid_request("prompt: is required")),
        Some(_) => Err(unsupported_prompt()),
    }
}

fn unsupported_prompt() -> ApiError {
    ApiError::invalid_request(
        "prompt: must be a string or an array of one string (token arrays and several prompts are not supported by mock-engine)",
    )
}

fn build(prompt: String, limit: Option<i64>, common: RawBody, default_seed: u64) -> Result<ValidRequest, ApiError> {
    if let Some(n) = common.n
        && n != 1
    {
        return Err(ApiError::invalid_request(format!(
            "n: only 1 choice is supported by mock-engine, got {n}"
        )));
    }
    let temperature = common.temperature.unwrap_or(DEFAULT_TEMPERATURE);
    let top_p = common.top_p.unwrap_or(DEFAULT_TOP_P);
    if !(0.0..=1.0).contains(&top_p) {
        return Err(ApiError::invalid_request(format!(
            "top_p: must be between 0 and 1, got {top_p}"
        )));
    }
    let seed = match common.seed {
        Some(seed) if seed >= 0 => seed.unsigned_abs(),
        _ => default_seed,
    };
    // Negative means "no limit", as llama-server's n_predict = -1.
    let n_predict = limit
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let stop = stop_strings(common.stop)?;
    Ok(ValidRequest {
        prompt_tokens: count_prompt_tokens(&prompt),
        spec: GenerationSpec {
            prompt,
            sampling: Sampling {
                seed,
                temperature,
                top_p,
            },
            n_predict,
            stop,
        },
        stream: common.stream.unwrap_or(false),
        include_usage: common.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        logprobs: None,
    })
}

fn stop_strings(stop: Option<Value>) -> Result<Vec<String>, ApiError> {
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one]),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid_request(format!("stop[{i}]: must be a string"))),
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_request(
            "stop: must be a string or an array of strings",
        )),
    }
}

/// Reads a JSON body; errors name the field at fault.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid_request(format!("request body must be a JSON object: {inner}"))
        } else {
            ApiError::invalid_request(format!("{path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::DEFAULT_SEED;

    fn native(body: &str) -> Result<ValidRequest, ApiError> {
        parse_native(body.as_bytes(), DEFAULT_SEED)
    }

    fn message(err: ApiError) -> String {
        err.body()["error"]["message"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_native_request_parses_with_llama_server_defaults() {
        let r = native(r#"{"prompt":"Once upon a time"}"#).unwrap();
        assert_eq!(r.spec.prompt, "Once upon a time");
        assert_eq!(r.prompt_tokens, 4);
        assert_eq!(r.spec.n_predict, None);
        assert_eq!(
            r.spec.sampling,
            Sampling {
                seed: DEFAULT_SEED,
                temperature: 0.8,
                top_p: 0.95
            }
        );
        assert!(!r.stream);
    }

    #[test]
    fn native_fields_are_read() {
        let r = native(
            r#"{"prompt":["hi"],"n_predict":7,"temperature":0.1,"top_p":0.5,"seed":3,"stop":["x"],"stream":true}"#,
        )
        .unwrap();
        assert_eq!(r.spec.prompt, "hi");
        assert_eq!(r.spec.n_predict, Some(7));
        assert_eq!(
            r.spec.sampling,
            Sampling {
                seed: 3,
                temperature: 0.1,
                top_p: 0.5
            }
        );
        assert_eq!(r.spec.stop, vec!["x".to_owned()]);
        assert!(r.stream);
    }

    #[test]
    fn negative_limits_and_seeds_mean_unset() {
        let r = native(r#"{"prompt":"a","n_predict":-1,"seed":-1}"#).unwrap();
        assert_eq!((r.spec.n_predict, r.spec.sampling.seed), (None, DEFAULT_SEED));
        assert_eq!(parse_native(br#"{"prompt":"a"}"#, 42).unwrap().spec.sampling.seed, 42);
    }

    #[test]
    fn type_errors_name_the_field() {
        assert!(message(native(r#"{"prompt":"a","n_predict":"ten"}"#).unwrap_err()).starts_with("n_predict:"));
        assert!(message(native(r#"{"prompt":"a","stop":[1]}"#).unwrap_err()).starts_with("stop[0]:"));
        assert!(message(native(r#"{"n_predict":1}"#).unwrap_err()).starts_with("prompt:"));
        assert!(message(native("not json").unwrap_err()).contains("JSON object"));
        assert!(message(native(r#"{"prompt":[1,2]}"#).unwrap_err()).starts_with("prompt:"));
    }

    #[test]
    fn openai_completions_read_max_tokens_stop_string_and_usage_option() {
        let body = r#"{"model":"m","prompt":"p q","max_tokens":3,"stop":"END","stream":true,"stream_options":{"include_usage":true}}"#;
        let r = parse_completion(body.as_bytes(), DEFAULT_SEED).unwrap();
        assert_eq!((r.spec.n_predict, r.prompt_tokens), (Some(3), 2));
        assert_eq!(r.spec.stop, vec!["END".to_owned()]);
        assert!(r.stream && r.include_usage);
        let err = parse_completion(br#"{"prompt":"p","n":2}"#, DEFAULT_SEED).unwrap_err();
        assert!(message(err).starts_with("n:"));
    }

    #[test]
    fn chat_messages_render_through_the_mock_template() {
        let body = r#"{"messages":[{"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}]}],
            "max_completion_tokens":4,"max_tokens":9}"#;
        let r = parse_chat(body.as_bytes(), DEFAULT_SEED).unwrap().request;
        assert_eq!(r.spec.prompt, "system: Be brief.\nuser: Hi there\nassistant:");
        assert_eq!(r.prompt_tokens, 7);
        assert_eq!(r.spec.n_predict, Some(4));
    }

    #[test]
    fn chat_requests_need_text_messages() {
        assert!(message(parse_chat(br#"{"messages":[]}"#, 1).unwrap_err()).starts_with("messages:"));
        let image = br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        assert!(message(parse_chat(image, 1).unwrap_err()).starts_with("messages[0].content[0]:"));
    }

    #[test]
    fn tool_calls_and_tool_answers_parse_and_the_answer_is_quoted() {
        let body = br#"{"messages":[{"role":"user","content":"Weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"sun"},{"type":"text","text":"ny"}]}],
            "tools":[{"type":"function","function":{"name":"w"}}],"reasoning_effort":"low"}"#;
        let chat = parse_chat(body, 1).unwrap();
        assert_eq!(chat.tool_result.as_deref(), Some("sunny"));
        assert_eq!(chat.tool_call, None, "no call after a tool answer");
        assert!(chat.reasoning);
    }
}
