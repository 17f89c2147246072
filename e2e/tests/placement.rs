//! End-to-end: VRAM-aware placement on the reference workstation — simulated GPUs of 24 GiB
//! (GPU 0) and 12 GiB (GPU 1) — with the real `llama-orchd`, real Docker and Podman and the
//! mock engine image. Models carry `vramBytes` overrides, so the numbers do not depend on
//! GGUF sizes. One scenario, Pools added one at a time:
//!
//! | Pool     | need × replicas | mask  | lands on | GPU 0 free | GPU 1 free |
//! |----------|-----------------|-------|----------|------------|------------|
//! | `big`    | 16 GiB × 1      | all   | 0        | 8          | 12         |
//! | `next`   | 4 GiB × 1       | all   | 1        | 8          | 8          |
//! | `masked` | 3 GiB × 2       | `[1]` | 1, 1     | 8          | 2          |
//! | `over`   | 7 GiB × 2       | all   | 0, —     | 1          | 2          |
//!
//! `over-1` is refused before any container exists for it, naming both GPUs and the
//! shortfall; every other replica is Ready. Deleting `big` frees GPU 0 and `over-1` starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready, pool_status};
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ConditionType;

const READY_WITHIN: Duration = Duration::from_secs(30);
const GIB: u64 = 1 << 30;

fn engine() -> &'static str {
    "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\nspec:\n  \
     image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n  health: {path: /health, intervalMs: 200}\n"
}

/// A Model `<pool>-model` of `gib` GiB (an override) and a Pool `pool` on it.
fn pool(d: &Daemon, name: &str, gib: u64, replicas: u32, gpus: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}-model}}\nspec:\n  ref: file:{}\n  \
         ctxMax: 4096\n  vramBytes: {}\n---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\nspec:\n  \
         engine: mock\n  model: {name}-model\n  replicas: {replicas}\n  gpus: {gpus}\n  \
         restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n",
        d.model_path().display(),
        gib * GIB
    )
}

/// GPUs of each replica of `pool` in `s`, by index.
fn gpus_of(s: &Snapshot, pool: &str) -> Vec<Vec<u32>> {
    s.replicas
        .iter()
        .filter(|r| r.pool == pool)
        .map(|r| r.gpus.clone())
        .collect()
}

fn add(d: &Daemon, name: &str, gib: u64, replicas: u32, gpus: &str) -> Snapshot {
    d.write_manifest(&format!("{name}.yaml"), &pool(d, name, gib, replicas, gpus));
    d.wait_for(&format!("pool {name} Ready {replicas}/{replicas}"), READY_WITHIN, |s| {
        pool_ready(s, name, replicas)
    })
}

/// Containers (any state) of one replica, by its labels.
fn containers_of(d: &Daemon, pool: &str, index: u32) -> Vec<String> {
    let instance = format!("label=dev.llama-orch.instance={}", d.instance);
    let pool = format!("label=dev.llama-orch.pool={pool}");
    let index = format!("label=dev.llama-orch.replica={index}");
    let out = d.runtime.run(&[
        "ps", "-a", "--filter", &instance, "--filter", &pool, "--filter", &index, "--format", "{{.ID}}",
    ]);
    out.lines().map(str::to_string).collect()
}

/// ORCH-3003 / issue 4 acceptance: most free VRAM first, masks respected, over-commit refused
/// with the device and the shortfall named, before any container starts.
fn replicas_go_where_vram_is_free_and_over_commit_is_refused(rt: Runtime) {
    let d = Daemon::start(rt);
    d.write_manifest("engine.yaml", engine());

    let s = add(&d, "big", 16, 1, "all");
    assert_eq!(gpus_of(&s, "big"), [vec![0]], "24 GiB free beats 12");
    assert_eq!(
        s.gpus[0].used_bytes,
        16 * GIB,
        "the simulated GPU shows the reservation"
    );

    let s = add(&d, "next", 4, 1, "all");
    assert_eq!(gpus_of(&s, "next"), [vec![1]], "GPU 0 has 8 GiB left, GPU 1 12");

    let s = add(&d, "masked", 3, 2, "[1]");
    assert_eq!(gpus_of(&s, "masked"), [vec![1], vec![1]], "the mask is never crossed");

    d.write_manifest("over.yaml", &pool(&d, "over", 7, 2, "all"));
    let s = d.wait_for("over-0 Ready and over-1 refused", READY_WITHIN, |s| {
        let st = pool_status(s, "over");
        st.is_some_and(|st| {
            st.replicas.is_some_and(|r| r.ready == 1)
                && st
                    .condition(ConditionType::Degraded)
                    .is_some_and(|c| c.status && c.reason == "InsufficientVram")
        })
    });
    let degraded = pool_status(&s, "over")
        .unwrap()
        .condition(ConditionType::Degraded)
        .unwrap();
    assert_eq!(
        degraded.message,
        "replica over-1 needs 7.0 GiB on 1 GPU; GPU 1 (Simulated RTX 3060, 12.0 GiB) has 2.0 GiB free — short by \
         5.0 GiB; GPU 0 (Simulated RTX 3090, 24.0 GiB) has 1.0 GiB free — short by 6.0 GiB. Not started: free VRAM \
         on these GPUs, lower ctxSize or slotsPerReplica, or allow more GPUs in spec.gpus"
    );
    assert_eq!(
        gpus_of(&s, "over"),
        [vec![0]],
        "over-0 took GPU 0; over-1 has no replica row"
    );
    let progressing = pool_status(&s, "over")
        .unwrap()
        .condition(ConditionType::Progressing)
        .unwrap();
    assert!(!progressing.status, "nothing is on its way for over-1: {progressing:?}");
    // Give the loop a few more passes: the refused replica never gets a container.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        containers_of(&d, "over", 1).is_empty(),
        "no container for the refused replica"
    );
    assert_eq!(containers_of(&d, "over", 0).len(), 1);
    let s = d.snapshot();
    for (name, n) in [("big", 1), ("next", 1), ("masked", 2)] {
        assert!(pool_ready(&s, name, n), "{name} stays Ready");
    }
    assert_eq!((s.gpus[0].used_bytes, s.gpus[1].used_bytes), (23 * GIB, 10 * GIB));

    // What an operator sees.
    let events = d.orchctl(&["events", "pool/over"]);
    let events = String::from_utf8_lossy(&events.stdout);
    assert_eq!(
        events.matches("PlacementRefused").count(),
        1,
        "one event, not one per pass:\n{events}"
    );
    let gpus = d.orchctl(&["get", "gpus"]);
    let gpus = String::from_utf8_lossy(&gpus.stdout);
    assert!(gpus.contains("23.0 GiB") && gpus.contains("SIMULATED"), "{gpus}");
    let describe = d.orchctl(&["describe", "pool/over"]);
    let describe = String::from_utf8_lossy(&describe.stdout);
    assert!(
        describe.contains("InsufficientVram") && describe.contains("Per replica:  7.0 GiB"),
        "{describe}"
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"replica_placements_total{pool="over",outcome="refused"} 1"#),
        "{metrics}"
    );

    // Level-triggered: once GPU 0 is freed, the refused replica starts.
    d.delete_manifest("big.yaml");
    let s = d.wait_for("over 2/2 once big is gone", READY_WITHIN, |s| pool_ready(s, "over", 2));
    assert_eq!(gpus_of(&s, "over"), [vec![0], vec![0]]);
    let degraded = pool_status(&s, "over")
        .unwrap()
        .condition(ConditionType::Degraded)
        .unwrap();
    assert!(!degraded.status, "{degraded:?}");
}

llama_orch_e2e::on_both_runtimes!(replicas_go_where_vram_is_free_and_over_commit_is_refused);
