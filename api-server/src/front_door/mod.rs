//! The front door: every request passes it before any handler runs.
//!
//! In order (outermost first):
//! 1. [`screen`]: the `Host` and `Origin` checks ([`Screen`]); a browser page on another site,
//!    or a DNS-rebinding name, gets 403 `FORBIDDEN`.
//! 2. CORS, only when `cors.allowedOrigins` lists origins: preflights and response headers
//!    for those (tower-http's `CorsLayer`).
//! 3. [`authenticate`]: with tokens configured, every route but `/healthz` and the status
//!    page's static files (`/ui`, which hold no data) needs
//!    `Authorization: Bearer <token>` (401 `UNAUTHORIZED` with `WWW-Authenticate: Bearer`),
//!    except loopback clients under `auth.optionalOnLoopback` and `/metrics` under
//!    `auth.openMetrics`; then a write (POST, PUT, PATCH, DELETE) must declare
//!    `Content-Type: application/json` (415), which a cross-site HTML form cannot. The caller's
//!    [`Identity`] goes into the request's extensions for handlers and logs.
//!
//! Refusals are rendered like every other error: OpenAI's shape on `/v1`, the native one
//! elsewhere; their log lines are summarized per kind each second, as admission's are.

mod screen;
mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llorch_manifests::task::ErrorCode;
pub use screen::{Refusal, Screen, ScreenConfigError};
pub use tokens::{ENV_TOKEN_NAME, MIN_TOKEN_LEN, TOKEN_ENV, TokenError, Tokens};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{ApiError, OpenAi};
use crate::tasks::log::RefusalLog;

/// Who sent a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Identity {
    /// A loopback client where no token is needed (also every client of a daemon without
    /// tokens, which listens on loopback only).
    #[default]
    Localhost,
    /// The holder of the token with this name.
    Token(String),
    /// A route open to anyone (`/healthz`, an open `/metrics`).
    Anonymous,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Localhost => f.write_str("localhost"),
            Identity::Token(name) => write!(f, "token:{name}"),
            Identity::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// The settings the door enforces.
#[derive(Debug, Default)]
pub struct FrontDoor {
    tokens: Tokens,
    optional_on_loopback: bool,
    open_metrics: bool,
    screen: Screen,
    refusals: RefusalLog,
}

impl FrontDoor {
    /// No tokens (the API must listen on loopback), no extra hosts, no CORS origins.
    pub fn loopback_only() -> Self {
        Self::default()
    }

    /// A door with `tokens`, the `auth` flags and the `Host`/`Origin` policy.
    pub fn new(tokens: Tokens, optional_on_loopback: bool, open_metrics: bool, screen: Screen) -> Self {
        Self {
            tokens,
            optional_on_loopback,
            open_metrics,
            screen,
            refusals: RefusalLog::default(),
        }
    }

    /// Whether a token is configured (a non-loopback bind needs one).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// CORS for the configured origins; `None` when there are none (no CORS headers at all).
    pub fn cors(&self) -> Option<CorsLayer> {
        let origins: Vec<HeaderValue> = self
            .screen
            .allowed_origins()
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static(crate::correlation::HEADER),
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    header::HeaderName::from_static("x-backoff-ms"),
                    header::HeaderName::from_static("retry-after-ms"),
                    header::HeaderName::from_static(crate::correlation::HEADER),
                ]),
        )
    }

    /// Who `headers` (from `peer`) are, or why they are turned away, for a request to `path`.
    pub fn identify(&self, path: &str, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Identity, ApiError> {
        let loopback = peer.is_some_and(|p| p.ip().is_loopback());
        if self.tokens.is_empty() {
            // Only possible on a loopback bind (settings refuse any other without a token).
            return Ok(Identity::Localhost);
        }
        // The status page's files hold no data (its data calls carry the token).
        if path == "/healthz" || crate::ui::is_static(path) || (self.open_metrics && path == "/metrics") {
            return Ok(Identity::Anonymous);
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match bearer {
            Some(token) => match self.tokens.verify(token.as_bytes()) {
                Some(name) => Ok(Identity::Token(name.to_string())),
                None => Err(unauthorized(
                    "the bearer token is not one this daemon accepts; check `LLAMA_ORCH_TOKEN` or `--token` \
                     against the daemon's `auth.tokenFile`",
                )),
            },
            None if self.optional_on_loopback && loopback => Ok(Identity::Localhost),
            None => Err(unauthorized(
                "this API needs a bearer token: send `Authorization: Bearer <token>` (orchctl: `--token` or \
                 `LLAMA_ORCH_TOKEN`; OpenAI SDKs: the API key)",
            )),
        }
    }

    /// Logs a refusal, one line per kind per second (the rest are counted into the next).
    fn log_refusal(&self, error: &ApiError, path: &str, peer: Option<SocketAddr>) {
        if let Some(also) = self.refusals.write(None, error.code(), Instant::now()) {
            tracing::warn!(
                code = error.code().as_str(),
                path = %path.chars().take(200).collect::<String>(),
                peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
                also_refused = also,
                human = %error.message(),
                "request refused at the front door"
            );
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// The error in the shape the route's clients read: OpenAI's on `/v1`, native elsewhere.
fn refuse(path: &str, error: ApiError) -> Response {
    let unauthorized = error.code() == ErrorCode::Unauthorized;
    let mut response = if path == "/v1" || path.starts_with("/v1/") {
        OpenAi(error).into_response()
    } else {
        error.into_response()
    };
    if unauthorized {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"llama-orch\""),
        );
    }
    response
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Step 1: the `Host` and `Origin` checks.
pub async fn screen(State(door): State<Arc<FrontDoor>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Err(refusal) = door.screen.check(host, value("origin"), value("sec-fetch-site")) {
        let error = ApiError::new(ErrorCode::Forbidden, refusal.to_string());
        door.log_refusal(&error, request.uri().path(), peer(&request));
        return refuse(request.uri().path(), error);
    }
    next.run(request).await
}

/// Step 3: the token, then the content type of writes.
pub async fn authenticate(State(door): State<Arc<FrontDoor>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let identity = match door.identify(path, request.headers(), peer(&request)) {
        Ok(identity) => identity,
        Err(error) => {
            door.log_refusal(&error, path, peer(&request));
            return refuse(path, error);
        }
    };
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && !declares_json(request.headers()) {
        let error = ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "a write request must be sent with `Content-Type: application/json` (also when it has no body): \
             browsers cannot send that header cross-site without asking first",
        );
        return refuse(path, error);
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// `Content-Type: application/json`, parameters allowed.
fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests;
