//! The HTTP client of model downloads: hyper over rustls ([`super::tls`]), http and https,
//! HTTP/1.1, no automatic redirects (the fetcher follows them through the policy), a connect
//! timeout and an idle-read timeout per chunk, so a stalled server fails the attempt instead
//! of hanging it.
//! It only moves bytes: policy checks, redirects and retries belong to the fetcher.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;

use super::tls::TlsError;

/// How long connecting (TCP + TLS) and receiving the response head may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a response body may stay silent.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request or its body failed; a sentence that never contains a header value.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS settings could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Build(#[source] http::Error),
    /// No response head within [`CONNECT_TIMEOUT`].
    #[error("no answer within {secs} s")]
    NoAnswer {
        /// The timeout.
        secs: u64,
    },
    /// Connecting or sending failed.
    #[error("{}", error_chain(.0))]
    Request(#[source] hyper_util::client::legacy::Error),
    /// The body stayed silent for [`IDLE_TIMEOUT`].
    #[error("no data for {secs} s")]
    Stalled {
        /// The timeout.
        secs: u64,
    },
    /// Reading the body failed.
    #[error("{}", error_chain(.0))]
    Body(#[source] hyper::Error),
    /// The body is larger than the caller accepts.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
}

/// A download client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// A response whose body is read chunk by chunk.
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    body: Incoming,
}

impl HttpClient {
    /// A client for http and https URLs, trusting the system's root certificates.
    pub fn new() -> Result<HttpClient, HttpError> {
        Ok(HttpClient::with_tls(super::tls::client_config()?))
    }

    /// A client whose https trusts what `tls` says.
    pub fn with_tls(tls: rustls::ClientConfig) -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// GET `url` with `headers`.
    pub async fn get(&self, url: &Url, headers: Vec<(HeaderName, HeaderValue)>) -> Result<Response, HttpError> {
        let mut request = Request::get(url.as_str()).header(
            USER_AGENT,
            HeaderValue::from_static(concat!("llama-orch/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Empty::new()).map_err(HttpError::Build)?;
        let response = tokio::time::timeout(CONNECT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| HttpError::NoAnswer {
                secs: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(HttpError::Request)?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Response {
    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame = tokio::time::timeout(IDLE_TIMEOUT, self.body.frame())
                .await
                .map_err(|_| HttpError::Stalled {
                    secs: IDLE_TIMEOUT.as_secs(),
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(HttpError::Body(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body, refusing more than `limit` bytes.
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(HttpError::TooLarge { limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// A header as text.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Content-Length`.
    pub fn content_length(&self) -> Option<u64> {
        self.header(http::header::CONTENT_LENGTH)?.trim().parse().ok()
    }
}

/// `e: its source: its source's source …`, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}
