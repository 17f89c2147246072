//! How full an engine's KV cache is, read from the engine itself: the prober (`probe.rs`) calls
//! [`read`] every [`READ_INTERVAL`] while a replica is healthy and keeps the last answer, which
//! the controller publishes in the replica's status (`kvCacheUsageRatio`), so `/metrics`,
//! `orchctl describe` and the status page all show the same value.
//!
//! Where each engine API tells it ([`KvSource`]):
//! - llama-server: `llamacpp:kv_cache_usage_ratio` on `/metrics` (builds before mid-2025, and
//!   only with `--metrics`), else its `/slots` (see `slots.rs`);
//! - OpenAI-compatible servers: vLLM's `vllm:kv_cache_usage_perc` (`vllm:gpu_cache_usage_perc`
//!   before 0.11; both 0 to 1 despite the name), or a llama-server's gauge;
//! - TGI reports nothing comparable: no reading is attempted.
//!
//! Every read is bounded: a short timeout and at most [`MAX_BODY_BYTES`] of body. It never
//! changes what the prober decides about health.

pub mod exposition;
mod slots;

use std::time::Duration;

use llorch_manifests::ApiFlavour;

/// Time between two readings of one replica.
pub const READ_INTERVAL: Duration = Duration::from_secs(5);
/// How long one reading may take, body included.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `/metrics` or `/slots` body read (vLLM's `/metrics` is about 100 KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The gauges looked for on `/metrics`, in order: each is a 0-to-1 ratio.
pub const GAUGES: [&str; 3] = [
    "llamacpp:kv_cache_usage_ratio",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
];

/// Where an engine API reports its KV-cache usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvSource {
    /// llama-server: `/metrics`, then `/slots`.
    Llamacpp,
    /// An OpenAI-compatible server: `/metrics` only.
    Openai,
}

impl KvSource {
    /// The source for an Engine's `api`; `None` for TGI, which has no such figure.
    pub fn for_api(api: ApiFlavour) -> Option<Self> {
        match api {
            ApiFlavour::Llamacpp => Some(KvSource::Llamacpp),
            ApiFlavour::Openai => Some(KvSource::Openai),
            ApiFlavour::Tgi => None,
        }
    }
}

/// Why no usage could be read.
#[derive(Debug, thiserror::Error)]
pub enum KvReadError {
    /// No answer: refused, timed out, reset.
    #[error("GET {url} failed: {cause}")]
    Request {
        /// The URL read.
        url: String,
        /// The innermost cause, in words.
        cause: String,
    },
    /// An answer other than 2xx (llama-server answers 501 to `/metrics` without `--metrics`).
    #[error("GET {url} answered {status}")]
    Status {
        /// The URL read.
        url: String,
        /// What it answered.
        status: reqwest::StatusCode,
    },
    /// A body over [`MAX_BODY_BYTES`].
    #[error("GET {url} sent more than {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL read.
        url: String,
    },
    /// The engine answered, but with no KV-cache figure.
    #[error("{base} reports no KV-cache usage (looked for {GAUGES:?} on /metrics{slots})")]
    NotReported {
        /// The engine's base URL.
        base: String,
        /// ` and /slots` when those were read too.
        slots: &'static str,
    },
}

/// The engine's KV-cache usage at `base` (`http://host:port`), 0 to 1.
pub async fn read(client: &reqwest::Client, base: &str, source: KvSource) -> Result<f64, KvReadError> {
    let base = base.trim_end_matches('/');
    let from_metrics = get(client, &format!("{base}/metrics")).await.map(|body| {
        let text = String::from_utf8_lossy(&body);
        from_exposition(&text)
    });
    match (source, from_metrics) {
        (_, Ok(Some(ratio))) => Ok(ratio),
        (KvSource::Llamacpp, _) => {
            let body = get(client, &format!("{base}/slots")).await?;
            slots::usage_ratio(&body).ok_or_else(|| KvReadError::NotReported {
                base: base.to_string(),
                slots: " and /slots",
            })
        }
        (KvSource::Openai, Ok(None)) => Err(KvReadError::NotReported {
            base: base.to_string(),
            slots: "",
        }),
        (KvSource::Openai, Err(e)) => Err(e),
    }
}

/// The first of [`GAUGES`] present in `text`; several samples of it (vLLM labels one per engine
/// core) give the fullest, which is the one that runs out of room first.
pub fn from_exposition(text: &str) -> Option<f64> {
    GAUGES.iter().find_map(|name| {
        exposition::samples(text, name)
            .into_iter()
            .reduce(f64::max)
            .map(|v| v.clamp(0.0, 1.0))
    })
}

/// The body of `GET url`, at most [`MAX_BODY_BYTES`].
async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, KvReadError> {
    let request = |e: reqwest::Error| KvReadError::Request {
        url: url.to_string(),
        cause: crate::probe::root_cause(&e),
    };
    let mut response = client.get(url).timeout(READ_TIMEOUT).send().await.map_err(request)?;
    let status = response.status();
    if !status.is_success() {
        return Err(KvReadError::Status {
            url: url.to_string(),
            status,
        });
    }
    let too_large = || KvReadError::TooLarge { url: url.to_string() };
    if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgi_has_no_source_and_the_others_do() {
        assert_eq!(KvSource::for_api(ApiFlavour::Tgi), None);
        assert_eq!(KvSource::for_api(ApiFlavour::Llamacpp), Some(KvSource::Llamacpp));
        assert_eq!(KvSource::for_api(ApiFlavour::Openai), Some(KvSource::Openai));
    }

    #[test]
    fn the_fullest_engine_core_is_the_reading_and_the_newer_vllm_name_wins() {
        let text = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc{engine=\"0\"} 0.3\n\
                    vllm:kv_cache_usage_perc{engine=\"1\"} 0.6\n";
        assert_eq!(from_exposition(text), Some(0.6));
        assert_eq!(from_exposition("vllm:gpu_cache_usage_perc 0.9\n"), Some(0.9));
        assert_eq!(from_exposition("llamacpp:kv_cache_usage_ratio 1.0000001\n"), Some(1.0));
        assert_eq!(from_exposition("llamacpp:requests_processing 1\n"), None);
    }
}
