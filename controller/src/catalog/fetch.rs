//! Resumable, verified HTTP downloads into the cache, and `hf:` resolution through the hub's
//! API. Redirects are followed by hand so that every hop passes the download [`Policy`];
//! the hub token goes only to the hub's own hosts and never across a redirect to another host.
//!
//! A download streams into `partial/<key>.part` while hashing with sha256. When a connection
//! is cut, the next attempt re-hashes the partial prefix and asks for the rest with
//! `Range: bytes=N-`; a server that ignores the range (200) restarts the file cleanly. A wrong
//! digest deletes the partial file; a right one is fsynced and renamed into `blobs/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_RANGE, HeaderName, HeaderValue, LOCATION, RANGE};
use reqwest::Url;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::cache::{self, Cache};
use super::http::{HttpClient, Response};
use super::policy::{Policy, display_url};
use super::progress::Progress;
use super::secret::Secret;
use super::{FetchError, hf};

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 10;

/// Immediate resumes of a cut download within one fetch (with a short pause between them).
pub const RESUME_ATTEMPTS: u32 = 3;

/// A finished, verified download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// sha256 hex of the content.
    pub hex: String,
    /// Bytes.
    pub size: u64,
    /// The blob in the cache.
    pub path: PathBuf,
}

/// Downloads artifacts into one cache under one policy.
#[derive(Debug)]
pub struct Fetcher {
    http: HttpClient,
    policy: Policy,
    token: Option<Secret>,
    hub: String,
    cache: Cache,
}

impl Fetcher {
    /// A fetcher; `hub` is the Hugging Face base URL ([`hf::HUB`] outside tests).
    pub fn new(cache: Cache, policy: Policy, token: Option<Secret>, hub: &str) -> Result<Fetcher, FetchError> {
        let http = HttpClient::new().map_err(|e| FetchError::Transport {
            url: hub.to_string(),
            message: e.to_string(),
        })?;
        Ok(Fetcher {
            http,
            policy,
            token,
            hub: hub.trim_end_matches('/').to_string(),
            cache,
        })
    }

    /// The same fetcher over another HTTP client (a private CA; tests).
    pub fn with_http(mut self, http: HttpClient) -> Fetcher {
        self.http = http;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The hub's base URL.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `text` without the token (a server may echo a header back in an error).
    fn redact(&self, text: &str) -> String {
        match &self.token {
            Some(t) => t.redact(text),
            None => text.to_string(),
        }
    }

    /// Checks `url` against the policy without any I/O: the advisory error comes at once.
    pub fn check(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::BadUrl {
            url: super::policy::display_url_str(url),
            why: e.to_string(),
        })?;
        self.policy.check_url(&parsed, url)?;
        Ok(parsed)
    }

    /// The download URL of `hf:repo[/file]`: direct for a file, through the hub's API for a
    /// repository's only `.gguf`.
    pub async fn resolve_hf(&self, repo: &str, file: Option<&str>) -> Result<Url, FetchError> {
        if let Some(file) = file {
            return hf::file_url(&self.hub, repo, file);
        }
        let api = hf::api_url(&self.hub, repo)?;
        let (response, at) = self.get(&api, 0).await?;
        if !response.status.is_success() {
            return Err(http_error(&at, response.status, self.token.is_some()));
        }
        let bytes = response.bytes(16 << 20).await.map_err(|e| FetchError::Transport {
            url: display_url(&at),
            message: e.to_string(),
        })?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            FetchError::HubRepo(format!(
                "the hub's answer for hf:{repo} is not the JSON expected ({e}); name the file: `hf:{repo}/<file>.gguf`"
            ))
        })?;
        let file = hf::only_gguf(repo, &body)?;
        hf::file_url(&self.hub, repo, &file)
    }

    /// GET `first`, following redirects by hand through the policy; `range_from > 0` asks for
    /// the bytes from there on. Returns the response and the URL that answered.
    async fn get(&self, first: &Url, range_from: u64) -> Result<(Response, Url), FetchError> {
        let first_host = first.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut url = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.policy.check_url(&url, first.as_str())?;
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
            if range_from > 0 {
                headers.push((RANGE, header_value(format!("bytes={range_from}-"))?));
            }
            if let Some(token) = &self.token
                && host == first_host
                && hf::is_hub_host(&host)
            {
                let mut value = header_value(format!("Bearer {}", token.expose()))?;
                value.set_sensitive(true);
                headers.push((AUTHORIZATION, value));
            }
            let response = self.http.get(&url, headers).await.map_err(|e| FetchError::Transport {
                url: display_url(&url),
                message: self.redact(&e.to_string()),
            })?;
            if !response.status.is_redirection() {
                return Ok((response, url));
            }
            let Some(location) = response.header(LOCATION) else {
                return Err(FetchError::Http {
                    url: display_url(&url),
                    status: response.status.as_u16(),
                    hint: "; a redirect without a Location".into(),
                });
            };
            url = url.join(location).map_err(|e| FetchError::BadUrl {
                url: display_url(&url),
                why: format!("redirect to an invalid location: {e}"),
            })?;
        }
        Err(FetchError::TooManyRedirects {
            url: display_url(first),
            max: MAX_REDIRECTS,
        })
    }

    /// Downloads `url` into the cache, verifying `expected_hex` when given, resuming a partial
    /// file left by an earlier attempt.
    pub async fn download(
        &self,
        url: &Url,
        expected_hex: Option<&str>,
        progress: &Progress,
    ) -> Result<Downloaded, FetchError> {
        self.cache.ensure_dirs()?;
        let key = expected_hex
            .map(str::to_string)
            .unwrap_or_else(|| cache::sha256_str(url.as_str()));
        let partial = self.cache.partial(&key);
        let mut attempt = 0;
        loop {
            match self.attempt(url, expected_hex, &partial, progress).await {
                Err(e @ FetchError::Transport { .. }) if attempt < RESUME_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(url = %display_url(url), attempt, error = %e, "download interrupted; resuming");
                    tokio::time::sleep(Duration::from_millis(300) * attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        expected_hex: Option<&str>,
        partial: &Path,
        progress: &Progress,
    ) -> Result<Downloaded, FetchError> {
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let hasher = rehash_partial(partial, have).await?;
        progress.reset(have, None);
        let (mut response, at) = self.get(url, have).await?;
        let (mut sink, total) = self.open_partial(&response, url, &at, partial, have, hasher).await?;
        progress.reset(sink.written, total);
        self.stream_body(&mut response, &at, &mut sink, progress).await?;
        let Sink {
            mut file,
            hasher,
            written,
            ..
        } = sink;
        let io = |source| FetchError::Io {
            path: partial.to_path_buf(),
            source,
        };
        file.flush().await.map_err(io)?;
        if let Some(total) = total
            && written != total
        {
            return Err(FetchError::Transport {
                url: display_url(&at),
                message: format!("connection closed after {written} of {total} bytes"),
            });
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        let hex = cache::hex(&hasher.finalize());
        if let Some(expected) = expected_hex
            && !expected.eq_ignore_ascii_case(&hex)
        {
            let _ = std::fs::remove_file(partial);
            return Err(FetchError::DigestMismatch {
                what: display_url(url),
                expected: cache::digest_of_hex(expected),
                actual: cache::digest_of_hex(&hex),
            });
        }
        let cache = self.cache.clone();
        let (from, hex_moved) = (partial.to_path_buf(), hex.clone());
        let path = tokio::task::spawn_blocking(move || cache.promote(&from, &hex_moved))
            .await
            .map_err(|e| io(std::io::Error::other(e)))??;
        Ok(Downloaded {
            hex,
            size: written,
            path,
        })
    }

    /// Where the body of `response` (from `at`) goes, and the total expected: the partial
    /// file appended to when the server resumes at `have` (`hasher` covers those bytes), else
    /// a fresh file and hash. Refusals and error statuses end here.
    async fn open_partial<'p>(
        &self,
        response: &Response,
        url: &Url,
        at: &Url,
        partial: &'p Path,
        have: u64,
        hasher: Sha256,
    ) -> Result<(Sink<'p>, Option<u64>), FetchError> {
        let io = |source| FetchError::Io {
            path: partial.to_path_buf(),
            source,
        };
        let status = response.status;
        let resume_total = (status == StatusCode::PARTIAL_CONTENT && have > 0)
            .then(|| content_range(response))
            .flatten()
            .filter(|(start, _)| *start == have);
        if let Some((_, total)) = resume_total {
            let file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(partial)
                .await
                .map_err(io)?;
            let sink = Sink {
                path: partial,
                file,
                hasher,
                written: have,
            };
            Ok((sink, total))
        } else if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
            if have > 0 {
                tracing::info!(url = %display_url(url), "the server ignored the range request; starting over");
            }
            if status == StatusCode::PARTIAL_CONTENT {
                // A range we did not ask for: trust nothing of it.
                return Err(FetchError::Http {
                    url: display_url(at),
                    status: status.as_u16(),
                    hint: "; a partial answer to a whole-file request".into(),
                });
            }
            let total = response.content_length();
            if let Some(size) = total.filter(|n| *n > self.policy.max_bytes()) {
                return Err(FetchError::TooLarge {
                    url: display_url(at),
                    size: format!("{size} bytes (Content-Length)"),
                    limit: self.policy.max_bytes(),
                });
            }
            let file = tokio::fs::File::create(partial).await.map_err(io)?;
            let sink = Sink {
                path: partial,
                file,
                hasher: Sha256::new(),
                written: 0,
            };
            Ok((sink, total))
        } else if status == StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
            let _ = std::fs::remove_file(partial);
            Err(FetchError::Transport {
                url: display_url(at),
                message: "the server refused to resume the partial download; starting over".into(),
            })
        } else {
            Err(http_error(at, status, self.token.is_some()))
        }
    }

    /// Streams the rest of the body into `sink`.
    async fn stream_body(
        &self,
        response: &mut Response,
        at: &Url,
        sink: &mut Sink<'_>,
        progress: &Progress,
    ) -> Result<(), FetchError> {
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(FetchError::Transport {
                        url: display_url(at),
                        message: format!(
                            "connection lost after {} bytes ({})",
                            sink.written,
                            self.redact(&e.to_string())
                        ),
                    });
                }
            };
            if sink.written + chunk.len() as u64 > self.policy.max_bytes() {
                // No Content-Length (or a server that sends more than it said): cut off here.
                let _ = std::fs::remove_file(sink.path);
                return Err(FetchError::TooLarge {
                    url: display_url(at),
                    size: format!("more than {} bytes", sink.written),
                    limit: self.policy.max_bytes(),
                });
            }
            sink.hasher.update(&chunk);
            sink.file.write_all(&chunk).await.map_err(|source| FetchError::Io {
                path: sink.path.to_path_buf(),
                source,
            })?;
            sink.written += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
    }
}

/// The partial file a download writes, and the hash of every byte in it.
struct Sink<'p> {
    path: &'p Path,
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
}

/// A hasher over the `have` bytes already in `partial`: the digest must cover every byte, and
/// the file is the only record of them.
async fn rehash_partial(partial: &Path, have: u64) -> Result<Sha256, FetchError> {
    let io = |source| FetchError::Io {
        path: partial.to_path_buf(),
        source,
    };
    if have == 0 {
        return Ok(Sha256::new());
    }
    let path = partial.to_path_buf();
    let (h, n) = tokio::task::spawn_blocking(move || {
        let mut h = Sha256::new();
        cache::hash_into(&path, Some(have), &mut h, &|_| {}).map(|n| (h, n))
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
    .map_err(io)?;
    if n != have {
        return Err(io(std::io::Error::other("the partial file shrank while being read")));
    }
    Ok(h)
}

/// `(start, total)` from `Content-Range: bytes start-end/total`.
fn content_range(response: &Response) -> Option<(u64, Option<u64>)> {
    let value = response.header(CONTENT_RANGE)?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

fn header_value(text: String) -> Result<HeaderValue, FetchError> {
    HeaderValue::try_from(text).map_err(|_| FetchError::BadUrl {
        url: String::new(),
        why: "a header value with characters HTTP does not allow (check $HF_TOKEN)".into(),
    })
}

fn http_error(url: &Url, status: StatusCode, have_token: bool) -> FetchError {
    let hint = match status.as_u16() {
        401 | 403 if have_token => "; the token in $HF_TOKEN does not grant access to this file".to_string(),
        401 | 403 => format!(
            "; the file needs authorization: set ${} for the hub",
            llorch_manifests::config::HF_TOKEN_ENV
        ),
        404 => "; check `spec.ref`".to_string(),
        _ => String::new(),
    };
    FetchError::Http {
        url: display_url(url),
        status: status.as_u16(),
        hint,
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
