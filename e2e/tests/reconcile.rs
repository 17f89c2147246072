//! End-to-end: the reconcile loop against real Docker and real Podman, with the real
//! `llama-orchd` binary and the mock engine image. Each scenario runs once per runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, pool_status, replica_containers};
use llorch_manifests::status::ConditionType;

const READY_WITHIN: Duration = Duration::from_secs(20);

fn running_ids(d: &Daemon) -> Vec<String> {
    let filter = format!("label=dev.llama-orch.instance={}", d.instance);
    let mut ids: Vec<String> = d
        .runtime
        .run(&[
            "ps",
            "--no-trunc",
            "--filter",
            &filter,
            "--filter",
            "status=running",
            "--format",
            "{{.ID}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids_of(s: &llorch_manifests::api::Snapshot, pool: &str) -> Vec<String> {
    sorted(replica_containers(s, pool).into_iter().flatten().collect())
}

/// OC-POOL-3001: replicas: 2 → two labelled containers, Pool Ready within 20 s.
fn two_replicas_become_ready(rt: Runtime) {
    let d = Daemon::start(rt);
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 2, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready 2/2", READY_WITHIN, |s| pool_ready(s, "chat", 2));
    let ids = ids_of(&s, "chat");
    assert_eq!(ids.len(), 2);
    assert_eq!(running_ids(&d), ids, "exactly the two replica containers run");
    let labels = d
        .runtime
        .run(&["inspect", "--format", "{{json .Config.Labels}}", &ids[0]]);
    for key in [
        "dev.llama-orch.owner",
        "dev.llama-orch.pool",
        "dev.llama-orch.replica",
        "dev.llama-orch.spec-hash",
    ] {
        assert!(labels.contains(key), "label {key} missing: {labels}");
    }
    assert!(
        s.gpus_simulated && s.gpus.iter().all(|g| g.simulated),
        "simulated GPUs are labelled as such"
    );
}

/// ORCH-3038: a container killed from outside is replaced, the Pool is Ready again, and the
/// restart is counted.
fn killed_container_is_replaced(rt: Runtime) {
    let d = Daemon::start(rt);
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 2, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready", READY_WITHIN, |s| pool_ready(s, "chat", 2));
    let before = ids_of(&s, "chat");
    d.runtime.run(&["kill", &before[0]]);
    let s = d.wait_for("replacement Ready", READY_WITHIN, |s| {
        pool_ready(s, "chat", 2) && !ids_of(s, "chat").contains(&before[0])
    });
    let st = pool_status(&s, "chat").unwrap();
    assert!(st.restarts >= 1, "restart counted: {st:?}");
    assert!(
        ids_of(&s, "chat").contains(&before[1]),
        "the other replica was not touched"
    );
    assert_eq!(running_ids(&d).len(), 2);
}

/// Scaling 2 → 1 removes one container and keeps the other's id.
fn scale_down_keeps_the_survivor(rt: Runtime) {
    let d = Daemon::start(rt);
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 2, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready 2/2", READY_WITHIN, |s| pool_ready(s, "chat", 2));
    let replica0 = replica_containers(&s, "chat")[0].clone().unwrap();
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 1, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready 1/1", READY_WITHIN, |s| {
        pool_ready(s, "chat", 1) && d.container_ids().len() == 1
    });
    assert_eq!(ids_of(&s, "chat"), vec![replica0.clone()]);
    assert_eq!(d.container_ids(), vec![replica0]);
}

/// Deleting the manifest removes every container of the Pool.
fn deleting_the_manifest_removes_containers(rt: Runtime) {
    let d = Daemon::start(rt);
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 2, &d.model_path(), &[]));
    d.wait_for("pool chat Ready", READY_WITHIN, |s| pool_ready(s, "chat", 2));
    d.delete_manifest("chat.yaml");
    d.wait_for("pool gone", READY_WITHIN, |s| {
        pool_status(s, "chat").is_none() && s.replicas.is_empty()
    });
    let deadline = std::time::Instant::now() + READY_WITHIN;
    while !d.container_ids().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            d.container_ids()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A SIGKILLed daemon comes back, adopts the same containers without restarting engines, and
/// removes an orphan that carries its labels but no manifest.
fn restart_adopts_and_removes_orphans(rt: Runtime) {
    let mut d = Daemon::start(rt);
    d.write_manifest("chat.yaml", &mock_stack("mock", "chat", 2, &d.model_path(), &[]));
    d.write_manifest("other.yaml", &mock_stack("mock2", "other", 1, &d.model_path(), &[]));
    let s = d.wait_for("both pools Ready", READY_WITHIN, |s| {
        pool_ready(s, "chat", 2) && pool_ready(s, "other", 1)
    });
    let chat_ids = ids_of(&s, "chat");
    let orphan = ids_of(&s, "other");
    let started_at: Vec<String> = chat_ids
        .iter()
        .map(|id| d.runtime.run(&["inspect", "--format", "{{.State.StartedAt}}", id]))
        .collect();
    d.kill();
    d.delete_manifest("other.yaml"); // its container is now an orphan
    d.kill_and_restart();
    let s = d.wait_for("chat adopted and orphan removed", READY_WITHIN, |s| {
        pool_ready(s, "chat", 2) && d.container_ids() == chat_ids
    });
    assert_eq!(ids_of(&s, "chat"), chat_ids, "same containers adopted");
    let after: Vec<String> = chat_ids
        .iter()
        .map(|id| d.runtime.run(&["inspect", "--format", "{{.State.StartedAt}}", id]))
        .collect();
    assert_eq!(after, started_at, "no engine was restarted");
    assert!(!d.container_ids().contains(&orphan[0]));
    assert_eq!(pool_status(&s, "chat").unwrap().restarts, 0);
}

/// An engine that exits at start: Pool Degraded, backoff growing, the engine's last log lines
/// in the status; another Pool stays Ready; the daemon stays healthy.
fn crash_looping_engine_degrades_only_its_pool(rt: Runtime) {
    let mut d = Daemon::start(rt);
    d.write_manifest("good.yaml", &mock_stack("mock", "good", 1, &d.model_path(), &[]));
    d.write_manifest(
        "bad.yaml",
        &mock_stack("broken", "bad", 1, &d.model_path(), &["--fail-at-start"]),
    );
    let s = d.wait_for("bad Degraded after 3 restarts", Duration::from_secs(40), |s| {
        pool_status(s, "bad")
            .is_some_and(|st| st.restarts >= 3 && st.condition(ConditionType::Degraded).is_some_and(|c| c.status))
    });
    let bad = pool_status(&s, "bad").unwrap();
    let err = bad.last_error.as_ref().expect("last error");
    assert!(!err.log_tail.is_empty(), "engine log tail captured: {err:?}");
    assert!(
        err.log_tail.iter().any(|l| l.to_lowercase().contains("error")),
        "log tail shows the engine's error: {:?}",
        err.log_tail
    );
    let degraded = bad.condition(ConditionType::Degraded).unwrap();
    assert!(degraded.message.contains("engine log"), "{}", degraded.message);
    assert!(!bad.is_ready());
    // Backoff grows: the gaps between restart events widen.
    let events: serde_json::Value = reqwest::blocking::get(format!("{}/v2/events?kind=pool&name=bad&limit=200", d.url))
        .unwrap()
        .json()
        .unwrap();
    let crashes = events.to_string().matches("EngineCrashed").count();
    assert!(crashes >= 3, "crash events recorded: {events}");
    assert!(
        events.to_string().contains("next attempt in"),
        "backoff reported: {events}"
    );
    assert!(
        pool_ready(&s, "good", 1) || pool_ready(&d.snapshot(), "good", 1),
        "the other pool is unaffected"
    );
    assert!(d.is_healthy());
}

llama_orch_e2e::on_both_runtimes!(
    two_replicas_become_ready,
    killed_container_is_replaced,
    scale_down_keeps_the_survivor,
    deleting_the_manifest_removes_containers,
    restart_adopts_and_removes_orphans,
    crash_looping_engine_degrades_only_its_pool,
);
