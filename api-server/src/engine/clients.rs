//! [`EngineClients`]: the one [`Transport`] every engine conversation goes through, the
//! adapter for each [`ApiFlavour`] built on it, and the [`Tokenizer`] that counts prompts.
//!
//! One transport means one connection pool: a stream that ends cleanly gives its keep-alive
//! connection back, and the next request to that engine skips the TCP handshake. Engines listen
//! on 127.0.0.1 (or at an external Engine's URL): the transport connects directly (no proxy),
//! sets `TCP_NODELAY` and fails a connect fast. It has no overall timeout: a stream lasts as
//! long as a generation, and [`Watchdog`](super::Watchdog) bounds that.

use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::ApiFlavour;

use super::tokenize::Tokenizer;
use super::transport::Transport;
use super::{EngineClient, LlamaCpp, OpenAi, Tgi};

/// How the shared HTTP client pools and connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Idle connections kept per engine. Size it to the most concurrent streams one engine
    /// serves (its slots): every stream that ends cleanly then finds a warm connection.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// How long a connect may take before it is [`EngineError::Connect`](super::EngineError).
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_idle_per_host: 64,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// An adapter per API flavour, all sharing one pooled HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct EngineClients {
    llamacpp: Arc<LlamaCpp>,
    openai: Arc<OpenAi>,
    tgi: Arc<Tgi>,
    tokenizer: Tokenizer,
}

impl Default for EngineClients {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineClients {
    /// With [`ClientOptions::default`].
    pub fn new() -> Self {
        Self::with_options(&ClientOptions::default())
    }

    /// Every adapter on one connection pool.
    pub fn with_options(options: &ClientOptions) -> Self {
        let transport = Transport::new(options.clone());
        Self {
            llamacpp: Arc::new(LlamaCpp::new(transport.clone())),
            openai: Arc::new(OpenAi::new(transport.clone())),
            tgi: Arc::new(Tgi::new(transport.clone())),
            tokenizer: Tokenizer::new(transport),
        }
    }

    /// The client that asks llama-server engines for prompt token counts, on the same pool.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The adapter for engines that speak `api`.
    pub fn for_api(&self, api: ApiFlavour) -> Arc<dyn EngineClient> {
        match api {
            ApiFlavour::Llamacpp => Arc::clone(&self.llamacpp) as Arc<dyn EngineClient>,
            ApiFlavour::Openai => Arc::clone(&self.openai) as Arc<dyn EngineClient>,
            ApiFlavour::Tgi => Arc::clone(&self.tgi) as Arc<dyn EngineClient>,
        }
    }
}
