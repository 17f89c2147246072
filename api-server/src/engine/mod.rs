//! The engine edge: how the API server asks one inference engine for tokens.
//!
//! One trait, [`EngineClient`], with one adapter per [`ApiFlavour`]: llama-server's native API
//! ([`LlamaCpp`]), OpenAI-compatible servers ([`OpenAi`]) and text-generation-inference's
//! native API ([`Tgi`]). [`EngineClients`] builds them all on one pooled
//! [`transport::Transport`] (HTTP/1.1 driven by the task that reads the reply). An adapter
//! turns the engine's server-sent events into a [`TokenStream`] of [`EngineEvent`]s, and every
//! failure into an [`EngineError`] that knows its [`ErrorCode`] and whether a retry may help.
//! [`Watchdog`] bounds a stream in time. [`tokenize::Tokenizer`] asks llama-server for a
//! prompt's token count (admission's context check).
//!
//! This module only talks to engines: it does not pick replicas, queue tasks, count budgets or
//! write to clients. It never retries either; the caller decides, using
//! [`EngineError::retriable`].
//!
//! [`ApiFlavour`]: llorch_manifests::ApiFlavour
//! [`ErrorCode`]: llorch_manifests::task::ErrorCode

mod clients;
mod delta;
mod error;
pub mod fields;
pub(crate) mod fuzzing;
mod http;
mod llamacpp;
mod openai;
mod own_waker;
pub mod sse;
mod stream;
mod tgi;
pub mod tokenize;
pub mod transport;
mod watchdog;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use llorch_manifests::task::ChatMessage;

use crate::sources::BoxFuture;

pub use clients::{ClientOptions, EngineClients};
pub use delta::Delta;
pub use error::EngineError;
pub use llamacpp::LlamaCpp;
pub use llorch_manifests::task::FinishReason as Finish;
pub use openai::OpenAi;
pub use tgi::Tgi;
pub use watchdog::Watchdog;

/// What to generate from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// A raw prompt, sent as is (no chat template).
    Text(String),
    /// Chat messages; the engine applies its chat template.
    Chat(Vec<ChatMessage>),
}

/// One generation, in the engine-neutral terms of a task request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    /// The prompt or the conversation.
    pub prompt: Prompt,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature; the engine's default when `None`.
    pub temperature: Option<f32>,
    /// Nucleus sampling; the engine's default when `None`.
    pub top_p: Option<f32>,
    /// Seed; the engine's default when `None`.
    pub seed: Option<u64>,
    /// Stop strings; the engine ends the reply before the first match.
    pub stop: Vec<String>,
    /// The client's own OpenAI fields (tools, `response_format`, penalties, engine extras …),
    /// sent as written by adapters that speak OpenAI; `None` for native tasks.
    pub passthrough: Option<Passthrough>,
}

/// A client's OpenAI request fields, minus those the data plane owns (`model`, `stream`,
/// `stream_options`, `max_tokens`, `n`, `priority`, `session_id`).
pub type Passthrough = Arc<serde_json::Map<String, serde_json::Value>>;

impl GenerateRequest {
    /// A request for `max_tokens` tokens from a raw prompt, with the engine's sampling defaults.
    pub fn text(prompt: impl Into<String>, max_tokens: u32) -> Self {
        Self::new(Prompt::Text(prompt.into()), max_tokens)
    }

    /// A request for `max_tokens` tokens answering `messages`, with the engine's defaults.
    pub fn chat(messages: Vec<ChatMessage>, max_tokens: u32) -> Self {
        Self::new(Prompt::Chat(messages), max_tokens)
    }

    fn new(prompt: Prompt, max_tokens: u32) -> Self {
        Self {
            prompt,
            max_tokens,
            temperature: None,
            top_p: None,
            seed: None,
            stop: Vec::new(),
            passthrough: None,
        }
    }
}

/// One step of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    /// Text as the engine sent it: usually one token, sometimes a few (an engine holds text back
    /// while it could still be the start of a stop string). Never empty.
    Token(String),
    /// A chunk with more than text in it (reasoning, tool calls, log probabilities); its text,
    /// if any, counts as one token like [`EngineEvent::Token`].
    Delta(Box<Delta>),
    /// The reply is complete; nothing follows.
    Done {
        /// Tokens generated, as the engine counted them (or text chunks seen, when it did not
        /// say).
        tokens_out: u32,
        /// Why it ended.
        finish: Finish,
        /// Prompt tokens, as the engine counted them (when it said).
        tokens_in: Option<u32>,
    },
}

/// A reply in progress: tokens, then either [`EngineEvent::Done`] or one error, then the end.
/// Dropping it closes the engine connection, which makes llama-server cancel the generation.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<EngineEvent, EngineError>> + Send>>;

/// Asks an engine at `base_url` (e.g. `http://127.0.0.1:8080`) for a streamed reply.
pub trait EngineClient: Send + Sync {
    /// Sends the request and resolves once the engine has accepted it (2xx and an event
    /// stream), or with the error that stopped it first ([`EngineError::Connect`],
    /// [`EngineError::Rejected`], …). The future does not borrow `base_url` or `req`.
    fn generate(&self, base_url: &str, req: &GenerateRequest) -> BoxFuture<'_, Result<TokenStream, EngineError>>;

    /// Asks for embeddings of the request's relayed fields (`input`, `encoding_format` …) and
    /// resolves with the engine's whole JSON answer. Engines without an embeddings API refuse.
    fn embed(&self, _base_url: &str, _req: &GenerateRequest) -> BoxFuture<'_, Result<serde_json::Value, EngineError>> {
        Box::pin(async {
            Err(EngineError::Rejected {
                status: 400,
                message: "this engine API serves no embeddings".into(),
            })
        })
    }
}
