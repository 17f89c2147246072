//! Health probing: one small task per engine container polls its health endpoint and records
//! the result on a shared board; a change wakes the reconciler. Probing never blocks a
//! reconcile pass, so one slow engine cannot delay the others. It never decides what a
//! failed probe means for a replica: the pool's health assessment does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llorch_manifests::{Endpoint, HealthCheck};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Probe interval until the first success, so a new replica is seen Ready promptly.
pub const STARTUP_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// What the probes have seen of one container.
#[derive(Clone, Debug)]
pub struct ProbeState {
    /// When probing began.
    pub since: Instant,
    /// The last probe passed.
    pub healthy: bool,
    /// Some probe has passed.
    pub ever_healthy: bool,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Start of the current healthy run.
    pub healthy_since: Option<Instant>,
    /// Start of the current failing run (after having been healthy).
    pub failing_since: Option<Instant>,
    /// The last failure, for status.
    pub last_error: Option<String>,
}

impl ProbeState {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            healthy: false,
            ever_healthy: false,
            consecutive_failures: 0,
            healthy_since: None,
            failing_since: None,
            last_error: None,
        }
    }
}

/// The probers of all containers.
pub struct Probers {
    board: Arc<Mutex<HashMap<String, ProbeState>>>,
    tasks: HashMap<String, JoinHandle<()>>,
    client: reqwest::Client,
    wake: Arc<Notify>,
}

impl Probers {
    /// Probers that call `wake` when a container's health changes.
    pub fn new(wake: Arc<Notify>) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap_or_default();
        Self {
            board: Arc::default(),
            tasks: HashMap::new(),
            client,
            wake,
        }
    }

    /// Starts probing `container_id` at `endpoint` unless already probing it.
    pub fn ensure(&mut self, container_id: &str, endpoint: &Endpoint, health: &HealthCheck) {
        if self.tasks.contains_key(container_id) {
            return;
        }
        let id = container_id.to_string();
        let url = format!("{}{}", endpoint.as_str().trim_end_matches('/'), health.path);
        let board = self.board.clone();
        board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), ProbeState::new(Instant::now()));
        let client = self.client.clone();
        let wake = self.wake.clone();
        let timeout = Duration::from_millis(health.timeout_ms);
        let interval = Duration::from_millis(health.interval_ms);
        let threshold = health.failure_threshold;
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            loop {
                let outcome = match client.get(&url).timeout(timeout).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(ProbeFailure::Status {
                        url: url.clone(),
                        status: r.status(),
                    }),
                    Err(e) => Err(ProbeFailure::Request {
                        url: url.clone(),
                        cause: root_cause(&e),
                    }),
                };
                let (changed, ever) = record(&board, &task_id, outcome, threshold);
                if changed {
                    wake.notify_one();
                }
                tokio::time::sleep(if ever { interval } else { STARTUP_PROBE_INTERVAL }).await;
            }
        });
        self.tasks.insert(id, task);
    }

    /// Stops probing every container not in `live`.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.tasks.retain(|id, task| {
            let keep = live.contains(id);
            if !keep {
                task.abort();
            }
            keep
        });
        self.board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id));
    }

    /// What the probes have seen of `container_id`.
    pub fn state(&self, container_id: &str) -> Option<ProbeState> {
        self.board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container_id)
            .cloned()
    }
}

impl Drop for Probers {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

/// Why one probe failed.
#[derive(Debug, thiserror::Error)]
enum ProbeFailure {
    /// The engine answered with a status other than 2xx.
    #[error("health probe {url} answered {status}")]
    Status {
        /// The probed URL.
        url: String,
        /// What it answered.
        status: reqwest::StatusCode,
    },
    /// No answer: refused, timed out, reset.
    #[error("health probe {url} failed: {cause}")]
    Request {
        /// The probed URL.
        url: String,
        /// The innermost cause, in words.
        cause: String,
    },
}

/// Applies one probe outcome; returns (readiness changed, ever healthy).
fn record(
    board: &Mutex<HashMap<String, ProbeState>>,
    id: &str,
    outcome: Result<(), ProbeFailure>,
    threshold: u32,
) -> (bool, bool) {
    let mut board = board.lock().unwrap_or_else(|p| p.into_inner());
    let Some(s) = board.get_mut(id) else {
        return (false, false);
    };
    let now = Instant::now();
    let was = s.healthy;
    match outcome {
        Ok(()) => {
            s.consecutive_failures = 0;
            s.failing_since = None;
            s.last_error = None;
            if !s.healthy {
                s.healthy_since = Some(now);
            }
            s.healthy = true;
            s.ever_healthy = true;
        }
        Err(e) => {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(e.to_string());
            // A Ready replica stays in service until `threshold` probes in a row fail.
            if s.healthy && s.consecutive_failures >= threshold {
                s.healthy = false;
                s.healthy_since = None;
                s.failing_since = Some(now);
            }
        }
    }
    (was != s.healthy, s.ever_healthy)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> ProbeFailure {
        ProbeFailure::Request {
            url: "http://127.0.0.1:1/health".into(),
            cause: "connection refused".into(),
        }
    }

    #[test]
    fn a_ready_replica_survives_failures_below_the_threshold() {
        let board = Mutex::new(HashMap::from([("c".to_string(), ProbeState::new(Instant::now()))]));
        assert_eq!(record(&board, "c", Ok(()), 3), (true, true));
        assert_eq!(record(&board, "c", Err(failure()), 3), (false, true));
        assert_eq!(record(&board, "c", Err(failure()), 3), (false, true));
        assert!(board.lock().unwrap()["c"].healthy);
        assert_eq!(record(&board, "c", Err(failure()), 3), (true, true));
        let s = board.lock().unwrap()["c"].clone();
        assert!(!s.healthy && s.failing_since.is_some());
        assert_eq!(
            s.last_error.as_deref(),
            Some("health probe http://127.0.0.1:1/health failed: connection refused")
        );
    }
}
