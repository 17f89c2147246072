//! Prompt token counts for admission: the engine's own count when it can give one quickly,
//! else the bytes/4 estimate ([`validate::estimate_tokens`]).
//!
//! A count is an HTTP round trip to a Ready replica (llama-server's `/tokenize`, after
//! `/apply-template` for chat; see [`Tokenizer`]), so admission asks only when the answer can
//! change the decision ([`CountMode::NearLimit`], the default): when the prompt *might* not fit
//! the context — every token is at least one byte, so a prompt of `b` bytes is at most about
//! `b` tokens — and otherwise admits on the estimate (the engine reports the real count after
//! the reply, and that is what the task's end event, logs and metrics carry). Answers are kept
//! in a bounded cache per (model, exact prompt), so a repeated prompt costs a hash.
//!
//! Counting never fails a request: no Ready replica (a Pool scaled to zero), an engine API
//! without these routes (`openai`, `tgi`), an error or a wait past [`COUNT_WAIT`] all fall back
//! to the estimate. Each request counts on its own task; nothing queues behind a count. This
//! module decides how a prompt is counted; it does not refuse anything (validation does).

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use llorch_manifests::{ApiFlavour, ServingContract, ServingPool};

use super::validate::{PromptCount, estimate_tokens};
use crate::engine::Prompt;
use crate::engine::tokenize::Tokenizer;

/// The environment variable that sets [`CountMode`] for llama-orchd (`off`, `near-limit`,
/// `always`).
pub const TOKEN_COUNT_ENV: &str = "LLORCH_TOKEN_COUNT";
/// The longest admission waits for a count before it takes the estimate.
pub const COUNT_WAIT: Duration = Duration::from_millis(50);
/// Counts kept (each a few dozen bytes).
pub const CACHE_ENTRIES: usize = 4096;
/// Template bytes allowed per chat message, and for the whole template (a default system
/// prompt, the generation prompt), when bounding a chat prompt's tokens from its bytes.
const TEMPLATE_BYTES_PER_MESSAGE: u64 = 32;
const TEMPLATE_BYTES: u64 = 256;

/// When admission asks the engine for a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CountMode {
    /// Never: the estimate decides.
    Off,
    /// Only when the prompt might not fit the context by its bytes (or its count is cached).
    #[default]
    NearLimit,
    /// For every prompt a llama-server engine can count.
    Always,
}

/// A [`CountMode`] name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a token count mode; use off, near-limit or always")]
pub struct UnknownMode(String);

impl FromStr for CountMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(CountMode::Off),
            "near-limit" | "" => Ok(CountMode::NearLimit),
            "always" => Ok(CountMode::Always),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

/// Which cached count a prompt has: its model's identity and the prompt, each hashed with
/// per-process keys (a client cannot aim a collision at another's prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    model: u64,
    prompt: u64,
}

/// Counts prompts for admission. One per data plane.
pub struct PromptCounter {
    tokenizer: Tokenizer,
    cache: quick_cache::sync::Cache<Key, u32>,
    keys: RandomState,
    mode: AtomicU8,
    wait: Duration,
}

impl PromptCounter {
    /// A counter that asks through `tokenizer`, in [`CountMode::NearLimit`].
    pub fn new(tokenizer: Tokenizer) -> Self {
        Self::with_limits(tokenizer, CACHE_ENTRIES, COUNT_WAIT)
    }

    /// With a cache of `entries` counts, waiting at most `wait` for the engine.
    pub fn with_limits(tokenizer: Tokenizer, entries: usize, wait: Duration) -> Self {
        Self {
            tokenizer,
            cache: quick_cache::sync::Cache::new(entries),
            keys: RandomState::new(),
            mode: AtomicU8::new(CountMode::default() as u8),
            wait,
        }
    }

    /// Sets when to count.
    pub fn set_mode(&self, mode: CountMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// When it counts.
    pub fn mode(&self) -> CountMode {
        match self.mode.load(Ordering::Relaxed) {
            0 => CountMode::Off,
            2 => CountMode::Always,
            _ => CountMode::NearLimit,
        }
    }

    /// Counts held.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The count admission uses for `prompt` asking `max_tokens` of `pool`, run under
    /// `contract`: the engine's (cached, or asked within the wait) when the mode asks for one
    /// and the engine can give it, else the estimate.
    pub async fn count(
        &self,
        pool: &ServingPool,
        contract: &ServingContract,
        prompt: &Prompt,
        max_tokens: u32,
    ) -> PromptCount {
        let estimate = PromptCount::estimated(estimate_tokens(prompt));
        let mode = self.mode();
        if mode == CountMode::Off || contract.api != ApiFlavour::Llamacpp {
            return estimate;
        }
        let key = self.key(pool, contract, prompt);
        if let Some(tokens) = self.cache.get(&key) {
            return PromptCount::counted(tokens);
        }
        if mode == CountMode::NearLimit && !might_not_fit(prompt, max_tokens, contract.ctx_size) {
            return estimate;
        }
        if pool.replicas.is_empty() {
            return estimate;
        }
        // Any Ready replica runs the Pool's model; spread the counts over them.
        let replica = &pool.replicas[(key.prompt % pool.replicas.len() as u64) as usize];
        let asked = self.tokenizer.count(replica.endpoint.as_str(), prompt);
        match tokio::time::timeout(self.wait, asked).await {
            Ok(Ok(tokens)) => {
                self.cache.insert(key, tokens);
                PromptCount::counted(tokens)
            }
            Ok(Err(e)) => {
                tracing::debug!(pool = %pool.pool, error = %e, "prompt not counted by the engine; using the estimate");
                estimate
            }
            Err(_) => {
                tracing::debug!(pool = %pool.pool, wait_ms = self.wait.as_millis() as u64,
                    "the engine did not count the prompt in time; using the estimate");
                estimate
            }
        }
    }

    fn key(&self, pool: &ServingPool, contract: &ServingContract, prompt: &Prompt) -> Key {
        let mut model = self.keys.build_hasher();
        match (&contract.model_digest, &contract.model_file) {
            (Some(digest), _) => ("digest", digest).hash(&mut model),
            (None, Some(file)) => ("file", file).hash(&mut model),
            // Neither: the Pool's own name for its Model, within this Pool.
            (None, None) => ("pool", &pool.pool, &pool.model).hash(&mut model),
        }
        let mut text = self.keys.build_hasher();
        match prompt {
            Prompt::Text(t) => ("text", t).hash(&mut text),
            Prompt::Chat(messages) => {
                "chat".hash(&mut text);
                for m in messages {
                    (&m.role, &m.content).hash(&mut text);
                }
            }
        }
        Key {
            model: model.finish(),
            prompt: text.finish(),
        }
    }
}

/// True when `prompt` plus `max_tokens` might exceed `ctx` tokens: when its most tokens (one
/// per byte, plus room for special tokens and, for chat, the template) do.
pub fn might_not_fit(prompt: &Prompt, max_tokens: u32, ctx: u32) -> bool {
    let most = match prompt {
        Prompt::Text(t) => t.len() as u64 + 2,
        Prompt::Chat(messages) => {
            messages
                .iter()
                .map(|m| (m.role.len() + m.content.len()) as u64 + TEMPLATE_BYTES_PER_MESSAGE)
                .sum::<u64>()
                + TEMPLATE_BYTES
        }
    };
    most + u64::from(max_tokens) > u64::from(ctx)
}

#[cfg(test)]
#[path = "prompt_count_tests.rs"]
mod tests;
