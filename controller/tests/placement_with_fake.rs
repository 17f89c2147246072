//! Placement through the whole reconcile loop, on the in-memory runtime and a fake GPU
//! inventory: over-commit refused before any container exists (one event, a Degraded reason
//! that names the device and the shortfall), sticky GPUs that survive a mask edit, and a GPU
//! that reports driver/ECC errors failing its replica, which is restarted elsewhere through
//! the slot's backoff — or refused until the GPU recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::gpu::fake::FakeGpus;
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::runtime::fake::FakeRuntime;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::Reason;
use llorch_manifests::api::{GpuView, Snapshot};
use llorch_manifests::identity;
use llorch_manifests::status::{ConditionType, ObjectStatus};

const GIB: u64 = 1 << 30;

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<FakeRuntime>,
    gpus: FakeGpus,
    controller: Controller<FakeRuntime>,
    events: Arc<EventLog>,
}

fn gpu(index: u32, name: &str, gib: u64) -> GpuView {
    GpuView {
        index,
        uuid: format!("SIM-GPU-{index}"),
        name: name.into(),
        total_bytes: gib * GIB,
        used_bytes: 0,
        free_bytes: gib * GIB,
        utilization_pct: None,
        simulated: true,
        processes: Vec::new(),
        process_listing: Default::default(),
        errors: Vec::new(),
    }
}

/// The reference workstation: 24 GiB + 12 GiB, simulated.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/m.gguf"), b"weights").unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let gpus = FakeGpus::new(vec![gpu(0, "Sim 24G", 24), gpu(1, "Sim 12G", 12)], true);
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
    );
    World {
        dir,
        runtime,
        gpus,
        controller,
        events,
    }
}

/// An Engine, a Model of `vram_gib` (an override, so the file's content does not matter) and
/// a Pool `chat` with `pool_extra` in its spec.
fn stack(vram_gib: u64, pool_extra: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: 'img:dev', version: '1'}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec: {{ref: 'file:m.gguf', ctxMax: 64, vramBytes: {}}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: mock, model: m, {pool_extra}, \
         restart: {{backoffInitialMs: 10000, backoffMaxMs: 60000, circuitBreakerFailures: 3}}}}\n",
        vram_gib * GIB
    )
}

impl World {
    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("manifests/chat.yaml"), text).unwrap();
    }
    fn snapshot(&self) -> Snapshot {
        (*self.controller.subscribe().borrow().clone()).clone()
    }
    fn chat(&self) -> ObjectStatus {
        let snap = self.snapshot();
        snap.objects
            .iter()
            .find(|o| o.object.name == "chat")
            .unwrap()
            .status
            .clone()
    }
    /// GPU labels of the running containers, by replica index.
    fn placed(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .runtime
            .containers()
            .into_iter()
            .filter(|c| c.info.state.is_running())
            .map(|c| {
                (
                    c.spec.labels[identity::REPLICA_KEY].clone(),
                    c.spec.labels[identity::GPUS_KEY].clone(),
                )
            })
            .collect();
        out.sort();
        out
    }
    fn events_of(&self, reason: Reason) -> Vec<llorch_manifests::status::Event> {
        self.events
            .recent(None, 200)
            .into_iter()
            .filter(|e| e.reason == reason)
            .collect()
    }
}

#[tokio::test]
async fn over_commit_is_refused_before_any_container_exists_naming_the_device_and_shortfall() {
    let mut w = world();
    w.write(&stack(13, "replicas: 3"));
    for _ in 0..3 {
        w.controller.pass().await;
    }
    assert_eq!(w.placed(), [("0".to_string(), "0".to_string())], "only chat-0 fits");
    assert_eq!(
        w.runtime.create_count(),
        1,
        "no container was ever created for chat-1 or chat-2"
    );
    let chat = w.chat();
    let degraded = chat.condition(ConditionType::Degraded).unwrap();
    assert!(degraded.status, "{degraded:?}");
    assert_eq!(degraded.reason, Reason::InsufficientVram);
    assert!(
        degraded.message.starts_with(
            "replica chat-1 needs 13.0 GiB on 1 GPU; GPU 1 (Sim 12G, 12.0 GiB) has 12.0 GiB free — short by 1.0 GiB; \
             GPU 0 (Sim 24G, 24.0 GiB) has 11.0 GiB free — short by 2.0 GiB."
        ),
        "{}",
        degraded.message
    );
    assert!(
        degraded.message.contains("replica chat-2 needs 13.0 GiB"),
        "{}",
        degraded.message
    );
    let progressing = chat.condition(ConditionType::Progressing).unwrap();
    assert!(
        progressing.status,
        "chat-0 is still starting on the fake runtime: {progressing:?}"
    );
    let refusals = w.events_of(Reason::PlacementRefused);
    assert_eq!(
        refusals.len(),
        2,
        "one event per refused replica, not one per pass: {refusals:?}"
    );
    let vram = chat.vram.unwrap();
    assert_eq!((vram.source.as_str(), vram.per_replica_bytes), ("override", 13 * GIB));
    assert_eq!(vram.decisions["placed"], 1);
    assert_eq!(vram.decisions["refused"], 2);
    // The simulated inventory shows what our replica reserves.
    let snap = w.snapshot();
    assert_eq!((snap.gpus[0].used_bytes, snap.gpus[0].free_bytes), (13 * GIB, 11 * GIB));
    assert_eq!(snap.gpus[1].used_bytes, 0);
}

#[tokio::test]
async fn a_replica_keeps_its_gpu_when_the_mask_widens_so_nothing_restarts() {
    let mut w = world();
    w.write(&stack(4, "replicas: 1, gpus: [1]"));
    w.controller.pass().await;
    assert_eq!(w.placed(), [("0".to_string(), "1".to_string())], "the mask is honoured");
    w.write(&stack(4, "replicas: 1, gpus: all"));
    w.controller.pass().await;
    w.controller.pass().await;
    assert_eq!(
        w.placed(),
        [("0".to_string(), "1".to_string())],
        "sticky, although GPU 0 has more free"
    );
    assert_eq!(w.runtime.create_count(), 1, "same container, same spec hash");
}

#[tokio::test]
async fn a_gpu_reporting_ecc_errors_fails_its_replica_which_restarts_on_a_healthy_gpu() {
    let mut w = world();
    w.write(&stack(4, "replicas: 1"));
    w.controller.pass().await;
    assert_eq!(w.placed(), [("0".to_string(), "0".to_string())]);
    w.gpus
        .set_errors(0, &["2 uncorrected ECC error(s) since the driver loaded"]);
    w.controller.pass().await;
    assert_eq!(w.placed(), [("0".to_string(), "1".to_string())], "restarted on GPU 1");
    let crashed = w.events_of(Reason::EngineCrashed);
    assert_eq!(crashed.len(), 1, "{crashed:?}");
    assert!(
        crashed[0]
            .message
            .contains("its GPU reports errors — GPU 0 (Sim 24G, 24.0 GiB): 2 uncorrected ECC error(s)"),
        "{}",
        crashed[0].message
    );
    assert_eq!(w.chat().restarts, 1, "counted like any engine failure");
    assert!(
        w.snapshot().gpus[0].errors.len() == 1,
        "the snapshot shows the device's problem"
    );
}

#[tokio::test]
async fn with_no_healthy_gpu_left_the_replica_is_refused_until_the_gpu_recovers() {
    let mut w = world();
    w.write(&stack(4, "replicas: 1, gpus: [0]"));
    w.controller.pass().await;
    w.gpus.set_errors(0, &["GPU lost"]);
    w.controller.pass().await;
    w.controller.pass().await;
    assert!(
        w.placed().is_empty(),
        "not Ready, removed, and nothing started on a broken GPU"
    );
    let degraded = w.chat().condition(ConditionType::Degraded).cloned().unwrap();
    assert_eq!(degraded.reason, Reason::InsufficientVram);
    assert_eq!(
        degraded.message,
        "replica chat-0 needs 1 healthy GPU(s) but its mask [0] has 0: GPU 0 (Sim 24G, 24.0 GiB) is unhealthy (GPU lost)"
    );
    w.gpus.set_errors(0, &[]);
    w.controller.pass().await;
    assert_eq!(
        w.placed(),
        [("0".to_string(), "0".to_string())],
        "back once the GPU is healthy"
    );
    assert_eq!(w.runtime.create_count(), 2);
}

#[tokio::test]
async fn a_tensor_split_replica_is_placed_on_both_gpus_with_its_weights_in_the_args() {
    let mut w = world();
    let text = stack(30, "replicas: 1, gpusPerReplica: 2, tensorSplit: [2, 1]").replace(
        "version: '1'}",
        "version: '1', extraArgs: ['--tensor-split', '{tensor_split}']}",
    );
    w.write(&text);
    w.controller.pass().await;
    let c = w
        .runtime
        .containers()
        .into_iter()
        .next()
        .expect("placed: 20 + 10 GiB fit");
    assert_eq!(c.spec.labels[identity::GPUS_KEY], "0,1");
    assert_eq!(c.spec.args[c.spec.args.len() - 2..], ["--tensor-split", "2,1"]);
    let snap = w.snapshot();
    assert_eq!(snap.gpus[0].used_bytes, 20 * GIB);
    assert_eq!(snap.gpus[1].used_bytes, 10 * GIB);
}
