//! End-to-end: the NotOnGpu check (issue 15, item 3) with the real `llama-orchd` on `gpus: nvml`
//! through the NVML shim (`nvml-shim/`, TEST-ONLY) and real Docker with the mock engine, which
//! never touches a GPU — exactly the engine the check exists to catch. The shim lists a process
//! on a GPU only when the test says so, so the test plays both sides: the replica is Ready,
//! then `NotOnGpu` after `onGpuGrace` (out of service, container left running, Pool Degraded
//! with the fix, one Warning event, `llorch_pool_replicas_not_on_gpu` 1), then Ready again
//! (`OnGpu`) once the shim lists the engine's host pid on its GPU.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready, pool_status};
use llama_orch_e2e::nvml_shim::{Shim, ShimProcess, uuid, workstation};
use llorch_manifests::Reason;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::{ConditionType, ReplicaPhase};

const GIB: u64 = 1 << 30;
const WITHIN: Duration = Duration::from_secs(60);

/// A mock Engine (llama.cpp API, no `--n-gpu-layers`), a 4 GiB Model and a one-replica Pool.
fn stack(d: &Daemon) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  \
         image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec:\n  ref: file:{}\n  \
         ctxMax: 4096\n  vramBytes: {}\n---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec:\n  \
         engine: mock\n  model: m\n  replicas: 1\n  gpus: [0]\n",
        d.model_path().display(),
        4 * GIB
    )
}

fn phase(s: &Snapshot) -> Option<ReplicaPhase> {
    s.replicas.iter().find(|r| r.pool == "chat").map(|r| r.phase)
}

fn scrape(d: &Daemon) -> String {
    reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap()
}

fn events_of(d: &Daemon, reason: Reason) -> Vec<String> {
    std::fs::read_to_string(d.home.path().join("state/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("\"reason\":\"{reason}\"")))
        .map(String::from)
        .collect()
}

#[test]
fn docker_an_engine_not_on_its_gpu_is_taken_out_of_service_and_back_once_nvml_lists_it() {
    let mut state = workstation();
    let shim = Shim::new(&state);
    let d = Daemon::start_with_gpus(Runtime::docker(), "nvml", "onGpuGrace: 2s\n", &shim.env());
    d.write_manifest("chat.yaml", &stack(&d));
    d.wait_for("chat Ready", WITHIN, |s| pool_ready(s, "chat", 1));

    let s = d.wait_for("chat-0 NotOnGpu", WITHIN, |s| phase(s) == Some(ReplicaPhase::NotOnGpu));
    let id = s.replicas[0].container_id.clone().expect("its container is kept");
    let pid: u32 = d
        .runtime
        .run(&["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        d.runtime.run(&["inspect", "-f", "{{.State.Running}}", &id]).trim(),
        "true"
    );
    assert!(s.serving("chat").unwrap().replicas.is_empty(), "no task goes to it");
    let degraded = pool_status(&s, "chat")
        .unwrap()
        .condition(ConditionType::Degraded)
        .unwrap();
    assert_eq!(degraded.reason, Reason::NotOnGpu, "{degraded:?}");
    for part in [
        "replica chat-0 of Pool chat is not on its GPU".to_string(),
        format!("GPU 0 ({})", uuid(0)),
        format!("pids {pid}"),
        "add `--n-gpu-layers 999` to the Engine's args".to_string(),
    ] {
        assert!(degraded.message.contains(&part), "`{part}` not in {}", degraded.message);
    }
    assert_eq!(events_of(&d, Reason::NotOnGpu).len(), 1);
    assert!(
        scrape(&d)
            .lines()
            .any(|l| l == r#"llorch_pool_replicas_not_on_gpu{pool="chat"} 1"#),
        "the gauge counts it"
    );
    let replicas = d.orchctl(&["get", "replicas"]);
    assert!(String::from_utf8_lossy(&replicas.stdout).contains("NotOnGpu"));

    // NVML lists the engine's host pid on GPU 0: Ready again, the same container.
    state.devices[0].processes = vec![ShimProcess::Pid {
        pid,
        used_bytes: Some(4 * GIB),
    }];
    shim.write(&state);
    let s = d.wait_for("chat Ready again", WITHIN, |s| pool_ready(s, "chat", 1));
    assert_eq!(s.replicas[0].container_id.as_deref(), Some(id.as_str()));
    assert_eq!(events_of(&d, Reason::OnGpu).len(), 1);
    assert!(
        scrape(&d)
            .lines()
            .any(|l| l == r#"llorch_pool_replicas_not_on_gpu{pool="chat"} 0"#)
    );
}

/// A GPU whose processes NVML cannot list (`NotSupported`, as on some vGPU setups): the check
/// cannot decide, so the replica serves on, with one `OnGpuUnchecked` event saying why, and
/// `orchctl get gpus` shows `?` for its processes.
#[test]
fn docker_a_gpu_that_cannot_list_its_processes_is_not_checked_and_says_so_once() {
    let mut state = workstation();
    state.devices[0].processes_supported = false;
    let shim = Shim::new(&state);
    let d = Daemon::start_with_gpus(Runtime::docker(), "nvml", "onGpuGrace: 1s\n", &shim.env());
    d.write_manifest("chat.yaml", &stack(&d));
    d.wait_for("chat Ready and the check skipped", WITHIN, |s| {
        pool_ready(s, "chat", 1) && events_of(&d, Reason::OnGpuUnchecked).len() == 1
    });
    let past = std::time::Instant::now() + Duration::from_secs(3);
    let s = d.wait_for("a pass well past the grace", WITHIN, |_| {
        std::time::Instant::now() > past
    });
    assert_eq!(phase(&s), Some(ReplicaPhase::Ready), "not decidable: it serves");
    assert!(events_of(&d, Reason::NotOnGpu).is_empty());
    let told = events_of(&d, Reason::OnGpuUnchecked);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains(&format!("GPU 0 ({})", uuid(0))) && told[0].contains("NotSupported"),
        "{told:?}"
    );
    let gpus = String::from_utf8_lossy(&d.orchctl(&["get", "gpus"]).stdout).to_string();
    let row0: Vec<_> = gpus.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(row0.contains(&"?"), "PROCS is ? for GPU 0:\n{gpus}");
}
