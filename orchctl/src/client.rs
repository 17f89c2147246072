//! The HTTP client of llama-orchd's read API. Failures are [`RequestError`]s whose messages
//! are meant for people: an unreachable daemon says how to start it; an API error shows the
//! daemon's own message (which names the object and what to do). The task API's calls are in
//! [`crate::task_api`].

use std::time::Duration;

use llorch_manifests::api::{EventList, LogTail, ObjectView, Snapshot};
use llorch_manifests::status::ReplicaStatus;
use llorch_manifests::task::TaskError;
use llorch_manifests::{Kind, ObjectRef};
use reqwest::Url;
use serde::de::DeserializeOwned;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a task stream may stay silent. The daemon sends a keep-alive every 5 s, so this
/// only trips when the daemon or the connection is gone.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug)]
pub enum RequestError {
    /// Nothing answered at the URL.
    Unreachable {
        /// The daemon's base URL.
        base: String,
    },
    /// The daemon answered with an error.
    Api {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: TaskError,
    },
    /// Anything else (timeouts, unexpected bodies).
    Other(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Unreachable { base } => write!(
                f,
                "cannot reach llama-orchd at {base}: is it running? start it with `llama-orchd` \
                 (see README), or point orchctl at it with --server or $LLAMA_ORCH_URL"
            ),
            RequestError::Api { body, .. } => write!(f, "{}", body.message),
            RequestError::Other(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl RequestError {
    /// True for a 404 from the daemon.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RequestError::Api { status: 404, .. })
    }
}

/// A client of one daemon.
#[derive(Clone, Debug)]
pub struct Client {
    base: Url,
    base_text: String,
    pub(crate) http: reqwest::Client,
    /// No overall timeout (a stream lasts as long as a generation), only an idle one.
    pub(crate) stream_http: reqwest::Client,
}

impl Client {
    /// A client of the daemon at `base` (e.g. `http://127.0.0.1:8080`), presenting `token`
    /// when given. Every request declares JSON: the daemon refuses writes that do not.
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Client> {
        let base_text = base.trim_end_matches('/').to_string();
        let base = Url::parse(&format!("{base_text}/"))
            .map_err(|e| anyhow::anyhow!("`{base_text}` is not a URL ({e}); use e.g. http://127.0.0.1:8080"))?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| anyhow::anyhow!("the API token holds characters a header cannot carry"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers.clone())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        let stream_http = reqwest::Client::builder()
            .default_headers(headers)
            .read_timeout(STREAM_IDLE_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            base,
            base_text,
            http,
            stream_http,
        })
    }

    /// The daemon's base URL.
    pub fn base(&self) -> &str {
        &self.base_text
    }

    /// The URL of a path made of `segments`, each escaped.
    pub fn url(&self, segments: &[&str]) -> Result<Url, RequestError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| RequestError::Other(format!("`{}` cannot be a base URL", self.base_text)))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// `GET` of a path made of `segments` (each escaped) with `query`, decoded as JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, RequestError> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }

    /// A JSON answer, or the daemon's error.
    pub(crate) async fn decode<T: DeserializeOwned>(
        &self,
        url: &Url,
        response: reqwest::Response,
    ) -> Result<T, RequestError> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| RequestError::Other(format!("llama-orchd sent an unexpected answer to {url}: {e}")));
        }
        match serde_json::from_slice::<TaskError>(&bytes) {
            Ok(body) => Err(RequestError::Api {
                status: status.as_u16(),
                body,
            }),
            Err(_) => Err(RequestError::Other(format!(
                "{url} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
            ))),
        }
    }

    /// A transport failure in words: unreachable, timed out, or what reqwest said.
    pub(crate) fn transport(&self, e: &reqwest::Error) -> RequestError {
        if e.is_connect() {
            RequestError::Unreachable {
                base: self.base_text.clone(),
            }
        } else if e.is_timeout() {
            RequestError::Other(format!(
                "llama-orchd at {} did not answer within {}s",
                self.base_text,
                REQUEST_TIMEOUT.as_secs()
            ))
        } else {
            RequestError::Other(format!("request to llama-orchd at {} failed: {e}", self.base_text))
        }
    }

    /// `GET /v2/snapshot`.
    pub async fn snapshot(&self) -> Result<Snapshot, RequestError> {
        self.get(&["v2", "snapshot"], &[]).await
    }

    /// `GET /v2/<kind>s/<name>`.
    pub async fn object(&self, object: &ObjectRef) -> Result<ObjectView, RequestError> {
        self.get(&["v2", plural(object.kind), &object.name], &[]).await
    }

    /// `GET /v2/replicas?pool=`.
    pub async fn replicas(&self, pool: Option<&str>) -> Result<Vec<ReplicaStatus>, RequestError> {
        let query: Vec<(&str, String)> = pool.map(|p| ("pool", p.to_string())).into_iter().collect();
        self.get(&["v2", "replicas"], &query).await
    }

    /// `GET /v2/events?kind=&name=&limit=`.
    pub async fn events(
        &self,
        kind: Option<Kind>,
        name: Option<&str>,
        limit: usize,
    ) -> Result<EventList, RequestError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(kind) = kind {
            query.push(("kind", kind.lower().to_string()));
        }
        if let Some(name) = name {
            query.push(("name", name.to_string()));
        }
        self.get(&["v2", "events"], &query).await
    }

    /// `GET /v2/replicas/{id}/logs?tail=`.
    pub async fn logs(&self, replica: &str, tail: usize) -> Result<LogTail, RequestError> {
        self.get(&["v2", "replicas", replica, "logs"], &[("tail", tail.to_string())])
            .await
    }
}

/// The URL segment of a kind (`pools`).
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Engine => "engines",
        Kind::Model => "models",
        Kind::Pool => "pools",
    }
}
