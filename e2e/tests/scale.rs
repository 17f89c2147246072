//! `orchctl scale` on a real llama-orchd with real Docker and Podman and the mock engine
//! image: the command edits the Pool's own manifest file in place (its comment kept), and the
//! controller works to the new size like any manifest edit — a fixed Pool of 1 grows to 2
//! Ready replicas and shrinks back to 1 container, its first replica never replaced; a Pool sized by demand that sleeps starts
//! a replica without any task once its `minReplicas` is raised to 1. A size of the wrong kind
//! is refused with what to do instead, and the file is left alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready};
use llama_orch_e2e::on_both_runtimes;

const SETTLE: Duration = Duration::from_secs(60);

/// The mock Engine and Model `tiny` in one file; the Pool, sized by `size`, alone in its own
/// file, as `scale` requires.
fn declare(d: &Daemon, pool: &str, size: &str) -> std::path::PathBuf {
    d.write_manifest(
        "stack.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  image: llama-orch/mock-engine:dev\n  \
             version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec:\n  ref: file:{}\n  ctxMax: 4096\n",
            d.model_path().display()
        ),
    );
    let file = format!("pool-{pool}.yaml");
    d.write_manifest(
        &file,
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec:\n  engine: mock\n  model: tiny\n  \
             {size}\n  restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n"
        ),
    );
    d.manifests_dir().join(file)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "orchctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn containers(d: &Daemon, n: usize) {
    let deadline = Instant::now() + SETTLE;
    while d.container_ids().len() != n {
        assert!(
            Instant::now() < deadline,
            "{} container(s), not {n}, after {SETTLE:?}",
            d.container_ids().len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn a_fixed_pool_is_scaled_up_and_down_with_orchctl(runtime: Runtime) {
    let d = Daemon::start(runtime);
    let file = declare(&d, "chat", "replicas: 1   # one to start with");
    d.wait_for("pool chat Ready with 1 replica", SETTLE, |s| pool_ready(s, "chat", 1));
    let first = d.container_ids();

    let out = ok(&d.orchctl(&["scale", "pool/chat", "--replicas", "2"]));
    assert_eq!(
        out,
        format!(
            "pool/chat scaled: replicas 1 → 2 (edited {}); follow with `orchctl get pools`\n",
            file.display()
        )
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("\n  replicas: 2   # one to start with\n"),
        "edited in place:\n{text}"
    );
    d.wait_for("pool chat Ready with 2 replicas", SETTLE, |s| pool_ready(s, "chat", 2));
    containers(&d, 2);
    assert!(
        d.container_ids().contains(&first[0]),
        "a size is not in the replicas' spec: the first one is kept"
    );

    let refused = d.orchctl(&["scale", "pool/chat", "--max", "3"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.starts_with("error: pool `chat` has a fixed size (`replicas: 2`)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "a refusal writes nothing"
    );

    ok(&d.orchctl(&["scale", "pool/chat", "--replicas", "1"]));
    d.wait_for("pool chat back to 1 replica", SETTLE, |s| pool_ready(s, "chat", 1));
    containers(&d, 1);
    assert_eq!(d.container_ids(), first, "the added replica is the one removed");
}

fn raising_min_replicas_wakes_a_sleeping_pool_without_a_task(runtime: Runtime) {
    let d = Daemon::start(runtime);
    let file = declare(
        &d,
        "coder",
        "scaling: {minReplicas: 0, maxReplicas: 2, idleTimeout: 1h}",
    );
    d.wait_for("pool coder asleep", SETTLE, |s| {
        s.objects
            .iter()
            .any(|o| o.object.name == "coder" && o.status.scaling.as_ref().is_some_and(|sc| sc.asleep))
    });
    assert!(d.container_ids().is_empty(), "a sleeping pool runs no container");

    let out = ok(&d.orchctl(&["scale", "pool/coder", "--min", "1"]));
    assert!(
        out.starts_with("pool/coder scaled: minReplicas 0 → 1 (edited "),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("  scaling: {minReplicas: 1, maxReplicas: 2, idleTimeout: 1h}\n"),
        "the flow-style line is edited in place"
    );
    d.wait_for("pool coder Ready with 1 replica", SETTLE, |s| pool_ready(s, "coder", 1));
    containers(&d, 1);
}

on_both_runtimes!(
    a_fixed_pool_is_scaled_up_and_down_with_orchctl,
    raising_min_replicas_wakes_a_sleeping_pool_without_a_task,
);
