//! What every OpenAI response object and chunk of one request share (`id`, `object`, `created`,
//! `model`, `system_fingerprint`), and the `usage` object. No handlers here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::state::{AppState, BUILD_INFO, unix_now};
use crate::tokens::splitmix64;

/// The fields every OpenAI response object and chunk of one request share.
#[derive(Debug, Clone)]
pub struct Envelope {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
}

impl Envelope {
    pub fn new(state: &AppState, prefix: &str, object: &'static str) -> Self {
        Self {
            id: response_id(prefix),
            object,
            created: unix_now(),
            model: state.config.alias.clone(),
        }
    }

    pub fn wrap(&self, mut body: Value) -> Value {
        body["id"] = json!(self.id);
        body["object"] = json!(self.object);
        body["created"] = json!(self.created);
        body["model"] = json!(self.model);
        body["system_fingerprint"] = json!(BUILD_INFO);
        body
    }
}

/// OpenAI's `usage` object.
pub fn usage(prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": completion_tokens + prompt_tokens,
        "prompt_tokens_details": { "cached_tokens": 0 },
    })
}

/// A unique-enough id like llama-server's (`chatcmpl-<32 chars>`); not part of determinism.
fn response_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let a = splitmix64(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32));
    let b = splitmix64(a ^ u64::from(std::process::id()));
    format!("{prefix}-{a:016x}{b:016x}")
}
