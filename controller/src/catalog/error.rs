//! Why fetching or verifying a model artifact failed. Each variant names the URL, file or
//! setting involved and says what to do; [`FetchError::reason`] is the CamelCase reason the
//! Model's conditions and events carry. No message ever contains a credential: URLs are shown
//! without user info and the hub token is only ever a header.

use std::path::PathBuf;

use llorch_manifests::Reason;

/// A failed fetch or verification.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `models.downloads: false`.
    #[error(
        "downloads are disabled (config `models.downloads: false`); fetch it yourself: \
         `curl -L -o {file} {url}` and use `ref: file:{file}`"
    )]
    DownloadsDisabled {
        /// What would have been fetched.
        url: String,
        /// A file name to suggest.
        file: String,
    },
    /// The host (or a redirect's host) is not allowlisted.
    #[error("host `{host}` is not in `models.allowHosts` ({allowed}); add it to fetch {url}")]
    HostNotAllowed {
        /// The refused host.
        host: String,
        /// The allowlist, comma-separated (or `empty`).
        allowed: String,
        /// The URL that led there.
        url: String,
    },
    /// A URL that is neither https nor loopback http.
    #[error("{url}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// More redirects than [`crate::catalog::fetch::MAX_REDIRECTS`].
    #[error("{url} redirected more than {max} times; fetch it yourself and use `ref: file:…`")]
    TooManyRedirects {
        /// The first URL.
        url: String,
        /// The limit.
        max: usize,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}{hint}")]
    Http {
        /// The URL (no credentials).
        url: String,
        /// Status code.
        status: u16,
        /// What to do about it, starting with `; ` when present.
        hint: String,
    },
    /// Connecting or reading failed (a cut connection included); the partial file is kept
    /// and the next attempt resumes it.
    #[error("fetching {url}: {message}")]
    Transport {
        /// The URL (no credentials).
        url: String,
        /// What happened.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The content does not hash to the declared digest.
    #[error(
        "digest mismatch for {what}: manifest says {expected}, the content is {actual}; \
         fix `spec.digest` or `spec.ref`"
    )]
    DigestMismatch {
        /// The URL or file.
        what: String,
        /// `sha256:<hex>` from the manifest.
        expected: String,
        /// `sha256:<hex>` of the content.
        actual: String,
    },
    /// `hf:org/repo` names a repository with no or several `.gguf` files, or the hub's
    /// answer could not be read.
    #[error(
        "{url} is {size}, over `models.maxDownloadBytes` ({limit} bytes); raise the limit in config.yaml if the model \
         really is that large"
    )]
    TooLarge {
        /// Where (without credentials).
        url: String,
        /// What the server announced, or how much arrived before the cut.
        size: String,
        /// The limit.
        limit: u64,
    },
    #[error("{0}")]
    HubRepo(String),
    /// A local `file:` reference that is missing or not a regular file.
    #[error("{0}")]
    LocalFile(String),
    /// No model cache is configured (only in tests and embedded uses).
    #[error("no model cache is configured, so `{0}` cannot be fetched; use a `file:` reference")]
    NoCache(String),
}

impl FetchError {
    /// The reason for conditions and events.
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::DownloadsDisabled { .. } => Reason::DownloadsDisabled,
            FetchError::HostNotAllowed { .. } => Reason::HostNotAllowed,
            FetchError::BadUrl { .. } => Reason::InvalidReference,
            FetchError::DigestMismatch { .. } => Reason::DigestMismatch,
            FetchError::HubRepo(_) => Reason::AmbiguousReference,
            FetchError::LocalFile(_) | FetchError::TooLarge { .. } => Reason::ModelUnavailable,
            FetchError::NoCache(_) => Reason::NoModelCache,
            FetchError::TooManyRedirects { .. } | FetchError::Http { .. } | FetchError::Transport { .. } => {
                Reason::FetchFailed
            }
            FetchError::Io { .. } => Reason::CacheIoError,
        }
    }

    /// True when trying again later can help (network trouble, 5xx, 429, a full disk).
    pub fn retriable(&self) -> bool {
        match self {
            FetchError::Transport { .. } | FetchError::Io { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    /// True for refusals by the download policy.
    pub fn is_policy(&self) -> bool {
        matches!(
            self,
            FetchError::DownloadsDisabled { .. } | FetchError::HostNotAllowed { .. } | FetchError::BadUrl { .. }
        )
    }
}
