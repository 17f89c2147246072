//! The reconcile loop against the in-memory runtime: creation with labels, scale-down,
//! crash → restart with backoff and a counted restart, orphan removal, adoption, and broken
//! manifests that leave running replicas alone. Health (and so Ready) is proven end-to-end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::gpu::{GpuError, GpuInventory};
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::runtime::fake::FakeRuntime;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::api::{GpuSource, GpuView};
use llorch_manifests::identity;
use llorch_manifests::status::ConditionType;
use llorch_manifests::{Kind, Reason};

struct TwoSimulatedGpus;

impl GpuInventory for TwoSimulatedGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        Ok((0..2)
            .map(|i| GpuView {
                index: i,
                uuid: format!("SIM-GPU-{i}"),
                name: "sim".into(),
                total_bytes: 1 << 34,
                used_bytes: 0,
                free_bytes: 1 << 34,
                utilization_pct: None,
                simulated: true,
                processes: Vec::new(),
                process_listing: Default::default(),
                errors: Vec::new(),
            })
            .collect())
    }
    fn simulated(&self) -> bool {
        true
    }
    fn source(&self) -> GpuSource {
        GpuSource::Simulated
    }
}

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<FakeRuntime>,
    controller: Controller<FakeRuntime>,
    events: Arc<EventLog>,
}

fn stack(replicas: u32) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: 'img:dev', version: '1'}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:tiny.gguf', ctxMax: 64}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: mock, model: tiny, replicas: {replicas}, \
         restart: {{backoffInitialMs: 10000, backoffMaxMs: 60000, circuitBreakerFailures: 3}}}}\n"
    )
}

/// A real tiny GGUF (`llorch_gguf::fixture::tiny_model("llama")`, committed as the example model).
const TINY_GGUF: &[u8] = include_bytes!("../../examples/models/tiny.gguf");

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/tiny.gguf"), TINY_GGUF).unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let events = Arc::new(EventLog::open(&dir.path().join("state")).unwrap());
    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.path().join("manifests")),
        Box::new(TwoSimulatedGpus),
        StatusFiles::open(&dir.path().join("state")).unwrap(),
        events.clone(),
    );
    World {
        dir,
        runtime,
        controller,
        events,
    }
}

impl World {
    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("manifests/chat.yaml"), text).unwrap();
    }
    fn running(&self) -> Vec<String> {
        self.runtime
            .containers()
            .into_iter()
            .filter(|c| c.info.state.is_running())
            .map(|c| c.info.id)
            .collect()
    }
}

#[tokio::test]
async fn a_pool_gets_one_labelled_container_per_replica_on_distinct_gpus() {
    let mut w = world();
    w.write(&stack(2));
    w.controller.pass().await;
    let cs = w.runtime.containers();
    assert_eq!(cs.len(), 2);
    let mut gpus: Vec<String> = cs.iter().map(|c| c.spec.labels[identity::GPUS_KEY].clone()).collect();
    gpus.sort();
    assert_eq!(gpus, ["0", "1"]);
    for c in &cs {
        assert_eq!(c.spec.labels[identity::INSTANCE_KEY], "t");
        assert_eq!(c.spec.labels[identity::GPUS_SIMULATED_KEY], "true");
        assert!(c.spec.mounts[0].read_only && c.spec.mounts[0].host_path.ends_with("tiny.gguf"));
    }
    // A second pass with nothing changed creates nothing.
    w.controller.pass().await;
    assert_eq!(w.runtime.create_count(), 2);
    let ready_events: Vec<_> = w
        .events
        .recent(None, 100)
        .into_iter()
        .filter(|e| e.reason == Reason::Ready)
        .collect();
    assert!(
        ready_events
            .iter()
            .any(|e| e.object.as_ref().is_some_and(|o| o.name == "tiny")),
        "{ready_events:?}"
    );
    assert_eq!(
        ready_events.len(),
        2,
        "one Ready event each for the Engine and the Model, not one per pass"
    );
}

#[tokio::test]
async fn scaling_down_removes_the_highest_replica_only() {
    let mut w = world();
    w.write(&stack(2));
    w.controller.pass().await;
    let replica0 = w
        .runtime
        .containers()
        .into_iter()
        .find(|c| c.spec.labels[identity::REPLICA_KEY] == "0")
        .unwrap()
        .info
        .id;
    w.write(&stack(1));
    w.controller.pass().await;
    assert_eq!(w.running(), vec![replica0]);
}

#[tokio::test]
async fn a_crash_is_restarted_once_immediately_then_backs_off_and_is_counted() {
    let mut w = world();
    w.write(&stack(1));
    w.controller.pass().await;
    let first = w.running()[0].clone();
    w.runtime.set_logs(&first, &["loading", "error: out of memory"]);
    assert!(w.runtime.kill(&first, 137));
    w.controller.pass().await;
    let second = w.running();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first, "replaced by a new container");
    let snap = w.controller.subscribe().borrow().clone();
    let chat = snap.objects.iter().find(|o| o.object.name == "chat").unwrap();
    assert_eq!(chat.status.restarts, 1);
    assert_eq!(
        chat.status.last_error.as_ref().unwrap().log_tail,
        ["loading", "error: out of memory"]
    );
    // The second crash waits for the backoff (10 s here): no new container yet.
    assert!(w.runtime.kill(&second[0], 1));
    w.controller.pass().await;
    assert!(w.running().is_empty());
    let snap = w.controller.subscribe().borrow().clone();
    let chat = snap.objects.iter().find(|o| o.object.name == "chat").unwrap();
    assert_eq!(chat.status.restarts, 2);
    assert!(chat.status.condition(ConditionType::Degraded).unwrap().status);
    assert!(chat.status.next_restart_in_ms.unwrap() > 5_000);
    assert!(
        w.events
            .recent(None, 100)
            .iter()
            .any(|e| e.reason == Reason::EngineCrashed && e.message.contains("next attempt in"))
    );
}

#[tokio::test]
async fn orphans_are_removed_and_matching_containers_adopted() {
    let mut w = world();
    w.write(&stack(1));
    w.controller.pass().await;
    let spec = w.runtime.containers()[0].spec.clone();
    // A fresh controller (a restarted daemon) over the same runtime adopts the container…
    let mut w2 = world();
    std::fs::write(w2.dir.path().join("manifests/tiny.gguf"), TINY_GGUF).unwrap();
    w2.write(&stack(1).replace(
        "file:tiny.gguf",
        &format!("file:{}", w.dir.path().join("manifests/tiny.gguf").display()),
    ));
    let adopted = w2.runtime.seed_running(&spec);
    let mut orphan_spec = spec.clone();
    orphan_spec.name = "leftover".into();
    orphan_spec.labels.insert(identity::POOL_KEY.into(), "gone".into());
    let orphan = w2.runtime.seed_running(&orphan_spec);
    w2.controller.pass().await;
    assert_eq!(w2.runtime.create_count(), 0, "nothing new created");
    assert_eq!(w2.running(), vec![adopted.id]);
    assert!(w2.runtime.container(&orphan.id).is_none(), "…and removes the orphan");
}

#[tokio::test]
async fn a_broken_edit_or_dangling_reference_leaves_running_replicas_alone() {
    let mut w = world();
    w.write(&stack(2));
    w.controller.pass().await;
    let before = w.running();
    w.write(&stack(2).replace("replicas: 2", "replicas: lots"));
    w.controller.pass().await;
    assert_eq!(w.running(), before);
    w.write(&stack(2).replace("model: tiny", "model: nope"));
    w.controller.pass().await;
    assert_eq!(w.running(), before);
    let snap = w.controller.subscribe().borrow().clone();
    let chat = snap.objects.iter().find(|o| o.object.name == "chat").unwrap();
    assert!(
        chat.status
            .manifest_errors
            .iter()
            .any(|e| e.to_string().contains("Model `nope` does not exist"))
    );
    assert!(!chat.status.is_ready());
}

#[tokio::test]
async fn a_daemon_starting_on_a_broken_manifest_keeps_that_pools_containers() {
    let mut w = world();
    w.write(&stack(1));
    w.controller.pass().await;
    let spec = w.runtime.containers()[0].spec.clone();
    // Restart over a manifest that is broken from the start: no last good copy exists, so the
    // running container cannot be told from an orphan and must be kept.
    let mut w2 = world();
    w2.write(&stack(1).replace("replicas: 1", "replicas: [oops"));
    let kept = w2.runtime.seed_running(&spec);
    w2.controller.pass().await;
    assert_eq!(w2.running(), vec![kept.id.clone()]);
    assert!(
        w2.events
            .recent(None, 50)
            .iter()
            .any(|e| e.reason == Reason::OrphanKept)
    );
    // Once the file is fixed, the pool is reconciled as usual.
    w2.write(&stack(1).replace(
        "file:tiny.gguf",
        &format!("file:{}", w.dir.path().join("manifests/tiny.gguf").display()),
    ));
    w2.controller.pass().await;
    assert_eq!(w2.running(), vec![kept.id]);
    assert_eq!(w2.runtime.create_count(), 0);
}

#[tokio::test]
async fn gpus_per_replica_beyond_the_mask_blocks_the_pool_with_a_reason() {
    let mut w = world();
    w.write(&stack(1).replace("replicas: 1,", "replicas: 1, gpus: [1], gpusPerReplica: 2,"));
    w.controller.pass().await;
    assert_eq!(w.runtime.create_count(), 0);
    let snap = w.controller.subscribe().borrow().clone();
    let chat = snap.objects.iter().find(|o| o.object.name == "chat").unwrap();
    let degraded = chat.status.condition(ConditionType::Degraded).unwrap();
    assert!(
        degraded.status && degraded.message.contains("gpusPerReplica"),
        "{degraded:?}"
    );
    assert_eq!(chat.status.observed_generation, chat.status.generation);
}

#[tokio::test]
async fn a_second_container_for_one_replica_is_removed_and_the_running_one_kept() {
    let mut w = world();
    w.write(&stack(1));
    w.controller.pass().await;
    let first = w.runtime.containers()[0].clone();
    let mut twin = first.spec.clone();
    twin.name = "twin".into();
    let twin = w.runtime.seed_running(&twin);
    w.controller.pass().await;
    assert_eq!(w.running().len(), 1, "no duplicates");
    assert_eq!(w.runtime.create_count(), 1);
    assert!(
        w.events
            .recent(None, 50)
            .iter()
            .any(|e| e.reason == Reason::DuplicateRemoved)
    );
    assert!(w.running() == vec![first.info.id] || w.running() == vec![twin.id]);
}

#[tokio::test]
async fn deleting_a_model_named_like_a_pool_keeps_that_pools_backoff() {
    let mut w = world();
    w.write(&stack(1));
    w.controller.pass().await;
    // Two crashes: the first restart is immediate, the second waits 10 s.
    assert!(w.runtime.kill(&w.running()[0], 1));
    w.controller.pass().await;
    assert!(w.runtime.kill(&w.running()[0], 1));
    w.controller.pass().await;
    assert!(w.running().is_empty(), "backing off");
    let creates = w.runtime.create_count();
    // A Model that shares the Pool's name comes and goes.
    let other = w.dir.path().join("manifests/other.yaml");
    std::fs::write(
        &other,
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: chat}\nspec: {ref: 'file:tiny.gguf', ctxMax: 64}\n",
    )
    .unwrap();
    w.controller.pass().await;
    std::fs::remove_file(&other).unwrap();
    w.controller.pass().await;
    assert!(
        w.events
            .recent(None, 100)
            .iter()
            .any(|e| e.reason == Reason::Deleted && e.object.as_ref().is_some_and(|o| o.kind == Kind::Model))
    );
    w.controller.pass().await;
    assert_eq!(w.runtime.create_count(), creates, "the Pool still backs off");
    assert!(w.running().is_empty());
    let snap = w.controller.subscribe().borrow().clone();
    let chat = snap.objects.iter().find(|o| o.object.name == "chat").unwrap();
    assert!(chat.status.next_restart_in_ms.unwrap() > 5_000, "{:?}", chat.status);
}

#[tokio::test]
async fn a_controller_publishes_into_a_channel_made_before_it() {
    let w = world();
    w.write(&stack(1));
    let (publish, snapshots) = tokio::sync::watch::channel(Arc::new(llorch_manifests::api::Snapshot::default()));
    let mut controller = w.controller.publishing_to(publish);
    assert!(!snapshots.borrow().synced);
    controller.pass().await;
    let snap = snapshots.borrow().clone();
    assert!(snap.synced, "the first full pass is published there");
    assert_eq!(snap.serving("chat").map(|p| p.model.as_str()), Some("tiny"));
}

#[tokio::test]
async fn a_pass_that_changes_nothing_rewrites_no_status_file() {
    use std::os::unix::fs::MetadataExt;
    let mut w = world();
    w.write(&stack(1));
    let dir = w.dir.path().join("state/status");
    // The Model's digest is computed in the background and changes its status once: pass
    // until it is in.
    let mut digested = false;
    for _ in 0..500 {
        w.controller.pass().await;
        let model = std::fs::read_to_string(dir.join("model-tiny.json")).unwrap_or_default();
        if model.contains("sha256:") {
            digested = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(digested, "the Model's digest was never computed");
    w.controller.pass().await;
    // Each write replaces the file (a new inode): an unchanged inode is an unwritten file.
    let inodes = || -> Vec<(String, u64)> {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().ino(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = inodes();
    assert_eq!(before.len(), 3, "{before:?}");
    w.controller.pass().await;
    w.controller.pass().await;
    assert_eq!(inodes(), before, "no status changed, so no file was written");
    w.write(&stack(2));
    w.controller.pass().await;
    let pool = |files: &[(String, u64)]| files.iter().find(|(n, _)| n == "pool-chat.json").unwrap().1;
    assert_ne!(
        pool(&inodes()),
        pool(&before),
        "the Pool's status changed and was written"
    );
}
