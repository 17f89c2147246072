//! The ModelManager's background work: hashing a `file:` artifact (verification and the
//! catalog's record), fetching a remote one into the cache (or finding it there), and reading
//! a Ready file's GGUF header once. Each task updates its [`Job`] and wakes the controller.
//! They never touch a Model's status or a Pool: the manager reads their [`Job`]s on its next pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use llorch_manifests::Reason;
use llorch_manifests::status::ModelPhase;
use sha2::{Digest, Sha256};

use super::shared::{Job, Measured, Shared, Source, lock};
use super::{Problem, RETRY_INITIAL, RETRY_MAX};
use crate::catalog::FetchError;
use crate::catalog::cache;
use crate::catalog::fetch::Fetcher;
use crate::state_dir::now_rfc3339;

/// The cached blob for `reference` / `expected_hex`, if the cache has it.
pub(crate) fn cached(
    shared: &Shared,
    fetcher: &Fetcher,
    reference: &str,
    expected_hex: Option<&str>,
) -> Option<(PathBuf, String, u64)> {
    if let Some(hex) = expected_hex {
        let blob = fetcher.cache().blob(hex);
        let size = std::fs::metadata(&blob).ok().filter(|m| m.is_file())?.len();
        return Some((blob, hex.to_string(), size));
    }
    let index = lock(&shared.index);
    let entry = index.by_ref(reference)?;
    let path = PathBuf::from(&entry.path);
    let size = std::fs::metadata(&path).ok().filter(|m| m.is_file())?.len();
    let hex = cache::digest_hex(&entry.digest)?;
    Some((path, hex, size))
}

pub(crate) fn fetch_problem(e: &FetchError) -> Problem {
    Problem {
        reason: e.reason(),
        message: e.to_string(),
    }
}

pub(crate) fn record(shared: &Shared, hex: &str, size: u64, path: &Path, reference: &str) {
    let mut index = lock(&shared.index);
    if index.record(&cache::digest_of_hex(hex), size, path, reference, &now_rfc3339())
        && let Err(e) = index.save()
    {
        tracing::error!(error = %e, "cannot save the catalog index");
    }
}

/// Hashes a `file:` artifact: verification when a digest is declared, the catalog's record
/// either way.
pub(crate) async fn hash_file_job(shared: Arc<Shared>, job: Arc<Job>) {
    let Source::File(path) = job.source.clone() else { return };
    let total = job.stamp.map(|s| s.0);
    job.progress.reset(0, total);
    let progress = job.progress.clone();
    let hashed = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            cache::hash_into(&path, None, &mut h, &|n| progress.advance(n)).map(|n| (cache::hex(&h.finalize()), n))
        })
        .await
    };
    let mut st = lock(&job.state);
    st.running = false;
    match hashed {
        Ok(Ok((hex, size))) => {
            st.digest = Some(cache::digest_of_hex(&hex));
            match &job.expected_hex {
                Some(want) if *want != hex => {
                    shared.verified_mismatch.fetch_add(1, Ordering::Relaxed);
                    st.phase = ModelPhase::Failed;
                    st.path = None;
                    st.problem = Some(fetch_problem(&FetchError::DigestMismatch {
                        what: path.display().to_string(),
                        expected: cache::digest_of_hex(want),
                        actual: cache::digest_of_hex(&hex),
                    }));
                }
                expected => {
                    if expected.is_some() {
                        shared.verified_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    st.phase = ModelPhase::Ready;
                    st.path = Some(path.clone());
                    drop(st);
                    record(&shared, &hex, size, &path, &job.reference);
                }
            }
        }
        Ok(Err(e)) => {
            st.phase = ModelPhase::Failed;
            st.problem = Some(Problem {
                reason: Reason::ModelUnavailable,
                message: format!("cannot read model file {}: {e}", path.display()),
            });
        }
        Err(e) => {
            st.phase = ModelPhase::Failed;
            st.problem = Some(Problem {
                reason: Reason::ModelUnavailable,
                message: format!("hashing {} stopped: {e}", path.display()),
            });
        }
    }
    job.progress.wake_now();
    shared.wake.notify_one();
}

/// Fetches a remote artifact into the cache (or finds it there).
pub(crate) async fn fetch_job(shared: Arc<Shared>, job: Arc<Job>) {
    let outcome = fetch(&shared, &job).await;
    let mut st = lock(&job.state);
    st.running = false;
    match outcome {
        Ok((path, hex, size)) => {
            st.phase = ModelPhase::Ready;
            st.path = Some(path);
            st.digest = Some(cache::digest_of_hex(&hex));
            st.size = Some(size);
            st.problem = None;
            st.failures = 0;
            st.retry_at = None;
        }
        Err(e) => {
            if matches!(e, FetchError::DigestMismatch { .. }) {
                shared.verified_mismatch.fetch_add(1, Ordering::Relaxed);
            }
            st.phase = ModelPhase::Failed;
            st.path = None;
            st.failures += 1;
            let mut problem = fetch_problem(&e);
            if e.retriable() {
                let delay = RETRY_INITIAL
                    .saturating_mul(1 << st.failures.min(8).saturating_sub(1))
                    .min(RETRY_MAX);
                st.retry_at = Some(Instant::now() + delay);
                problem.message = format!("{}; trying again in {}s", problem.message, delay.as_secs());
            } else {
                st.retry_at = None;
            }
            tracing::warn!(reference = %job.reference, reason = problem.reason.as_str(), error = %problem.message, "model fetch failed");
            st.problem = Some(problem);
        }
    }
    drop(st);
    job.progress.wake_now();
}

pub(crate) async fn fetch(shared: &Shared, job: &Job) -> Result<(PathBuf, String, u64), FetchError> {
    let Some(fetcher) = &shared.fetcher else {
        return Err(FetchError::NoCache(job.reference.clone()));
    };
    if let Some(hit) = cached(shared, fetcher, &job.reference, job.expected_hex.as_deref()) {
        record(shared, &hit.1, hit.2, &hit.0, &job.reference);
        return Ok(hit);
    }
    let url = match &job.source {
        Source::Url(u) => fetcher.check(u)?,
        Source::Hf { repo, file } => fetcher.resolve_hf(repo, file.as_deref()).await?,
        Source::File(p) => return Err(FetchError::LocalFile(format!("{} is not fetched", p.display()))),
    };
    {
        let mut st = lock(&job.state);
        st.phase = ModelPhase::Fetching;
        st.source_url = Some(crate::catalog::policy::display_url(&url));
    }
    job.progress.wake_now();
    tracing::info!(reference = %job.reference, url = %crate::catalog::policy::display_url(&url), "fetching model");
    let got = fetcher
        .download(&url, job.expected_hex.as_deref(), &job.progress)
        .await?;
    if job.expected_hex.is_some() {
        shared.verified_ok.fetch_add(1, Ordering::Relaxed);
    }
    record(shared, &got.hex, got.size, &got.path, &job.reference);
    Ok((got.path, got.hex, got.size))
}

/// The GGUF figures of `path`, read once per job.
pub(crate) fn measure_cached(job: &Job, path: &Path) -> Result<Measured, NotGguf> {
    let mut st = lock(&job.state);
    if let Some((p, m)) = &st.measured
        && p == path
    {
        return m.clone();
    }
    let m = measure(path);
    if let Err(e) = &m {
        // Once per file, not once per pass.
        tracing::warn!(path = %path.display(), error = %e, "cannot read the GGUF header; without `spec.vramBytes` there are no VRAM figures");
    }
    st.measured = Some((path.to_path_buf(), m.clone()));
    m
}

/// Why a file has no GGUF figures: its header could not be read. Shared, as the result of a
/// read is kept for the job.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotGguf(#[source] Arc<llorch_gguf::GgufError>);

/// Reads the GGUF header of `path`.
pub(crate) fn measure(path: &Path) -> Result<Measured, NotGguf> {
    let summary = llorch_gguf::read_summary(path).map_err(|e| NotGguf(Arc::new(e)))?;
    Ok(Measured {
        info: summary.info(),
        weights_bytes: summary.tensor_bytes,
        kv_bytes_per_token: summary.kv_bytes_per_token(),
    })
}
