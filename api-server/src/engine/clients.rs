//! [`EngineClients`]: the one HTTP client every engine conversation goes through, and the
//! adapter for each [`ApiFlavour`] built on it.
//!
//! One client means one connection pool: a stream that ends cleanly gives its keep-alive
//! connection back, and the next request to that engine skips the TCP handshake. Engines listen
//! on 127.0.0.1, so the client ignores proxy settings, sets `TCP_NODELAY` (tokens are small
//! writes; Nagle would batch them) and fails a connect fast. It has no overall timeout: a
//! stream lasts as long as a generation, and [`Watchdog`](super::Watchdog) bounds that.

use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::ApiFlavour;

use super::{EngineClient, LlamaCpp, OpenAi};

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

/// The HTTP client could not be built (the TLS-less client only fails on a broken system).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for engines")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// An adapter per API flavour, all sharing one pooled HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct EngineClients {
    llamacpp: Arc<LlamaCpp>,
    openai: Arc<OpenAi>,
}

impl EngineClients {
    /// With [`ClientOptions::default`].
    pub fn new() -> Result<Self, ClientBuildError> {
        Self::with_options(&ClientOptions::default())
    }

    /// Builds the shared client once.
    pub fn with_options(options: &ClientOptions) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(options.max_idle_per_host)
            .pool_idle_timeout(options.idle_timeout)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            llamacpp: Arc::new(LlamaCpp::new(http.clone())),
            openai: Arc::new(OpenAi::new(http)),
        })
    }

    /// The adapter for engines that speak `api`.
    pub fn for_api(&self, api: ApiFlavour) -> Arc<dyn EngineClient> {
        match api {
            ApiFlavour::Llamacpp => Arc::clone(&self.llamacpp) as Arc<dyn EngineClient>,
            ApiFlavour::Openai => Arc::clone(&self.openai) as Arc<dyn EngineClient>,
        }
    }
}
