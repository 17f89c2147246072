//! The NotOnGpu check through the whole reconcile loop (issue 15, item 3), with real health
//! probes (`support`) and a fake NVML inventory (`FakeGpus`, source `nvml`) whose process list
//! the test edits: a Ready replica whose pid NVML does not list is taken out of service after
//! `onGpuGrace` (left running, Pool Degraded with the fix, one Warning event) and serves again
//! once its process shows up; a GPU whose processes NVML cannot list is not checked (one
//! event), and a simulated inventory never is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::gpu::fake::FakeGpus;
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::api::{GpuProcess, GpuView, ObjectView, ProcessListing, Snapshot};
use llorch_manifests::status::{ConditionType, EventType, ReplicaPhase};
use llorch_manifests::{Kind, Reason};

use support::Served;

mod support;

const STACK: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: llama}\n\
     spec: {image: 'img:dev', version: 'b7', health: {path: /health, intervalMs: 50, startupTimeoutMs: 5000}}\n---\n\
     apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: tiny}\n\
     spec: {ref: 'file:tiny.gguf', ctxMax: 64}\n---\n\
     apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
     spec: {engine: llama, model: tiny, replicas: 1, gpus: [0], ctxSize: 32}\n";

const UUID: &str = "GPU-7e1f0c2a";

struct World {
    _dir: tempfile::TempDir,
    runtime: Arc<Served>,
    gpus: FakeGpus,
    controller: Controller<Served>,
    events: Arc<EventLog>,
}

/// One GPU of 24 GiB as NVML would list it (`simulated`: as the simulated inventory instead),
/// no process on it; the given grace.
fn world(listing: ProcessListing, simulated: bool, grace: Duration) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("manifests/tiny.gguf"),
        llorch_gguf::fixture::tiny_model("llama"),
    )
    .unwrap();
    std::fs::write(dir.path().join("manifests/stack.yaml"), STACK).unwrap();
    let gpus = FakeGpus::new(
        vec![GpuView {
            index: 0,
            uuid: UUID.into(),
            name: "NVIDIA GeForce RTX 4090".into(),
            total_bytes: 24 << 30,
            used_bytes: 0,
            free_bytes: 24 << 30,
            utilization_pct: None,
            simulated,
            processes: Vec::new(),
            process_listing: listing,
            errors: Vec::new(),
        }],
        simulated,
    );
    let runtime = Arc::new(Served::new());
    let events = Arc::new(EventLog::open(&dir.path().join("state")).unwrap());
    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.path().join("manifests")),
        Box::new(gpus.clone()),
        StatusFiles::open(&dir.path().join("state")).unwrap(),
        events.clone(),
    )
    .with_on_gpu_grace(grace);
    World {
        _dir: dir,
        runtime,
        gpus,
        controller,
        events,
    }
}

impl World {
    fn snapshot(&self) -> Snapshot {
        Snapshot::clone(&self.controller.subscribe().borrow())
    }

    /// Runs passes until `done` holds on the snapshot (10 s at most; the probes are real).
    async fn until(&mut self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.controller.pass().await;
            let s = self.snapshot();
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The events of `reason`: (type, message).
    fn events(&self, reason: Reason) -> Vec<(EventType, String)> {
        self.events
            .recent(None, 500)
            .into_iter()
            .filter(|e| e.reason == reason)
            .map(|e| (e.type_, e.message))
            .collect()
    }

    /// The one container's id and its made-up pids.
    async fn container(&self) -> (String, Vec<u32>) {
        use llorch_controller::runtime::ContainerRuntime;
        let containers = self.runtime.fake.containers();
        assert_eq!(containers.len(), 1, "{containers:?}");
        let id = containers[0].info.id.clone();
        let pids = self.runtime.pids(&id).await.unwrap();
        (id, pids)
    }
}

fn phase(s: &Snapshot) -> Option<ReplicaPhase> {
    s.replicas.first().map(|r| r.phase)
}

fn pool(s: &Snapshot) -> &ObjectView {
    s.objects
        .iter()
        .find(|o| o.object.kind == Kind::Pool && o.object.name == "chat")
        .unwrap()
}

#[tokio::test]
async fn a_replica_not_on_its_gpu_goes_out_of_service_after_the_grace_and_serves_again_once_it_shows_up() {
    let mut w = world(ProcessListing::Listed, false, Duration::from_millis(800));
    let s = w
        .until("the replica Ready", |s| phase(s) == Some(ReplicaPhase::Ready))
        .await;
    assert_eq!(
        s.serving("chat").unwrap().replicas.len(),
        1,
        "within the grace it serves"
    );
    assert!(w.events(Reason::NotOnGpu).is_empty());

    let s = w.until("NotOnGpu", |s| phase(s) == Some(ReplicaPhase::NotOnGpu)).await;
    let (id, pids) = w.container().await;
    assert!(
        s.serving("chat").unwrap().replicas.is_empty(),
        "no task goes to a replica that computes on the CPU"
    );
    assert!(
        w.runtime.fake.container(&id).unwrap().info.state.is_running(),
        "left running for its logs"
    );
    assert_eq!(w.runtime.fake.remove_count(), 0);
    let degraded = pool(&s).status.condition(ConditionType::Degraded).unwrap().clone();
    assert!(degraded.status);
    assert_eq!(degraded.reason, Reason::NotOnGpu);
    for part in [
        "replica chat-0 of Pool chat is not on its GPU",
        &format!("GPU 0 ({UUID})"),
        &format!("pids {}", pids[0]),
        "Fix: add `--n-gpu-layers 999` to the Engine's args",
    ] {
        assert!(degraded.message.contains(part), "`{part}` not in: {}", degraded.message);
    }
    assert!(!pool(&s).status.is_ready());
    // Re-checked every pass, announced once.
    for _ in 0..3 {
        w.controller.pass().await;
    }
    assert_eq!(phase(&w.snapshot()), Some(ReplicaPhase::NotOnGpu));
    let warnings = w.events(Reason::NotOnGpu);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0], (EventType::Warning, degraded.message.clone()));

    // Its process shows up on the GPU: Ready again, announced once.
    w.gpus.edit(0, |g| {
        g.processes = vec![GpuProcess {
            pid: pids[0],
            used_bytes: Some(3 << 30),
        }];
    });
    let s = w.until("Ready again", |s| phase(s) == Some(ReplicaPhase::Ready)).await;
    assert_eq!(s.serving("chat").unwrap().replicas.len(), 1);
    assert!(!pool(&s).status.condition(ConditionType::Degraded).unwrap().status);
    assert_eq!(w.events(Reason::OnGpu).len(), 1);
    assert_eq!(w.runtime.fake.create_count(), 1, "the same container throughout");

    // Settled passes look its known pids up without asking the runtime, but a process that
    // leaves the GPU is still caught on the next pass.
    for _ in 0..3 {
        w.controller.pass().await;
    }
    assert_eq!(phase(&w.snapshot()), Some(ReplicaPhase::Ready));
    w.gpus.edit(0, |g| g.processes.clear());
    w.until("NotOnGpu again", |s| phase(s) == Some(ReplicaPhase::NotOnGpu))
        .await;
    assert_eq!(w.events(Reason::NotOnGpu).len(), 2);
}

#[tokio::test]
async fn a_pid_listed_with_no_memory_does_not_count_as_on_the_gpu() {
    let mut w = world(ProcessListing::Listed, false, Duration::ZERO);
    w.until("a container", |s| {
        !s.replicas.is_empty() && s.replicas[0].container_id.is_some()
    })
    .await;
    let (_, pids) = w.container().await;
    w.gpus.edit(0, |g| {
        g.processes = vec![GpuProcess {
            pid: pids[0],
            used_bytes: Some(0),
        }];
    });
    w.until("NotOnGpu at once with a grace of 0s", |s| {
        phase(s) == Some(ReplicaPhase::NotOnGpu)
    })
    .await;
}

#[tokio::test]
async fn a_gpu_whose_processes_nvml_cannot_list_is_not_checked_and_says_so_once() {
    let grace = Duration::from_millis(200);
    let mut w = world(ProcessListing::NotSupported, false, grace);
    w.until("the replica Ready", |s| phase(s) == Some(ReplicaPhase::Ready))
        .await;
    let past = Instant::now() + grace * 2;
    let s = w.until("passes past the grace", |_| Instant::now() > past).await;
    assert_eq!(phase(&s), Some(ReplicaPhase::Ready), "not decidable: it serves");
    assert!(w.events(Reason::NotOnGpu).is_empty());
    let told = w.events(Reason::OnGpuUnchecked);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, EventType::Normal);
    assert!(
        told[0].1.contains(&format!("GPU 0 ({UUID})")) && told[0].1.contains("NotSupported"),
        "{told:?}"
    );
}

#[tokio::test]
async fn a_replica_whose_processes_cannot_be_seen_is_not_checked_and_says_so_once() {
    let grace = Duration::from_millis(200);
    let mut w = world(ProcessListing::Listed, false, grace);
    w.until("a container", |s| {
        !s.replicas.is_empty() && s.replicas[0].container_id.is_some()
    })
    .await;
    let (id, _) = w.container().await;
    assert!(w.runtime.fake.set_pids(&id, &[]));
    w.until("the replica Ready", |s| phase(s) == Some(ReplicaPhase::Ready))
        .await;
    let past = Instant::now() + grace * 2;
    let s = w.until("passes past the grace", |_| Instant::now() > past).await;
    assert_eq!(phase(&s), Some(ReplicaPhase::Ready), "not decidable: it serves");
    let told = w.events(Reason::OnGpuUnchecked);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].1.contains("PID namespace"), "{told:?}");
}

#[tokio::test]
async fn a_simulated_inventory_is_never_checked() {
    let mut w = world(ProcessListing::Listed, true, Duration::ZERO);
    w.until("the replica Ready", |s| phase(s) == Some(ReplicaPhase::Ready))
        .await;
    for _ in 0..3 {
        w.controller.pass().await;
    }
    assert_eq!(phase(&w.snapshot()), Some(ReplicaPhase::Ready));
    assert!(w.events(Reason::NotOnGpu).is_empty() && w.events(Reason::OnGpuUnchecked).is_empty());
}

/// A CUDA build with no layers offloaded is listed with its CUDA context while its weights stay
/// in host memory (0.59 GiB of 1.10 GiB on an H200, docs/gpus.md): the replica's memory on its
/// GPU is held against its model's weights from the GGUF header.
#[tokio::test]
async fn a_replica_listed_with_less_than_its_models_weights_is_not_on_its_gpu() {
    let mut w = world(ProcessListing::Listed, false, Duration::ZERO);
    let s = w
        .until("a container and the Pool's VRAM figures", |s| {
            !s.replicas.is_empty() && s.replicas[0].container_id.is_some() && pool(s).status.vram.is_some()
        })
        .await;
    let vram = pool(&s).status.vram.clone().unwrap();
    assert_eq!(vram.source, "gguf");
    let weights = vram.weights_bytes;
    assert!(weights > 10, "{vram:?}");
    let (_, pids) = w.container().await;
    let pid = pids[0];
    let hold = move |bytes: u64| {
        move |g: &mut GpuView| {
            g.processes = vec![GpuProcess {
                pid,
                used_bytes: Some(bytes),
            }];
        }
    };
    w.gpus.edit(0, hold(weights / 2));
    let s = w
        .until("NotOnGpu: half its weights", |s| {
            phase(s) == Some(ReplicaPhase::NotOnGpu)
        })
        .await;
    let degraded = pool(&s).status.condition(ConditionType::Degraded).unwrap().clone();
    assert!(
        degraded.message.contains("less than 90 % of its model's") && degraded.message.contains("of weights"),
        "{}",
        degraded.message
    );
    w.gpus.edit(0, hold(weights));
    w.until("Ready: all its weights", |s| phase(s) == Some(ReplicaPhase::Ready))
        .await;
    assert_eq!(w.events(Reason::OnGpu).len(), 1);
}
