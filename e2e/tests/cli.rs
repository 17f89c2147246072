//! End-to-end: the shipped examples through `orchctl apply` and `orchctl wait`, on both
//! runtimes; and the daemon's refusal to start without a usable NVIDIA driver (ORCH-1102).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, pool_ready};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn examples_apply_and_become_ready(rt: Runtime) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    // The example Model's file is in the checkout, which config must allow (models.fileRoots).
    let d = Daemon::start_with(rt, &format!("models:\n  fileRoots: [{examples}/models]\n"));
    let out = d.orchctl(&["apply", "-f", examples]);
    assert!(out.status.success(), "orchctl apply failed: {}", text(&out));
    for line in ["engine/mock created", "model/tiny created", "pool/chat created"] {
        assert!(text(&out).contains(line), "missing `{line}` in: {}", text(&out));
    }
    let out = d.orchctl(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=60s"]);
    assert!(out.status.success(), "orchctl wait failed: {}", text(&out));
    assert!(pool_ready(&d.snapshot(), "chat", 2));
    let out = d.orchctl(&["get", "pools"]);
    assert!(
        text(&out).contains("chat") && text(&out).contains("2/2"),
        "{}",
        text(&out)
    );
    let out = d.orchctl(&["get", "gpus"]);
    assert!(
        text(&out).to_lowercase().contains("simulated"),
        "GPUs are shown as simulated: {}",
        text(&out)
    );
    // Applying the same files again changes nothing.
    let out = d.orchctl(&["apply", "-f", examples]);
    assert!(text(&out).contains("pool/chat unchanged"), "{}", text(&out));
    let metrics = reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("simulated=\"true\""),
        "metrics label simulated GPUs: {metrics}"
    );
}

#[test]
fn docker_examples_apply_and_become_ready() {
    examples_apply_and_become_ready(Runtime::docker());
}

#[test]
fn podman_examples_apply_and_become_ready() {
    examples_apply_and_become_ready(Runtime::podman());
}

/// With the default `gpus: nvml` on a host without an NVIDIA driver, the daemon exits
/// non-zero and says what is missing and what to do; it never simulates silently.
#[test]
fn without_an_nvidia_driver_the_daemon_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.yaml"), "bind: 127.0.0.1:0\n").unwrap();
    let out = Command::new(bin("llama-orchd"))
        .env("LLAMA_ORCH_HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the daemon must not start: {}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("NVML") && t.contains("NVIDIA driver"),
        "names what is missing: {t}"
    );
    assert!(
        t.contains("simulate"),
        "points at the simulated inventory for tests: {t}"
    );
    assert!(t.contains("never falls back to CPU"), "{t}");
}

/// A non-loopback bind is refused while there is no authentication (HME-002).
#[test]
fn a_non_loopback_bind_is_refused() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "bind: 0.0.0.0:8080\ngpus: {simulate: [{name: s, vramBytes: 1}]}\n",
    )
    .unwrap();
    let out = Command::new(bin("llama-orchd"))
        .env("LLAMA_ORCH_HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("not a loopback address"), "{}", text(&out));
}
