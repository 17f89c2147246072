//! End-to-end: the production GPU path — `gpus: nvml` — with the real `llama-orchd` loading
//! the NVML shim (`nvml-shim/`, a TEST-ONLY `libnvidia-ml.so.1`) through `LD_LIBRARY_PATH`, on
//! real Docker and real Podman with the mock engine. The shim serves the reference
//! workstation (GPU 0: 24 GiB, GPU 1: 12 GiB) from a state file each test rewrites while the
//! daemon runs. What only real hardware proves is in docs/gpus.md (`scripts/gpu-proof.sh`).
//!
//! Docker attaches GPUs through its `nvidia` device driver, which it registers only when the
//! NVIDIA container toolkit's `nvidia-container-runtime-hook` is on dockerd's PATH. The test
//! dockerd has a stand-in there (scripts/setup-runtimes.sh) that attaches nothing and records
//! the `NVIDIA_VISIBLE_DEVICES` Docker put in each container's spec: these tests read that
//! record (`LLORCH_NVIDIA_HOOK_LOG`) to see which GPU Docker was asked for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, pool_ready, pool_status};
use llama_orch_e2e::nvml_shim::{InitMode, Shim, ShimProcess, ShimState, uuid, workstation};
use llorch_manifests::api::{GpuSource, Snapshot};

const GIB: u64 = 1 << 30;
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The variable an engine "on its GPU" carries in these tests (the shim lists processes with it).
const ON_GPU: &str = "LLORCH_TEST_ON_GPU=1";
/// [`ON_GPU`] as an Engine's `env`.
const ON_GPU_ENV: &str = "LLORCH_TEST_ON_GPU: \"1\"";

/// The reference workstation with 16 GiB of GPU 0 held by something that is not llama-orch, so
/// GPU 1 (12 GiB, all free) has more free VRAM than GPU 0 (24 GiB, 8 free); and on each GPU, any
/// process that Docker gave that GPU (`NVIDIA_VISIBLE_DEVICES=<i>`) and that carries [`ON_GPU`]
/// uses 4 GiB of it.
fn busy_workstation() -> ShimState {
    let mut state = workstation();
    state.devices[0].used_bytes = 16 * GIB;
    for (index, d) in state.devices.iter_mut().enumerate() {
        d.processes = vec![ShimProcess::Environ {
            environ: vec![format!("NVIDIA_VISIBLE_DEVICES={index}"), ON_GPU.to_string()],
            used_bytes: Some(4 * GIB),
        }];
    }
    state
}

/// A mock Engine `mock` with `env`, a Model of 4 GiB (an override) and a one-replica Pool `pool`.
fn stack(d: &Daemon, pool: &str, env: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock-{pool}}}\nspec:\n  \
         image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n  env: {{{env}}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {pool}-model}}\nspec:\n  ref: file:{}\n  \
         ctxMax: 4096\n  vramBytes: {}\n---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec:\n  \
         engine: mock-{pool}\n  model: {pool}-model\n  replicas: 1\n  gpus: all\n  \
         restart: {{backoffInitialMs: 200, backoffMaxMs: 2000, circuitBreakerFailures: 20}}\n",
        d.model_path().display(),
        4 * GIB
    )
}

/// Every condition message of Pool `pool`, one per line.
fn pool_messages(s: &Snapshot, pool: &str) -> String {
    pool_status(s, pool)
        .map(|st| {
            st.conditions
                .iter()
                .map(|c| c.message.clone())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The daemon's events file, as text.
fn events(d: &Daemon) -> String {
    std::fs::read_to_string(d.home.path().join("state/events.jsonl")).unwrap_or_default()
}

/// The GPUs of Pool `pool`'s Ready replicas with their container ids.
fn placed(s: &Snapshot, pool: &str) -> Vec<(Vec<u32>, String)> {
    s.replicas
        .iter()
        .filter(|r| r.pool == pool && r.phase == llorch_manifests::status::ReplicaPhase::Ready)
        .filter_map(|r| Some((r.gpus.clone(), r.container_id.clone()?)))
        .collect()
}

/// What the toolkit stand-in recorded for container `id`: `NVIDIA_VISIBLE_DEVICES=…`.
fn device_request_seen(id: &str) -> Option<String> {
    let log = std::env::var("LLORCH_NVIDIA_HOOK_LOG").unwrap_or_else(|_| "/tmp/lo-docker/nvidia-hook.log".into());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(id).map(|rest| rest.trim().to_string()))
}

/// The host PID of container `id`'s engine and its environment entries.
fn engine_process(rt: &Runtime, id: &str) -> (u32, Vec<String>) {
    let pid: u32 = rt
        .run(&["inspect", "-f", "{{.State.Pid}}", id])
        .trim()
        .parse()
        .expect("pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read the engine's environment");
    let entries = environ
        .split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    (pid, entries)
}

/// Issue 15, item 2 on Docker: real GPUs as NVML reports them, placed by free VRAM, attached
/// through Docker's `nvidia` device request for the chosen GPU, moved off a GPU that reports
/// ECC errors, not Ready with the reason when no GPU is usable, and moved off a GPU that
/// disappears from NVML's list.
#[test]
fn docker_nvml_gpus_are_real_placed_by_free_vram_attached_and_left_when_broken() {
    let mut state = busy_workstation();
    let shim = Shim::new(&state);
    let d = Daemon::start_with_gpus(Runtime::docker(), "nvml", "", &shim.env());

    // The shim's cards, as real GPUs.
    let s = d.snapshot();
    assert_eq!(s.gpu_source, GpuSource::Nvml);
    assert!(!s.gpus_simulated && s.gpus.iter().all(|g| !g.simulated), "{:?}", s.gpus);
    let cards: Vec<_> = s
        .gpus
        .iter()
        .map(|g| (g.index, g.uuid.clone(), g.total_bytes, g.free_bytes))
        .collect();
    assert_eq!(
        cards,
        [(0, uuid(0), 24 * GIB, 8 * GIB), (1, uuid(1), 12 * GIB, 12 * GIB)]
    );
    let table = d.orchctl(&["get", "gpus"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("NVML Shim 24G") && table.contains("NVML Shim 12G"),
        "{table}"
    );
    let simulated_column: Vec<_> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(simulated_column, ["no", "no"], "real GPUs, not simulated:\n{table}");

    // Free VRAM, not size, decides: GPU 1 (12 free) over GPU 0 (24, but 8 free).
    d.write_manifest("chat.yaml", &stack(&d, "chat", ON_GPU_ENV));
    let s = d.wait_for("chat Ready on GPU 1", READY_WITHIN, |s| pool_ready(s, "chat", 1));
    let [(gpus, id)] = placed(&s, "chat").try_into().expect("one Ready replica");
    assert_eq!(gpus, [1], "most free VRAM first");
    assert_eq!(
        device_request_seen(&id).as_deref(),
        Some("NVIDIA_VISIBLE_DEVICES=1"),
        "Docker's nvidia device request for GPU 1"
    );
    let (pid, environ) = engine_process(&d.runtime, &id);
    assert!(environ.iter().any(|e| e == "NVIDIA_VISIBLE_DEVICES=1"), "{environ:?}");
    let s = d.wait_for("the engine in GPU 1's process list", READY_WITHIN, |s| {
        s.gpus[1].processes.iter().any(|p| p.pid == pid)
    });
    let on_gpu1 = s.gpus[1].processes.iter().find(|p| p.pid == pid).unwrap();
    assert_eq!(
        on_gpu1.used_bytes,
        Some(4 * GIB),
        "per-process memory as NVML reports it"
    );
    assert_eq!(s.gpus[1].free_bytes, 8 * GIB);

    // ECC errors on GPU 1: its replica leaves it for GPU 0, the only other GPU with room.
    state.devices[1].ecc_uncorrected = 2;
    shim.write(&state);
    let s = d.wait_for("chat Ready again, on GPU 0", READY_WITHIN, |s| {
        pool_ready(s, "chat", 1) && placed(s, "chat").iter().any(|(g, _)| g == &[0])
    });
    let [(_, moved)] = placed(&s, "chat").try_into().expect("one Ready replica");
    assert_ne!(moved, id, "a new container");
    assert_eq!(device_request_seen(&moved).as_deref(), Some("NVIDIA_VISIBLE_DEVICES=0"));
    assert!(
        !s.gpus[1].errors.is_empty() && s.gpus[1].errors[0].contains("ECC"),
        "{:?}",
        s.gpus[1].errors
    );
    assert!(
        events(&d).contains("ECC"),
        "the move names the ECC errors:\n{}",
        events(&d)
    );

    // GPU 0 falls off the bus as well: nowhere healthy to go, and the Pool says why.
    state.devices[0].lost = true;
    shim.write(&state);
    let s = d.wait_for("chat not Ready, naming the lost GPU", READY_WITHIN, |s| {
        !pool_ready(s, "chat", 1) && pool_messages(s, "chat").contains("lost")
    });
    assert!(placed(&s, "chat").is_empty(), "{:?}", s.replicas);

    // Both healthy again: served again, on GPU 1 (the most free VRAM).
    let mut state = busy_workstation();
    shim.write(&state);
    d.wait_for("chat Ready on GPU 1 after the GPUs recover", READY_WITHIN, |s| {
        pool_ready(s, "chat", 1) && placed(s, "chat").iter().any(|(g, _)| g == &[1])
    });

    // GPU 1 disappears (NVML lists one GPU): its replica moves to GPU 0, saying why.
    state.devices.truncate(1);
    shim.write(&state);
    let s = d.wait_for("chat Ready on GPU 0 after GPU 1 is gone", READY_WITHIN, |s| {
        s.gpus.len() == 1 && pool_ready(s, "chat", 1) && placed(s, "chat").iter().any(|(g, _)| g == &[0])
    });
    let [(_, last)] = placed(&s, "chat").try_into().expect("one Ready replica");
    assert_eq!(device_request_seen(&last).as_deref(), Some("NVIDIA_VISIBLE_DEVICES=0"));
    assert!(
        events(&d).contains("GPU 1: no longer in the GPU inventory"),
        "{}",
        events(&d)
    );
}

/// Issue 15, item 2 on Podman: the shim's GPUs are real GPUs to the daemon on Podman too, and
/// Debian 12's Podman 4.3 — whose Docker-compatible API silently drops GPU requests — is refused
/// for them with the documented upgrade, instead of running an engine without its GPU.
#[test]
fn podman_nvml_gpus_are_real_and_podman_before_5_4_is_refused_with_the_upgrade() {
    let shim = Shim::new(&busy_workstation());
    let d = Daemon::start_with_gpus(Runtime::podman(), "nvml", "", &shim.env());
    let s = d.snapshot();
    assert_eq!(
        (s.gpu_source, s.gpus_simulated, s.gpus.len()),
        (GpuSource::Nvml, false, 2)
    );
    let version = s.runtime.version.clone();
    let newer = version
        .split('.')
        .take(2)
        .map(|p| p.parse::<u64>().unwrap_or(0))
        .collect::<Vec<_>>()
        >= vec![5, 4];
    assert!(
        !newer,
        "this test expects a Podman older than 5.4 (Debian 12 ships 4.3), got {version}: with 5.4+, \
         give it a CDI spec for the shim's GPUs and check the CDI device names instead"
    );
    d.write_manifest("chat.yaml", &stack(&d, "chat", ON_GPU_ENV));
    d.wait_for("the refusal, naming Podman 5.4", READY_WITHIN, |_| {
        let e = events(&d);
        e.contains("drops GPU requests") && e.contains("5.4")
    });
    let s = d.snapshot();
    assert!(!pool_ready(&s, "chat", 1));
    assert!(
        d.container_ids().is_empty()
            || s.replicas
                .iter()
                .all(|r| r.phase != llorch_manifests::status::ReplicaPhase::Ready)
    );
}

/// Issue 15, item 2: with the shim's "driver not loaded" (and "driver/library mismatch") modes
/// the daemon refuses to start, fast, with the documented words — and never falls back to CPU.
#[test]
fn a_driver_that_is_not_loaded_fails_the_daemon_fast_with_the_fix() {
    for (mode, words) in [
        (InitMode::DriverNotLoaded, "NVIDIA driver is not loaded"),
        (InitMode::LibRmVersionMismatch, "version mismatch"),
    ] {
        let mut state = workstation();
        state.init = mode;
        let shim = Shim::new(&state);
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.yaml"),
            format!(
                "bind: 127.0.0.1:0\ninstance: {}\ngpus: nvml\nruntime: {{kind: docker, socket: {}}}\n",
                llama_orch_e2e::unique("shim"),
                llama_orch_e2e::docker_socket()
            ),
        )
        .unwrap();
        let started = Instant::now();
        let mut daemon = Command::new(bin("llama-orchd"));
        daemon
            .env("LLAMA_ORCH_HOME", home.path())
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        for (k, v) in shim.env() {
            daemon.env(k, v);
        }
        let out = daemon.output().expect("run llama-orchd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode:?}: the daemon must not start:\n{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode:?}: fail fast, took {:?}",
            started.elapsed()
        );
        for expected in [
            "NVML could not be initialised",
            words,
            "nvidia-smi",
            "never falls back to CPU",
        ] {
            assert!(
                stderr.contains(expected),
                "{mode:?}: `{expected}` missing from:\n{stderr}"
            );
        }
    }
}
