//! Log probabilities: deterministic values (always <= 0) for each generated token and its
//! `top_logprobs` alternatives, in OpenAI's chat shape (`{"content":[…]}`) and its legacy
//! completions shape (`{"tokens","token_logprobs","top_logprobs","text_offset"}`).
//!
//! A token's values are a pure function of its vocabulary id and its position in the reply.
//! The chosen token is always the most likely of its alternatives. Pure: no I/O.

use serde_json::{Map, Value, json};

use crate::tokens::{VOCABULARY, splitmix64, token_text};

/// The most `top_logprobs` alternatives a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;

/// One generated token with its log probability and its `top` alternatives (most likely first;
/// the chosen token is the first of them).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: &'static str,
    pub logprob: f32,
    pub top: Vec<(&'static str, f32)>,
}

/// The log probabilities of token `id` at `position` (0-based) of a reply, with `top` alternatives.
pub fn token_logprob(id: u32, position: u32, top: u8) -> TokenLogprob {
    let hash = splitmix64((u64::from(position) << 32) ^ u64::from(id) ^ 0x6c6f_6770_726f_6273);
    // 24 bits of the hash, scaled to (-2, 0].
    let logprob = -((hash >> 40) as f32 / (1u64 << 24) as f32) * 2.0;
    let vocabulary = u32::try_from(VOCABULARY.len()).unwrap_or(u32::MAX);
    let top = (0..u32::from(top))
        .map(|j| {
            let alternative = (id + j) % vocabulary;
            (token_text(alternative), logprob - 0.5 * j as f32)
        })
        .collect();
    TokenLogprob {
        token: token_text(id),
        logprob,
        top,
    }
}

/// The entries for `token_ids`, the first of which is at `first_position` of the reply.
pub fn for_tokens(token_ids: &[u32], first_position: u32, top: u8) -> Vec<TokenLogprob> {
    token_ids
        .iter()
        .zip(first_position..)
        .map(|(id, position)| token_logprob(*id, position, top))
        .collect()
}

/// OpenAI chat's `logprobs` object.
pub fn chat_json(entries: &[TokenLogprob]) -> Value {
    let one = |token: &str, logprob: f32| json!({ "token": token, "logprob": logprob, "bytes": token.as_bytes() });
    let content: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let mut value = one(entry.token, entry.logprob);
            value["top_logprobs"] = entry.top.iter().map(|(token, logprob)| one(token, *logprob)).collect();
            value
        })
        .collect();
    json!({ "content": content })
}

/// OpenAI completions' legacy `logprobs` object; `text_offset` counts bytes of the generated
/// text, the first entry being at `start_offset`.
pub fn legacy_json(entries: &[TokenLogprob], start_offset: usize) -> Value {
    let mut offsets = Vec::with_capacity(entries.len());
    let mut offset = start_offset;
    for entry in entries {
        offsets.push(offset);
        offset += entry.token.len();
    }
    let top: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let map: Map<String, Value> = entry
                .top
                .iter()
                .map(|(token, logprob)| ((*token).to_owned(), json!(logprob)))
                .collect();
            Value::Object(map)
        })
        .collect();
    json!({
        "tokens": entries.iter().map(|e| e.token).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": offsets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_non_positive_and_the_chosen_token_leads() {
        for position in 0..50 {
            let entry = token_logprob(position % 64, position, 5);
            assert_eq!(entry, token_logprob(position % 64, position, 5));
            assert!(entry.logprob <= 0.0);
            assert_eq!(entry.top.len(), 5);
            assert_eq!(entry.top[0], (entry.token, entry.logprob));
            assert!(entry.top.windows(2).all(|w| w[0].1 > w[1].1));
        }
    }

    #[test]
    fn the_chat_shape_has_bytes_and_top_logprobs() {
        let value = chat_json(&for_tokens(&[2], 0, 2));
        let entry = &value["content"][0];
        assert_eq!(entry["token"], " quick");
        assert_eq!(entry["bytes"], json!(" quick".as_bytes()));
        assert_eq!(entry["top_logprobs"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_legacy_shape_offsets_count_generated_bytes() {
        let value = legacy_json(&for_tokens(&[0, 1], 0, 1), 10);
        assert_eq!(value["tokens"], json!([" the", " a"]));
        assert_eq!(value["text_offset"], json!([10, 14]));
        assert_eq!(value["top_logprobs"][1].as_object().map(Map::len), Some(1));
    }
}
