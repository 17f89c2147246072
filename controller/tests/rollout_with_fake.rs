//! Rolling replacement against the in-memory runtime, with real health probes (`support`):
//! replicas really become Ready, images named `sick…` never do, and images named `crash…` exit
//! right after they start.
//!
//! Proves: surge (new next to old), the atomic cut-over, retirement through the gate (only
//! when idle), a scale-down that waits the same way for its surplus replica, rollback on a failing new revision with the old containers untouched and the
//! failed revision not retried, an explicit reload retrying it, and a daemon restart in the
//! middle of a rollout finishing it without duplicating or losing replicas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::models::ModelsSettings;
use llorch_controller::reloads::ReloadCounters;
use llorch_controller::retire::ReplicaGate;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::Reason;
use llorch_manifests::api::Snapshot;
use llorch_manifests::config::ModelsConfig;
use llorch_manifests::identity;
use llorch_manifests::status::{ConditionType, ModelPhase, ReplicaPhase, RolloutMethod, RolloutPhase};

use support::{OneGpu, Served};

mod support;

/// A gate the test opens and closes: "busy" replicas are never idle.
#[derive(Default)]
struct TestGate {
    busy: AtomicBool,
    closed: Mutex<Vec<String>>,
}

impl ReplicaGate for TestGate {
    fn close_if_idle(&self, container_id: &str) -> bool {
        let mut closed = self.closed.lock().unwrap();
        if !closed.iter().any(|c| c == container_id) {
            closed.push(container_id.to_string());
        }
        !self.busy.load(Ordering::SeqCst)
    }
    fn reopen(&self, container_id: &str) {
        self.closed.lock().unwrap().retain(|c| c != container_id);
    }
}

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<Served>,
    controller: Controller<Served>,
    events: Arc<EventLog>,
    gate: Arc<TestGate>,
    reloads: Arc<ReloadCounters>,
}

fn stack(image: &str, env: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: '{image}', version: '1', env: {{V: '{env}'}}, \
         health: {{path: /health, intervalMs: 100, startupTimeoutMs: 3000}}}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:tiny.gguf', ctxMax: 64}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: mock, model: tiny, replicas: 2, gpus: [0], \
         restart: {{backoffInitialMs: 10000, backoffMaxMs: 60000, circuitBreakerFailures: 3}}}}\n"
    )
}

fn controller(
    dir: &std::path::Path,
    runtime: &Arc<Served>,
    gate: &Arc<TestGate>,
    reloads: &Arc<ReloadCounters>,
) -> (Controller<Served>, Arc<EventLog>) {
    let events = Arc::new(EventLog::open(&dir.join("state")).unwrap());
    let c = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.join("manifests")),
        Box::new(OneGpu),
        StatusFiles::open(&dir.join("state")).unwrap(),
        events.clone(),
    )
    .with_gate(gate.clone())
    .with_reloads(reloads.clone());
    (c, events)
}

fn world() -> World {
    // The controller's HTTP client (probes) needs a TLS provider, as in the daemon.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("manifests/tiny.gguf"),
        llorch_gguf::fixture::tiny_model("llama"),
    )
    .unwrap();
    let runtime = Arc::new(Served::new());
    let gate = Arc::new(TestGate::default());
    let reloads = Arc::new(ReloadCounters::in_memory());
    let (controller, events) = controller(dir.path(), &runtime, &gate, &reloads);
    World {
        dir,
        runtime,
        controller,
        events,
        gate,
        reloads,
    }
}

impl World {
    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("manifests/chat.yaml"), text).unwrap();
    }
    fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .runtime
            .fake
            .containers()
            .into_iter()
            .filter(|c| c.info.state.is_running())
            .map(|c| c.info.id)
            .collect();
        ids.sort();
        ids
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::clone(&self.controller.subscribe().borrow())
    }
    fn reasons(&self) -> Vec<Reason> {
        self.events.recent(None, 500).into_iter().map(|e| e.reason).collect()
    }
    /// Runs passes until `done` holds on the snapshot (10 s at most).
    async fn until(&mut self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.controller.pass().await;
            let s = self.snapshot();
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:#?}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

fn ready(s: &Snapshot) -> usize {
    s.replicas.iter().filter(|r| r.phase == ReplicaPhase::Ready).count()
}

fn chat(s: &Snapshot) -> &llorch_manifests::status::ObjectStatus {
    &s.objects.iter().find(|o| o.object.name == "chat").unwrap().status
}

fn hashes(w: &World) -> Vec<String> {
    let mut h: Vec<String> = w
        .runtime
        .fake
        .containers()
        .into_iter()
        .map(|c| c.spec.labels[identity::SPEC_HASH_KEY].clone())
        .collect();
    h.sort();
    h.dedup();
    h
}

async fn two_ready(w: &mut World) -> Vec<String> {
    w.write(&stack("img:dev", "1"));
    w.until("two Ready replicas", |s| ready(s) == 2).await;
    w.running()
}

#[tokio::test]
async fn an_edit_starts_new_replicas_next_to_the_old_ones_and_retires_the_old_after_the_cut_over() {
    let mut w = world();
    let old = two_ready(&mut w).await;
    w.write(&stack("img:dev", "2"));
    w.controller.pass().await;
    // Surge: four containers, the old ones still the Ready ones.
    assert_eq!(w.running().len(), 4, "new containers start alongside the old");
    let s = w.snapshot();
    let serving: Vec<_> = s
        .replicas
        .iter()
        .filter(|r| r.phase == ReplicaPhase::Ready)
        .filter_map(|r| r.container_id.clone())
        .collect();
    assert!(
        serving.iter().all(|id| old.contains(id)),
        "only old replicas serve until the cut-over"
    );
    assert_eq!(chat(&s).rollout.as_ref().unwrap().phase, RolloutPhase::Progressing);
    let s = w
        .until("the rollout to complete", |s| {
            chat(s)
                .rollout
                .as_ref()
                .is_some_and(|r| r.phase == RolloutPhase::Complete)
        })
        .await;
    assert_eq!(ready(&s), 2);
    let now = w.running();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|id| !old.contains(id)), "old containers are gone");
    assert_eq!(hashes(&w).len(), 1, "every container on the new revision");
    assert_eq!(
        w.runtime.fake.create_count(),
        4,
        "two first, two in the rollout: none twice"
    );
    let reasons = w.reasons();
    for r in [
        Reason::RolloutStarted,
        Reason::RolloutDraining,
        Reason::ReplicaRetiring,
        Reason::ReplicaRetired,
        Reason::RolloutComplete,
    ] {
        assert!(reasons.contains(&r), "event {r} missing: {reasons:?}");
    }
}

#[tokio::test]
async fn a_retiring_replica_with_tasks_in_flight_drains_and_goes_only_when_idle() {
    let mut w = world();
    let old = two_ready(&mut w).await;
    w.gate.busy.store(true, Ordering::SeqCst);
    w.write(&stack("img:dev", "2"));
    let s = w
        .until("the old replicas to drain", |s| {
            s.replicas.iter().filter(|r| r.phase == ReplicaPhase::Draining).count() == 2
        })
        .await;
    assert_eq!(ready(&s), 2, "the new replicas serve while the old ones drain");
    for id in &old {
        assert!(w.running().contains(id), "a busy old replica is not removed");
        assert!(w.gate.closed.lock().unwrap().contains(id), "…but closed to new tasks");
    }
    w.gate.busy.store(false, Ordering::SeqCst);
    w.until("the drained replicas to go", |s| {
        chat(s)
            .rollout
            .as_ref()
            .is_some_and(|r| r.phase == RolloutPhase::Complete)
    })
    .await;
    assert!(w.running().iter().all(|id| !old.contains(id)));
}

#[tokio::test]
async fn a_scale_down_closes_the_surplus_replica_and_removes_it_only_once_idle() {
    let mut w = world();
    let before = two_ready(&mut w).await;
    w.gate.busy.store(true, Ordering::SeqCst);
    w.write(&stack("img:dev", "1").replace("replicas: 2", "replicas: 1"));
    for _ in 0..5 {
        w.controller.pass().await;
    }
    assert_eq!(w.running(), before, "a task runs on chat-1: it is not cut");
    assert_eq!(
        w.gate.closed.lock().unwrap().len(),
        1,
        "chat-1 is closed to new tasks while it finishes"
    );
    // Grown back before it finished: it serves again.
    w.write(&stack("img:dev", "1"));
    w.until("both Ready again", |s| ready(s) == 2).await;
    assert!(
        w.gate.closed.lock().unwrap().is_empty(),
        "reopened: it is in the Pool again"
    );
    assert_eq!(w.running(), before);
    w.write(&stack("img:dev", "1").replace("replicas: 2", "replicas: 1"));
    w.controller.pass().await;
    assert_eq!(w.running(), before, "still busy");
    w.gate.busy.store(false, Ordering::SeqCst);
    w.controller.pass().await;
    assert_eq!(w.running().len(), 1, "idle now: removed");
    assert!(w.reasons().contains(&Reason::ReplicaRemoved));
}

#[tokio::test]
async fn a_new_revision_that_exits_is_rolled_back_and_the_old_containers_are_untouched() {
    let mut w = world();
    let old = two_ready(&mut w).await;
    w.write(&stack("crash:dev", "1"));
    let s = w
        .until("a rollback", |s| {
            chat(s)
                .rollout
                .as_ref()
                .is_some_and(|r| r.phase == RolloutPhase::RolledBack)
        })
        .await;
    assert_eq!(w.running(), old, "the same old containers, never restarted");
    assert_eq!(ready(&s), 2);
    let st = chat(&s);
    let rollout = st.rollout.as_ref().unwrap();
    assert!(rollout.message.contains("unknown model architecture"), "{rollout:?}");
    let degraded = st.condition(ConditionType::Degraded).unwrap();
    assert!(degraded.status && degraded.reason == Reason::RolledBack, "{degraded:?}");
    assert!(st.is_ready(), "the old replicas keep the pool Ready");
    assert!(w.reasons().contains(&Reason::RolloutFailed));
    // Not retried in a loop: more passes create nothing.
    let creates = w.runtime.fake.create_count();
    for _ in 0..5 {
        w.controller.pass().await;
    }
    assert_eq!(
        w.runtime.fake.create_count(),
        creates,
        "the failed revision is held back"
    );
    assert_eq!(w.running(), old);
    // An explicit reload tries it again (it fails again, and rolls back again).
    w.reloads.bump("chat").unwrap();
    w.controller.pass().await;
    assert!(w.runtime.fake.create_count() > creates, "an explicit reload retries");
    w.until("a second rollback", |s| {
        chat(s)
            .rollout
            .as_ref()
            .is_some_and(|r| r.phase == RolloutPhase::RolledBack)
    })
    .await;
    assert_eq!(w.running(), old);
}

#[tokio::test]
async fn a_create_that_fails_rolls_back_too() {
    let mut w = world();
    let old = two_ready(&mut w).await;
    w.runtime.fake.fail_create_for("other:dev", "no such device");
    w.write(&stack("other:dev", "1"));
    w.until("a rollback", |s| {
        chat(s)
            .rollout
            .as_ref()
            .is_some_and(|r| r.phase == RolloutPhase::RolledBack)
    })
    .await;
    assert_eq!(w.running(), old);
}

#[tokio::test]
async fn a_replica_without_a_ready_old_container_is_simply_replaced() {
    let mut w = world();
    w.write(&stack("sick:dev", "1"));
    w.controller.pass().await;
    // Let the probes report: the engines answer 503, so they never become Ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.controller.pass().await;
    let sick = w.running();
    assert_eq!(sick.len(), 2);
    w.write(&stack("img:dev", "1"));
    w.controller.pass().await;
    let now = w.running();
    assert_eq!(now.len(), 2, "replaced, not surged");
    assert!(now.iter().all(|id| !sick.contains(id)));
}

#[tokio::test]
async fn a_daemon_restarted_in_the_middle_of_a_rollout_finishes_it_without_duplicates() {
    let mut w = world();
    let old = two_ready(&mut w).await;
    w.write(&stack("img:dev", "2"));
    w.controller.pass().await;
    assert_eq!(w.running().len(), 4, "mid-rollout: old and new side by side");
    // The daemon dies here; a new one starts over the same runtime, state and manifests.
    let (fresh, events) = controller(w.dir.path(), &w.runtime, &w.gate, &w.reloads);
    w.controller = fresh;
    w.events = events;
    let s = w
        .until("the rollout to complete after the restart", |s| {
            chat(s)
                .rollout
                .as_ref()
                .is_some_and(|r| r.phase == RolloutPhase::Complete)
        })
        .await;
    assert_eq!(ready(&s), 2);
    assert_eq!(w.running().len(), 2);
    assert!(w.running().iter().all(|id| !old.contains(id)));
    assert_eq!(w.runtime.fake.create_count(), 4, "the restart duplicated nothing");
}

/// Lets the controller download Models from loopback hosts into the test's cache.
fn allow_downloads(w: &mut World) {
    let (c, events) = controller(w.dir.path(), &w.runtime, &w.gate, &w.reloads);
    let settings = ModelsSettings {
        cache_dir: Some(w.dir.path().join("cache")),
        config: ModelsConfig {
            cache_dir: None,
            downloads: true,
            allow_hosts: vec!["127.0.0.1".into()],
            ..ModelsConfig::default()
        },
        ..ModelsSettings::default()
    };
    w.controller = c.with_models(settings).unwrap();
    w.events = events;
}

/// A loopback model URL whose server takes the connection and never answers: a Model that
/// points at it stays on its way for as long as the listener lives.
fn silent_model_url() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/tiny.gguf", listener.local_addr().unwrap().port());
    (listener, url)
}

#[tokio::test]
async fn a_pool_waiting_for_its_model_download_is_progressing_not_degraded_and_its_replicas_serve_on() {
    let mut w = world();
    allow_downloads(&mut w);
    let old = two_ready(&mut w).await;
    let (_server, url) = silent_model_url();
    w.write(&stack("img:dev", "1").replace("file:tiny.gguf", &url));
    for _ in 0..3 {
        w.controller.pass().await;
    }
    let s = w.snapshot();
    let model = s.objects.iter().find(|o| o.object.name == "tiny").unwrap();
    let phase = model.status.model.as_ref().unwrap().phase;
    assert!(matches!(phase, ModelPhase::Pending | ModelPhase::Fetching), "{phase:?}");
    assert_eq!(w.running(), old, "its containers are left exactly as they are");
    assert_eq!(w.runtime.fake.create_count(), 2);
    let pool = chat(&s);
    let progressing = pool.condition(ConditionType::Progressing).unwrap();
    assert!(
        progressing.status && progressing.reason == Reason::WaitingForModel,
        "{progressing:?}"
    );
    assert!(progressing.message.contains("not ready yet"), "{progressing:?}");
    let degraded = pool.condition(ConditionType::Degraded).unwrap();
    assert!(
        !degraded.status && degraded.reason == Reason::WaitingForModel,
        "{degraded:?}"
    );
    assert!(pool.is_ready(), "the replicas that serve keep the Pool Ready: {pool:?}");
    assert_eq!(ready(&s), 2);

    // A Model that failed is a failure: Degraded/Blocked, the containers still untouched.
    w.write(&stack("img:dev", "1").replace("file:tiny.gguf", "https://elsewhere.example/tiny.gguf"));
    w.controller.pass().await;
    let s = w.snapshot();
    let degraded = chat(&s).condition(ConditionType::Degraded).unwrap();
    assert!(degraded.status && degraded.reason == Reason::Blocked, "{degraded:?}");
    assert_eq!(w.running(), old);
}

#[tokio::test]
async fn a_new_pool_waits_for_its_model_without_starting_anything_or_reporting_a_failure() {
    let mut w = world();
    allow_downloads(&mut w);
    let (_server, url) = silent_model_url();
    w.write(&stack("img:dev", "1").replace("file:tiny.gguf", &url));
    w.controller.pass().await;
    w.controller.pass().await;
    assert_eq!(w.runtime.fake.create_count(), 0);
    let s = w.snapshot();
    let pool = chat(&s);
    let ready = pool.condition(ConditionType::Ready).unwrap();
    assert!(!ready.status && ready.reason == Reason::WaitingForModel, "{ready:?}");
    assert!(pool.condition(ConditionType::Progressing).unwrap().status);
    assert!(!pool.condition(ConditionType::Degraded).unwrap().status);
}

/// One Pool of `replicas` whose Model declares `vram_gib` GiB, with `pool_extra` in its spec.
fn sized_stack(env: &str, replicas: u32, vram_gib: u64, pool_extra: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec: {{image: 'img:dev', version: '1', env: {{V: '{env}'}}, \
         health: {{path: /health, intervalMs: 100, startupTimeoutMs: 3000}}}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:tiny.gguf', ctxMax: 64, vramBytes: {}}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: mock, model: tiny, replicas: {replicas}, gpus: [0]{pool_extra}, \
         restart: {{backoffInitialMs: 10000, backoffMaxMs: 60000, circuitBreakerFailures: 3}}}}\n",
        vram_gib << 30
    )
}

/// Runs passes until the rollout completes, checking after each that no more than `most`
/// containers run; returns the snapshot.
async fn complete_with_at_most(w: &mut World, most: usize) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        w.controller.pass().await;
        let running = w.running().len();
        assert!(running <= most, "{running} containers run at once; at most {most} may");
        let s = w.snapshot();
        if chat(&s)
            .rollout
            .as_ref()
            .is_some_and(|r| r.phase == RolloutPhase::Complete)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "the rollout did not complete: {s:#?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn recreate_stops_each_old_replica_before_its_new_one_starts_one_at_a_time() {
    let mut w = world();
    w.write(&sized_stack("1", 2, 1, ", rollout: {strategy: Recreate}"));
    w.until("two Ready replicas", |s| ready(s) == 2).await;
    let old = w.running();
    w.write(&sized_stack("2", 2, 1, ", rollout: {strategy: Recreate}"));
    w.controller.pass().await;
    let s = w.snapshot();
    let r = chat(&s).rollout.clone().unwrap();
    assert_eq!(
        (r.phase, r.method),
        (RolloutPhase::Progressing, RolloutMethod::Recreate)
    );
    assert!(r.message.contains("Recreate"), "{}", r.message);
    let s = complete_with_at_most(&mut w, 2).await;
    assert_eq!(ready(&s), 2);
    let now = w.running();
    assert!(now.iter().all(|id| !old.contains(id)), "old containers are gone");
    assert_eq!(hashes(&w).len(), 1, "every container on the new revision");
    assert_eq!(w.runtime.fake.create_count(), 4, "each index replaced once");
    let reasons = w.reasons();
    for r in [
        Reason::RolloutStarted,
        Reason::ReplicaRetiring,
        Reason::ReplicaRetired,
        Reason::RolloutComplete,
    ] {
        assert!(reasons.contains(&r), "event {r} missing: {reasons:?}");
    }
}

#[tokio::test]
async fn auto_recreates_when_the_gpu_has_no_room_for_a_second_copy_and_surges_when_it_has() {
    // 40 GiB on a 64 GiB GPU: a second copy does not fit, so the old one stops first.
    let mut w = world();
    w.write(&sized_stack("1", 1, 40, ""));
    w.until("one Ready replica", |s| ready(s) == 1).await;
    w.write(&sized_stack("2", 1, 40, ""));
    let s = complete_with_at_most(&mut w, 1).await;
    assert_eq!(chat(&s).rollout.as_ref().unwrap().method, RolloutMethod::Recreate);
    assert_eq!(ready(&s), 1);
    // A busy old replica keeps its turn: it is closed to new tasks, and stops once idle.
    w.gate.busy.store(true, Ordering::SeqCst);
    w.write(&sized_stack("3", 1, 40, ""));
    let s = w
        .until("the old replica to drain first", |s| {
            s.replicas.iter().any(|r| r.phase == ReplicaPhase::Draining)
        })
        .await;
    assert_eq!(ready(&s), 0, "no second copy starts while the old one drains");
    assert!(
        s.serving.iter().any(|p| p.pool == "chat" && p.recreating),
        "tasks queue meanwhile"
    );
    w.gate.busy.store(false, Ordering::SeqCst);
    complete_with_at_most(&mut w, 1).await;

    // 20 GiB: two copies fit, so it surges (and can roll back).
    let mut w = world();
    w.write(&sized_stack("1", 1, 20, ""));
    w.until("one Ready replica", |s| ready(s) == 1).await;
    w.write(&sized_stack("2", 1, 20, ""));
    w.controller.pass().await;
    assert_eq!(w.running().len(), 2, "the new replica starts next to the old one");
    let s = complete_with_at_most(&mut w, 2).await;
    assert_eq!(chat(&s).rollout.as_ref().unwrap().method, RolloutMethod::Surge);
}
