//! Turns a raw [`TaskRequest`] into a [`ValidTask`] against the Pool it targets, refusing
//! before enqueue what cannot fit (ORCH-3014, OC-CORE-1020/1021).
//!
//! Token counting: the context check ([`check_context`]) takes a [`PromptCount`], either the
//! engine's own count (llama-server's tokenizer, asked by
//! [`PromptCounter`](super::prompt_count::PromptCounter) when the prompt might not fit, and
//! cached) or the estimate [`estimate_tokens`]: `ceil(bytes / 4)` for text, plus 4 per chat
//! message for its template — about right for English with BPE vocabularies and deliberately
//! cheap. The refusal says which it used. A prompt that the estimate lets through but the engine
//! finds too long is refused by the engine (`INVALID_PARAMS`).

use llorch_manifests::task::{Priority, TaskRequest};
use llorch_manifests::{ServingContract, ServingPool, Workload};

use crate::engine::{GenerateRequest, Prompt};
use crate::error::ApiError;

/// Stop strings per request.
pub const MAX_STOP: usize = 8;
/// Bytes per stop string.
pub const MAX_STOP_BYTES: usize = 64;

/// A request that fits its Pool.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidTask {
    /// What the engine is asked.
    pub generate: GenerateRequest,
    /// Priority.
    pub priority: Priority,
    /// Session, for affinity.
    pub session_id: Option<String>,
    /// Prompt tokens, as admission counted them ([`ValidTask::prompt_source`] says how).
    pub prompt_tokens: u32,
    /// A token stream, or embeddings (one answer).
    pub workload: Workload,
    /// Whether [`ValidTask::prompt_tokens`] is the engine's count or the estimate.
    pub prompt_source: CountSource,
}

/// Where a prompt's token count came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CountSource {
    /// `ceil(bytes / 4)` (+4 per chat message): [`estimate_tokens`].
    #[default]
    Estimated,
    /// The engine's tokenizer.
    Counted,
}

impl CountSource {
    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CountSource::Estimated => "estimated",
            CountSource::Counted => "counted",
        }
    }
}

/// A prompt's token count and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptCount {
    /// Tokens.
    pub tokens: u32,
    /// How they were counted.
    pub source: CountSource,
}

impl PromptCount {
    /// The estimate's `tokens`.
    pub fn estimated(tokens: u32) -> Self {
        Self {
            tokens,
            source: CountSource::Estimated,
        }
    }

    /// The engine's `tokens`.
    pub fn counted(tokens: u32) -> Self {
        Self {
            tokens,
            source: CountSource::Counted,
        }
    }
}

impl std::fmt::Display for PromptCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            CountSource::Estimated => write!(f, "~{} tokens, estimated as bytes/4", self.tokens),
            CountSource::Counted => write!(f, "{} tokens, counted by the engine", self.tokens),
        }
    }
}

/// Longest `session_id`, in bytes (a session id is kept with every task and logged).
pub const MAX_SESSION_ID_BYTES: usize = 128;

/// A `session_id` that may be kept and logged: at most [`MAX_SESSION_ID_BYTES`], no control
/// characters.
pub fn acceptable_session_id(id: &str) -> bool {
    id.len() <= MAX_SESSION_ID_BYTES && !id.chars().any(char::is_control)
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

/// Estimated tokens of a prompt.
pub fn estimate_tokens(prompt: &Prompt) -> u32 {
    let est = |s: &str| s.len().div_ceil(4) as u32;
    match prompt {
        Prompt::Text(t) => est(t),
        Prompt::Chat(ms) => ms.iter().map(|m| est(&m.content) + 4).sum(),
    }
}

/// Validates `req` for `pool`, whose replicas run under `contract`, its prompt counted by the
/// estimate.
pub fn validate(req: TaskRequest, pool: &ServingPool, contract: &ServingContract) -> Result<ValidTask, ApiError> {
    let valid = validate_request(req, pool, contract)?;
    check_context(&valid, pool, contract)?;
    Ok(valid)
}

/// Validates everything in `req` but whether its prompt fits the context (the prompt count is
/// the estimate until the caller sets another; then [`check_context`]).
pub fn validate_request(
    req: TaskRequest,
    pool: &ServingPool,
    contract: &ServingContract,
) -> Result<ValidTask, ApiError> {
    let prompt = match (req.prompt, req.messages) {
        (Some(p), None) => Prompt::Text(p),
        (None, Some(m)) if !m.is_empty() => Prompt::Chat(m),
        (None, Some(_)) => return Err(invalid("`messages` is empty; send at least one message".into())),
        (Some(_), Some(_)) => return Err(invalid("send either `prompt` or `messages`, not both".into())),
        (None, None) => return Err(invalid("missing `prompt` (or `messages`)".into())),
    };
    if req.max_tokens == 0 {
        return Err(invalid("`max_tokens` must be at least 1".into()));
    }
    if req.max_tokens > contract.ctx_size {
        return Err(invalid(format!(
            "`max_tokens` {} exceeds pool `{}`'s context of {} tokens",
            req.max_tokens, pool.pool, contract.ctx_size
        )));
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(invalid(format!("`temperature` {t} is outside 0–2")));
    }
    if let Some(p) = req.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(invalid(format!("`top_p` {p} is outside (0, 1]")));
    }
    // llama.cpp seeds are 32-bit: a larger seed would be truncated by the real engine (and
    // not by the mock), so the same request could differ between them.
    if let Some(seed) = req.seed
        && seed > u64::from(u32::MAX)
    {
        return Err(invalid(format!(
            "`seed` {seed} is above {} (engines use 32-bit seeds)",
            u32::MAX
        )));
    }
    if let Some(id) = &req.session_id
        && !acceptable_session_id(id)
    {
        return Err(ApiError::invalid_field(
            "session_id",
            format!("`session_id` takes at most {MAX_SESSION_ID_BYTES} bytes without control characters"),
        ));
    }
    if req.stop.len() > MAX_STOP || req.stop.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_BYTES) {
        return Err(invalid(format!(
            "`stop` takes at most {MAX_STOP} non-empty strings of at most {MAX_STOP_BYTES} bytes"
        )));
    }
    let prompt_tokens = estimate_tokens(&prompt);
    Ok(ValidTask {
        generate: GenerateRequest {
            prompt,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            stop: req.stop,
            passthrough: None,
        },
        priority: req.priority,
        session_id: req.session_id.filter(|s| !s.is_empty()),
        prompt_tokens,
        workload: Workload::Generate,
        prompt_source: CountSource::Estimated,
    })
}

/// Refuses `valid` when its prompt, as counted, plus its `max_tokens` exceed `pool`'s context.
pub fn check_context(valid: &ValidTask, pool: &ServingPool, contract: &ServingContract) -> Result<(), ApiError> {
    let max_tokens = valid.generate.max_tokens;
    if valid.prompt_tokens.saturating_add(max_tokens) <= contract.ctx_size {
        return Ok(());
    }
    let count = PromptCount {
        tokens: valid.prompt_tokens,
        source: valid.prompt_source,
    };
    Err(invalid(format!(
        "the prompt ({count}) plus `max_tokens` {max_tokens} exceeds pool `{}`'s context of {} tokens; shorten the prompt or lower max_tokens",
        pool.pool, contract.ctx_size
    )))
}
