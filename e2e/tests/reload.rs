//! End-to-end acceptance of drain, reload and rollback on a real llama-orchd with real
//! Docker and Podman and the mock engine image:
//!
//! - a reload under continuous traffic (several clients streaming `/v2/tasks` in a loop) —
//!   once with `orchctl reload --model … --wait`, once by editing the manifest — fails ZERO
//!   requests, and every replica ends on the new revision, the old containers gone;
//! - a reload onto a model the engine refuses (a valid GGUF of an unknown architecture) rolls
//!   back: the old containers keep their ids and never stop serving, `orchctl reload --wait`
//!   exits 1 with the engine's reason, and the Pool says rolled-back;
//! - a drain refuses new tasks with 503 `POOL_DRAINING` while running ones finish, health shows
//!   it, the deadline ends what still runs with a `POOL_DRAINING` error, and resume admits again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready, pool_status};
use llama_orch_e2e::on_both_runtimes;
use llama_orch_e2e::sse::TaskClient;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::{ConditionType, RolloutPhase};
use serde_json::json;

const READY: Duration = Duration::from_secs(60);

/// Engine (mock, slow enough that tasks overlap a rollout) and three Models in one file; the
/// Pool alone in its own file, as `reload --model` requires.
fn declare(d: &Daemon, serve: &str) {
    let models = d.home.path().join("models");
    std::fs::write(models.join("tiny2.gguf"), llorch_gguf::fixture::tiny_model("llama")).unwrap();
    std::fs::write(
        models.join("broken.gguf"),
        llorch_gguf::fixture::tiny_model("brokenarch"),
    )
    .unwrap();
    let model = |name: &str, file: &str| {
        format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  ref: file:{}\n  ctxMax: 4096\n",
            models.join(file).display()
        )
    };
    let stack = format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  image: llama-orch/mock-engine:dev\n  \
         version: \"0.1.0\"\n  extraArgs: [\"--token-rate\", \"200\", \"--load-delay-ms\", \"500\"]\n  \
         health: {{path: /health, intervalMs: 200, startupTimeoutMs: 20000}}\n---\n{}---\n{}---\n{}",
        model("tiny", "tiny.gguf"),
        model("tiny2", "tiny2.gguf"),
        model("broken", "broken.gguf"),
    );
    d.write_manifest("stack.yaml", &stack);
    d.write_manifest("pool-chat.yaml", &pool(serve));
}

fn pool(model: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec:\n  engine: mock\n  model: {model}\n  \
         replicas: 2\n  slotsPerReplica: 2\n  queue: {{capacity: 256}}\n  \
         restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n"
    )
}

/// Clients that stream tasks in a loop until stopped; every task must end with `end`.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(url: &str, clients: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|n| {
                let (c, stop, ok, failures) = (TaskClient::new(url), stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let body = json!({"pool": "chat", "prompt": format!("client {n} task {i}"), "max_tokens": 16, "seed": i});
                        let a = c.submit(&body);
                        if a.status != 202 {
                            failures.lock().unwrap().push(format!("submit: HTTP {} {}", a.status, a.body));
                            continue;
                        }
                        let id = a.body["task_id"].as_str().unwrap().to_string();
                        let events = c.events(&id);
                        match events.last() {
                            Some(e) if e.event == "end" => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => failures.lock().unwrap().push(format!("task {id} ended with {other:?}")),
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failures,
            threads,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the clients; returns (tasks ended with `end`, failures).
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

fn rollout_phase(s: &Snapshot) -> Option<RolloutPhase> {
    pool_status(s, "chat")?.rollout.as_ref().map(|r| r.phase)
}

/// The ids of the pool's containers, from the runtime itself.
fn ids(d: &Daemon) -> BTreeSet<String> {
    d.container_ids().into_iter().collect()
}

/// Every running replica row of the pool runs the spec hash its index wants (one row per index).
fn all_on_one_revision(s: &Snapshot) -> bool {
    let rows: Vec<_> = s.replicas.iter().filter(|r| r.pool == "chat").collect();
    rows.len() == 2
        && rows
            .iter()
            .all(|r| r.phase == llorch_manifests::status::ReplicaPhase::Ready)
}

fn start(runtime: Runtime) -> Daemon {
    let d = Daemon::start(runtime);
    declare(&d, "tiny");
    d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 2));
    d
}

fn wait_traffic(t: &Traffic, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.ok() < at_least {
        assert!(Instant::now() < deadline, "traffic does not flow");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reload_under_traffic_fails_no_request(runtime: Runtime) {
    let d = start(runtime);
    let before = ids(&d);
    let traffic = Traffic::start(&d.url, 6);
    wait_traffic(&traffic, 20);

    // 1. Through the API and CLI.
    let began = Instant::now();
    let out = d.orchctl(&["reload", "pool/chat", "--model", "tiny2", "--wait", "--timeout", "90s"]);
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "reload --wait failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let s = d.wait_for("reload to tiny2 complete", READY, |s| {
        rollout_phase(s) == Some(RolloutPhase::Complete) && pool_ready(s, "chat", 2) && ids(&d).len() == 2
    });
    let r = pool_status(&s, "chat").unwrap().rollout.clone().unwrap();
    assert_eq!(r.to_model.as_deref(), Some("tiny2"), "{r:?}");
    let manifest = std::fs::read_to_string(d.manifests_dir().join("pool-chat.yaml")).unwrap();
    assert!(manifest.contains("model: tiny2"), "the manifest was edited: {manifest}");
    let after_cli = ids(&d);
    assert!(
        after_cli.is_disjoint(&before),
        "old containers are gone: {before:?} / {after_cli:?}"
    );
    assert!(all_on_one_revision(&s));
    let mid = traffic.ok();
    println!(
        "{}: `orchctl reload --model tiny2 --wait` took {took:?} (engine load delay 500 ms)",
        d.runtime.name
    );
    assert!(
        took < Duration::from_secs(60),
        "a reload of the mock engine is not minutes"
    );

    // 2. Through a manifest edit.
    let revision = r.to_revision.clone();
    d.write_manifest("pool-chat.yaml", &pool("tiny"));
    let s = d.wait_for("reload back to tiny complete", Duration::from_secs(90), |s| {
        pool_status(s, "chat")
            .and_then(|st| st.rollout.as_ref())
            .is_some_and(|r| r.to_revision != revision && r.phase == RolloutPhase::Complete)
            && pool_ready(s, "chat", 2)
            && ids(&d).len() == 2
    });
    let after_edit = ids(&d);
    assert!(after_edit.is_disjoint(&after_cli), "replaced again");
    assert!(all_on_one_revision(&s));
    wait_traffic(&traffic, traffic.ok() + 10);
    let (done, failures) = traffic.finish();
    println!(
        "{}: {done} tasks ended with `end` across two reloads ({mid} by the end of the first); {} failed",
        d.runtime.name,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}\nevents:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        String::from_utf8_lossy(&d.orchctl(&["events", "pool/chat", "--limit", "200"]).stdout)
    );
    assert!(done > mid && mid > 20, "traffic flowed during both reloads");
}

fn reload_to_a_broken_model_is_rolled_back_with_the_old_containers_untouched(runtime: Runtime) {
    let d = start(runtime);
    let before = ids(&d);
    let serving: Vec<Option<String>> = llama_orch_e2e::daemon::replica_containers(&d.snapshot(), "chat");
    let traffic = Traffic::start(&d.url, 4);
    wait_traffic(&traffic, 10);
    let began = Instant::now();
    let out = d.orchctl(&["reload", "pool/chat", "--model", "broken", "--wait", "--timeout", "90s"]);
    println!(
        "{}: the failed reload was rolled back after {:?}",
        d.runtime.name,
        began.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rollback exits 1: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ROLLED BACK"), "{stdout}");
    assert!(
        stdout.to_lowercase().contains("architecture"),
        "the engine's reason is printed: {stdout}"
    );
    let s = d.wait_for("the new containers removed", READY, |_| ids(&d) == before);
    assert_eq!(
        llama_orch_e2e::daemon::replica_containers(&s, "chat"),
        serving,
        "the same old containers serve, by index"
    );
    let st = pool_status(&s, "chat").unwrap();
    assert_eq!(st.rollout.as_ref().unwrap().phase, RolloutPhase::RolledBack);
    let degraded = st.condition(ConditionType::Degraded).unwrap();
    assert!(degraded.status && degraded.reason == "RolledBack", "{degraded:?}");
    assert!(st.is_ready());
    // Not retried in a loop: a few resyncs later, still the same containers.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ids(&d), before);
    let health = d.orchctl(&["health", "pool/chat"]);
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(text.contains("rolled-back"), "{text}");
    // An explicit reload (no model: the reload counter) tries the held-back revision again.
    let again = d.orchctl(&["reload", "pool/chat", "--wait", "--timeout", "90s"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("ROLLED BACK"));
    d.wait_for("the retried containers removed", READY, |_| ids(&d) == before);
    let unknown = d.orchctl(&["reload", "pool/nope"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("declared: chat"),
        "the 404 lists the pools"
    );
    let (done, failures) = traffic.finish();
    println!(
        "{}: {done} tasks ended with `end` during two failed reloads; {} failed",
        d.runtime.name,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // Old containers never restarted: the runtime still reports them running since before.
    for id in &before {
        let state = d
            .runtime
            .run(&["inspect", "--format", "{{.State.Running}} {{.RestartCount}}", id]);
        assert_eq!(state, "true 0", "container {id}");
    }
}

fn drain_refuses_new_tasks_lets_running_ones_finish_and_cancels_at_the_deadline(runtime: Runtime) {
    let mut d = start(runtime);
    let c = TaskClient::new(&d.url);
    // Two tasks of ~1 s each (200 tokens/s).
    let running: Vec<String> = (0..2)
        .map(|i| {
            let a = c.submit(&json!({"pool": "chat", "prompt": format!("long {i}"), "max_tokens": 200}));
            assert_eq!(a.status, 202, "{:?}", a.body);
            a.body["task_id"].as_str().unwrap().to_string()
        })
        .collect();
    let readers: Vec<_> = running
        .iter()
        .map(|id| {
            let (c, id) = (c.clone(), id.clone());
            std::thread::spawn(move || c.events(&id))
        })
        .collect();
    let out = d.orchctl(&["drain", "pool/chat", "--deadline", "30s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = c.submit(&json!({"pool": "chat", "prompt": "late", "max_tokens": 4}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "POOL_DRAINING");
    assert!(refused.headers.get("retry-after").is_some());
    let health = d.orchctl(&["health", "pool/chat", "-o", "json"]);
    assert_eq!(health.status.code(), Some(1), "a draining pool is not ready");
    let h: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(h["draining"], true, "{h}");
    for r in readers {
        let events = r.join().unwrap();
        assert_eq!(
            events.last().map(|e| e.event.as_str()),
            Some("end"),
            "running tasks finish: {events:?}"
        );
    }
    // The drain outlives the daemon: killed and restarted, it still refuses, and says so.
    d.kill_and_restart();
    d.wait_for("pool chat Ready after the restart", READY, |s| pool_ready(s, "chat", 2));
    let c = TaskClient::new(&d.url);
    let refused = c.submit(&json!({"pool": "chat", "prompt": "after restart", "max_tokens": 4}));
    assert_eq!(refused.status, 503, "still drained after a restart: {:?}", refused.body);
    assert_eq!(refused.body["code"], "POOL_DRAINING");
    let h: serde_json::Value =
        serde_json::from_slice(&d.orchctl(&["health", "pool/chat", "-o", "json"]).stdout).unwrap();
    assert_eq!(h["draining"], true, "{h}");
    assert!(
        d.log_until(Duration::from_secs(5), |l| l.contains("drain restored"))
            .contains("drain restored")
    );
    // Resume, then a drain whose deadline passes while a task runs.
    assert!(d.orchctl(&["drain", "pool/chat", "--resume"]).status.success());
    let a = c.submit(&json!({"pool": "chat", "prompt": "very long", "max_tokens": 1500}));
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["task_id"].as_str().unwrap().to_string();
    let reader = {
        let (c, id) = (c.clone(), id.clone());
        std::thread::spawn(move || c.events(&id))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.orchctl(&["drain", "pool/chat", "--deadline", "500ms"])
            .status
            .success()
    );
    let events = reader.join().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.data["code"], "POOL_DRAINING", "{last:?}");
    assert!(d.orchctl(&["drain", "pool/chat", "--resume"]).status.success());
    let again = c.submit(&json!({"pool": "chat", "prompt": "back", "max_tokens": 4}));
    assert_eq!(again.status, 202, "admitted again after resume: {:?}", again.body);
    // And a lifted drain stays lifted across a restart.
    d.kill_and_restart();
    d.wait_for("pool chat Ready after the second restart", READY, |s| {
        pool_ready(s, "chat", 2)
    });
    let after = TaskClient::new(&d.url).submit(&json!({"pool": "chat", "prompt": "fresh", "max_tokens": 4}));
    assert_eq!(after.status, 202, "a lifted drain is not restored: {:?}", after.body);
}

on_both_runtimes!(
    reload_under_traffic_fails_no_request,
    reload_to_a_broken_model_is_rolled_back_with_the_old_containers_untouched,
    drain_refuses_new_tasks_lets_running_ones_finish_and_cancels_at_the_deadline,
);
