//! KV-cache usage from llama-server's `/slots` (on by default; `--no-slots` turns it off): what
//! llama.cpp offers since it dropped `llamacpp:kv_cache_usage_ratio` from `/metrics` in 2025.
//!
//! Each slot reports its context size `n_ctx`; a busy slot also reports `n_prompt_tokens`,
//! which (llama.cpp as vendored in llama-cpp-python 0.3.36, observed) counts the tokens its
//! context holds: the prompt and what was generated so far. The ratio is the busy slots'
//! tokens over every slot's context. Idle slots keep their last prompt cached, but nothing
//! runs out of room because of it, so they count as free.

use serde::Deserialize;

/// One entry of `/slots`, only the fields read here.
#[derive(Debug, Deserialize)]
struct Slot {
    n_ctx: u64,
    #[serde(default)]
    is_processing: bool,
    #[serde(default)]
    n_prompt_tokens: Option<u64>,
}

/// The usage ratio, 0 to 1; `None` when the body is not a `/slots` array or has no context.
pub fn usage_ratio(body: &[u8]) -> Option<f64> {
    let slots: Vec<Slot> = serde_json::from_slice(body).ok()?;
    let capacity: u64 = slots.iter().map(|s| s.n_ctx).sum();
    if capacity == 0 {
        return None;
    }
    let used: u64 = slots
        .iter()
        .filter(|s| s.is_processing)
        .map(|s| s.n_prompt_tokens.unwrap_or(0).min(s.n_ctx))
        .sum();
    Some((used as f64 / capacity as f64).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from llama-server (llama-cpp-python 0.3.36's llama.cpp), `--parallel 2 -c 2048`,
    /// mid-generation in slot 1; `params` trimmed.
    const BUSY: &str = r#"[
      {"id": 0, "n_ctx": 1024, "speculative": false, "is_processing": false},
      {"id": 1, "n_ctx": 1024, "speculative": false, "is_processing": true, "id_task": 19,
       "n_prompt_tokens": 89, "n_prompt_tokens_processed": 2, "n_prompt_tokens_cache": 4,
       "params": {"seed": 4294967295},
       "next_token": [{"has_next_token": true, "has_new_line": false, "n_remain": 317, "n_decoded": 83}]}
    ]"#;

    #[test]
    fn busy_slots_tokens_over_all_slots_context() {
        assert_eq!(usage_ratio(BUSY.as_bytes()), Some(89.0 / 2048.0));
    }

    #[test]
    fn an_idle_slot_with_a_cached_prompt_counts_as_free() {
        let idle = BUSY.replace(r#""is_processing": true"#, r#""is_processing": false"#);
        assert_eq!(usage_ratio(idle.as_bytes()), Some(0.0));
    }

    #[test]
    fn something_else_than_slots_reads_as_no_answer() {
        assert_eq!(usage_ratio(b"[]"), None);
        assert_eq!(usage_ratio(br#"{"error": {"code": 501}}"#), None);
        assert_eq!(usage_ratio(b"not json"), None);
    }
}
