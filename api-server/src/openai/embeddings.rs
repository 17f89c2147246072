//! `POST /v1/embeddings` bodies and their mapping onto a task for a Pool with
//! `workload: embeddings`. The task is queued, placed and counted like any other; its engine
//! answers once, whole ([`crate::engine::EngineClient::embed`]).
//!
//! `input` is a string or a list of strings (at most [`MAX_INPUTS`]); token arrays are
//! refused, as for completions. `encoding_format`, `dimensions` and `user` are relayed as
//! written, or refused by the engine API's field table ([`crate::engine::fields`]).

use std::sync::Arc;

use llorch_manifests::task::TaskRequest;
use serde::Deserialize;
use serde_json::Value;

use super::request::{DATA_PLANE_FIELDS, Target};
use crate::engine::fields::{ClientFields, Surface};
use crate::error::ApiError;

/// Most inputs in one request (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

/// The fields the data plane reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EmbeddingsRequest {
    /// A Pool name, or a Model served by a Pool.
    #[serde(default)]
    pub model: Option<String>,
    /// A string, or a list of strings.
    #[serde(default)]
    pub input: Option<Value>,
    /// Extra field: `interactive` or `batch`.
    #[serde(default)]
    pub priority: Option<String>,
}

/// Reads a body: its typed view, and the fields to relay (`input` included).
pub fn parse(body: &[u8]) -> Result<(EmbeddingsRequest, ClientFields), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    let typed = EmbeddingsRequest::deserialize(&value).map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::invalid("request body: must be a JSON object"));
    };
    fields.retain(|name, _| !DATA_PLANE_FIELDS.contains(&name.as_str()));
    let fields = ClientFields {
        surface: Surface::Embeddings,
        fields: Arc::new(fields),
    };
    Ok((typed, fields))
}

/// The inputs' text, joined: what admission counts against the Pool's context.
fn text_of(input: Option<Value>) -> Result<String, ApiError> {
    let bad = |why: String| ApiError::invalid_field("input", why);
    match input {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.len() > MAX_INPUTS {
                return Err(bad(format!(
                    "`input` has {} items; at most {MAX_INPUTS} per request",
                    items.len()
                )));
            }
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) if !s.is_empty() => texts.push(s),
                    Value::String(_) => return Err(bad(format!("`input[{i}]` is empty"))),
                    _ => {
                        return Err(bad(
                            "`input` must be a string or a list of strings; token arrays are not supported".into(),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        None | Some(Value::Null) => Err(bad("`input` is missing".into())),
        Some(_) => Err(bad(
            "`input` must be a non-empty string or a non-empty list of strings".into()
        )),
    }
}

/// Maps a body onto a task for `target`; `priority` is the body's or the `X-Priority`
/// header's, already read.
pub fn map_request(
    body: EmbeddingsRequest,
    target: Target,
    priority: llorch_manifests::task::Priority,
) -> Result<TaskRequest, ApiError> {
    let prompt = text_of(body.input)?;
    let (pool, model) = match target {
        Target::Pool(p) => (Some(p), None),
        Target::Model(m) => (None, Some(m)),
        Target::Any => (None, None),
    };
    Ok(TaskRequest {
        pool,
        model,
        prompt: Some(prompt),
        // One answer; validation wants room for at least one token.
        max_tokens: 1,
        priority,
        ..TaskRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_and_lists_of_strings_are_taken_and_token_arrays_refused_by_name() {
        assert_eq!(text_of(Some(json!("hi"))).unwrap(), "hi");
        assert_eq!(text_of(Some(json!(["a", "b"]))).unwrap(), "a\nb");
        for bad in [json!([1, 2]), json!([]), json!(""), json!(["a", ""]), json!(3)] {
            let e = text_of(Some(bad.clone())).unwrap_err();
            assert_eq!(e.openai_body()["error"]["param"], "input", "{bad}");
        }
        assert!(text_of(None).is_err());
    }

    #[test]
    fn the_relayed_fields_keep_input_and_drop_the_data_planes() {
        let body = br#"{"model":"e","input":["x"],"encoding_format":"base64","priority":"batch","dimensions":8}"#;
        let (typed, fields) = parse(body).unwrap();
        assert_eq!(typed.priority.as_deref(), Some("batch"));
        let mut keys: Vec<&str> = fields.fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["dimensions", "encoding_format", "input"]);
    }
}
