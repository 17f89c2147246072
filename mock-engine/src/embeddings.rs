//! `POST /v1/embeddings` (and `/embeddings`): deterministic, L2-normalised vectors of
//! `--embd-dim` numbers from each input's text, in OpenAI's shape, as numbers or (with
//! `encoding_format: "base64"`, the official Python SDK's default) base64 of little-endian f32.
//! Without `--embeddings` it answers 501 with llama-server's message.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::request::decode;
use crate::state::AppState;
use crate::tokenizer::Tokenizer;
use crate::tokens::{count_prompt_tokens, fnv1a64, splitmix64};

#[derive(Debug, Deserialize)]
struct EmbeddingsBody {
    input: Option<Value>,
    encoding_format: Option<String>,
}

/// One input: its text and what it costs in tokens.
#[derive(Debug, Clone, PartialEq)]
struct Input {
    text: String,
    tokens: u32,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    if !state.config.embeddings {
        return ApiError::not_supported("This server does not support embeddings. Start it with `--embeddings`")
            .into_response();
    }
    let body: EmbeddingsBody = match decode(&body) {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return ApiError::invalid_request(format!(
                "encoding_format: must be \"float\" or \"base64\", got \"{other}\""
            ))
            .into_response();
        }
    };
    let inputs = match inputs(body.input, &state.tokenizer) {
        Ok(inputs) => inputs,
        Err(err) => return err.into_response(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embed(&input.text, state.config.embd_dim);
            let embedding = if base64 {
                json!(base64_f32(&vector))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens: u32 = inputs.iter().map(|input| input.tokens).sum();
    let reply = json!({
        "object": "list",
        "data": data,
        "model": state.config.alias,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    });
    (StatusCode::OK, Json(reply)).into_response()
}

/// `input`: a string, a list of strings, a list of token ids, or a list of lists of token ids.
fn inputs(input: Option<Value>, tokenizer: &Tokenizer) -> Result<Vec<Input>, ApiError> {
    let text = |text: String| Input {
        tokens: count_prompt_tokens(&text),
        text,
    };
    let ids = |field: &str, items: &[Value]| -> Result<Input, ApiError> {
        let ids = items
            .iter()
            .map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| ApiError::invalid_request(format!("{field}: token ids must be integers >= 0")))?;
        Ok(Input {
            text: tokenizer.detokenize(&ids),
            tokens: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        })
    };
    match input {
        Some(Value::String(one)) => Ok(vec![text(one)]),
        Some(Value::Array(items)) if items.is_empty() => Err(ApiError::invalid_request("input: must not be empty")),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => Ok(vec![ids("input", &items)?]),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(one) => Ok(text(one)),
                Value::Array(inner) => ids(&format!("input[{i}]"), &inner),
                _ => Err(ApiError::invalid_request(format!(
                    "input[{i}]: must be a string or an array of token ids"
                ))),
            })
            .collect(),
        _ => Err(ApiError::invalid_request(
            "input: is required: a string, an array of strings, of token ids, or of arrays of token ids",
        )),
    }
}

/// A deterministic unit vector of `dim` numbers for `text`.
pub fn embed(text: &str, dim: u32) -> Vec<f32> {
    let base = fnv1a64(format!("embedding\0{text}").as_bytes());
    let raw: Vec<f32> = (0..u64::from(dim))
        .map(|i| {
            let bits = splitmix64(base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))) >> 40;
            // 24 bits to [-1, 1).
            (bits as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return raw;
    }
    raw.into_iter().map(|x| x / norm).collect()
}

/// Base64 (standard alphabet, padded) of the vector's little-endian f32 bytes.
pub fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors_that_depend_on_the_text() {
        let a = embed("hello", 16);
        assert_eq!(a, embed("hello", 16));
        assert_eq!(a.len(), 16);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_ne!(a, embed("world", 16));
    }

    #[test]
    fn base64_matches_known_encodings() {
        // 1.0f32 little-endian is 00 00 80 3f.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]), "AACAPwAAgD8AAIA/");
        assert_eq!(base64_f32(&[]), "");
    }
}
