//! Health probing: one small task per engine container polls its health endpoint and records
//! the result on a shared board; a change wakes the reconciler. Probing never blocks a
//! reconcile pass, so one slow engine cannot delay the others. It never decides what a
//! failed probe means for a replica: the pool's health assessment does.
//!
//! Next to it, while the container is healthy, the same task reads the engine's KV-cache
//! usage at a slower cadence ([`kv_usage`](crate::kv_usage)) onto the same board. That reading
//! wakes nobody: the next pass publishes it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llorch_manifests::status::ReplicaStatus;
use llorch_manifests::{ApiFlavour, Endpoint, HealthCheck};
use tokio::sync::Notify;

use crate::kv_usage::{self, KvSource};
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
    /// The engine's KV-cache usage, 0 to 1, from the last reading that succeeded while healthy.
    pub kv_cache_usage_ratio: Option<f64>,
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
            kv_cache_usage_ratio: None,
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

    /// Starts probing `container_id` at `endpoint` unless already probing it; an engine that
    /// speaks `api` also has its KV-cache usage read while healthy.
    pub fn ensure(&mut self, container_id: &str, endpoint: &Endpoint, health: &HealthCheck, api: ApiFlavour) {
        if self.tasks.contains_key(container_id) {
            return;
        }
        let id = container_id.to_string();
        let base = endpoint.as_str().trim_end_matches('/').to_string();
        let url = format!("{base}{}", health.path);
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
        let kv = kv_usage_loop(
            self.client.clone(),
            board.clone(),
            id.clone(),
            base,
            KvSource::for_api(api),
        );
        let health = async move {
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
        };
        let task = tokio::spawn(async move {
            tokio::join!(health, kv);
        });
        self.tasks.insert(id, task);
    }

    /// Sets the `kv_cache_usage_ratio` of each replica that has a container from that
    /// container's last reading (an external engine's row carries its own).
    pub fn annotate(&self, replicas: &mut [ReplicaStatus]) {
        let board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        for r in replicas {
            if let Some(id) = &r.container_id {
                r.kv_cache_usage_ratio = board.get(id).and_then(|s| s.kv_cache_usage_ratio);
            }
        }
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

/// Reads the engine's KV-cache usage every [`kv_usage::READ_INTERVAL`] while the container is
/// healthy; a failed reading (or an unhealthy container) clears the value rather than keep a
/// stale one. Runs forever with the health loop; without a source it does nothing.
async fn kv_usage_loop(
    client: reqwest::Client,
    board: Arc<Mutex<HashMap<String, ProbeState>>>,
    id: String,
    base: String,
    source: Option<KvSource>,
) {
    let Some(source) = source else {
        return;
    };
    let healthy = || {
        board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some_and(|s| s.healthy)
    };
    let set = |ratio: Option<f64>| {
        if let Some(s) = board.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
            s.kv_cache_usage_ratio = ratio;
        }
    };
    loop {
        if !healthy() {
            set(None);
            // Only a look at the board: cheap, and the first reading follows Ready closely.
            tokio::time::sleep(STARTUP_PROBE_INTERVAL * 5).await;
            continue;
        }
        match kv_usage::read(&client, &base, source).await {
            Ok(ratio) => set(Some(ratio)),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "no KV-cache usage from the engine");
                set(None);
            }
        }
        tokio::time::sleep(kv_usage::READ_INTERVAL).await;
    }
}

/// The innermost cause of `e`, in words.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-route-table HTTP/1.1 server on port 0: `(path, status, body)`; anything else 404.
    async fn engine(routes: Vec<(&'static str, u16, String)>) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = routes
                        .iter()
                        .find(|(p, _, _)| *p == path)
                        .map(|(_, s, b)| (*s, b.clone()))
                        .unwrap_or((404, String::new()));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Endpoint::loopback(port)
    }

    fn quick_health() -> HealthCheck {
        HealthCheck {
            interval_ms: 20,
            ..HealthCheck::default()
        }
    }

    /// Polls the board until `container`'s reading is `Some`.
    async fn reading(probers: &Probers, container: &str) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = probers.state(container).and_then(|s| s.kv_cache_usage_ratio) {
                return r;
            }
            assert!(Instant::now() < deadline, "no KV-cache reading for {container}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_llama_server_without_the_gauge_is_read_from_its_slots_and_published_on_its_replica() {
        let slots = r#"[{"id":0,"n_ctx":1000,"is_processing":true,"n_prompt_tokens":250},
                        {"id":1,"n_ctx":1000,"is_processing":false}]"#;
        let endpoint = engine(vec![
            ("/health", 200, "{}".into()),
            ("/metrics", 501, "metrics not enabled".into()),
            ("/slots", 200, slots.into()),
        ])
        .await;
        let mut probers = Probers::new(Arc::new(Notify::new()));
        probers.ensure("c1", &endpoint, &quick_health(), ApiFlavour::Llamacpp);
        assert_eq!(reading(&probers, "c1").await, 0.125);
        let mut rows = vec![ReplicaStatus {
            id: llorch_manifests::ReplicaId::new("chat", 0),
            pool: "chat".into(),
            index: 0,
            phase: llorch_manifests::status::ReplicaPhase::Ready,
            container_id: Some("c1".into()),
            container_name: None,
            endpoint: Some(endpoint),
            gpus: Vec::new(),
            gpus_simulated: true,
            engine_version: "dev".into(),
            spec_hash: "h".into(),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio: None,
        }];
        probers.annotate(&mut rows);
        assert_eq!(rows[0].kv_cache_usage_ratio, Some(0.125));
    }

    #[tokio::test]
    async fn the_metrics_gauge_is_preferred_and_tgi_is_never_asked() {
        let endpoint = engine(vec![
            ("/health", 200, "{}".into()),
            (
                "/metrics",
                200,
                "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio 0.75\n".into(),
            ),
            ("/slots", 200, r#"[{"id":0,"n_ctx":10,"is_processing":false}]"#.into()),
        ])
        .await;
        let mut probers = Probers::new(Arc::new(Notify::new()));
        probers.ensure("llama", &endpoint, &quick_health(), ApiFlavour::Llamacpp);
        probers.ensure("tgi", &endpoint, &quick_health(), ApiFlavour::Tgi);
        assert_eq!(reading(&probers, "llama").await, 0.75);
        assert!(probers.state("tgi").is_some_and(|s| s.healthy));
        assert_eq!(probers.state("tgi").unwrap().kv_cache_usage_ratio, None);
    }

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
