//! Eviction through the whole reconcile loop (issue 10, item 3), on the in-memory runtime, a
//! simulated GPU and a scripted demand: three Pools of `minReplicas: 0` whose Models need
//! 7 GiB each on one 12 GiB GPU. A waking Pool evicts the idle resident one (an `Evicted`
//! event that names both and the VRAM), never a busy one (the activation waits and the
//! controller asks to be woken when the busy one goes idle), and lower `priority` goes before
//! the least recently used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::gpu::fake::FakeGpus;
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::runtime::fake::FakeRuntime;
use llorch_controller::scaling::{Demand, DemandSource};
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::api::GpuView;
use llorch_manifests::status::ConditionType;
use llorch_manifests::{Reason, identity};

const GIB: u64 = 1 << 30;

/// Demand as the test says, and the Pools the controller last asked to watch.
#[derive(Default)]
struct Script {
    demand: Mutex<HashMap<String, Demand>>,
    watched: Mutex<Vec<String>>,
}

impl Script {
    fn busy(&self, pool: &str, busy: u32) {
        self.demand.lock().unwrap().insert(
            pool.into(),
            Demand {
                busy,
                last_busy: Some(SystemTime::now()),
                woken: false,
            },
        );
    }
}

impl DemandSource for Script {
    fn demand(&self, pool: &str) -> Demand {
        self.demand.lock().unwrap().get(pool).copied().unwrap_or_default()
    }
    fn wake_when_idle(&self, pools: &[String]) {
        *self.watched.lock().unwrap() = pools.to_vec();
    }
}

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<FakeRuntime>,
    script: Arc<Script>,
    controller: Controller<FakeRuntime>,
    events: Arc<EventLog>,
}

fn world(gpu_gib: u64) -> World {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/m.gguf"), b"weights").unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let gpus = FakeGpus::new(
        vec![GpuView {
            index: 0,
            uuid: "SIM-GPU-0".into(),
            name: "Sim".into(),
            total_bytes: gpu_gib * GIB,
            used_bytes: 0,
            free_bytes: gpu_gib * GIB,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        }],
        true,
    );
    let events = Arc::new(EventLog::open(&dir.path().join("state")).unwrap());
    let script = Arc::new(Script::default());
    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.path().join("manifests")),
        Box::new(gpus),
        StatusFiles::open(&dir.path().join("state")).unwrap(),
        events.clone(),
    )
    .with_demand(script.clone());
    World {
        dir,
        runtime,
        script,
        controller,
        events,
    }
}

/// An Engine, and per `(name, priority)` a 7 GiB Model and a Pool that sleeps when idle.
fn stack(pools: &[(&str, i32)]) -> String {
    let mut text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\nspec: {image: 'img:dev', version: '1'}\n".to_string();
    for (name, priority) in pools {
        text.push_str(&format!(
            "---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}-m}}\nspec: {{ref: 'file:m.gguf', ctxMax: 64, vramBytes: {}}}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\nspec: {{engine: mock, model: {name}-m, priority: {priority}, \
             scaling: {{minReplicas: 0, maxReplicas: 1, idleTimeout: 1h}}}}\n",
            7 * GIB
        ));
    }
    text
}

impl World {
    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("manifests/stack.yaml"), text).unwrap();
    }
    /// The Pools with a running container, sorted.
    fn resident(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .runtime
            .containers()
            .into_iter()
            .filter(|c| c.info.state.is_running())
            .map(|c| c.spec.labels[identity::POOL_KEY].clone())
            .collect();
        out.sort();
        out
    }
    fn evictions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .events
            .recent(None, 200)
            .into_iter()
            .filter(|e| e.reason == Reason::Evicted)
            .map(|e| (e.object.unwrap().name, e.message))
            .collect();
        out.reverse();
        out
    }
}

#[tokio::test]
async fn a_waking_pool_evicts_the_idle_one_and_waits_for_a_busy_one() {
    let mut w = world(12);
    w.write(&stack(&[("a", 0), ("b", 0), ("c", 0)]));
    w.controller.pass().await;
    assert!(w.resident().is_empty(), "all asleep at first");

    w.script.busy("a", 1);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["a"]);

    // a is done; b wakes: a goes, in the same pass b starts.
    w.script.busy("a", 0);
    w.script.busy("b", 1);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["b"], "a evicted for b");
    let evictions = w.evictions();
    assert_eq!(evictions.len(), 1, "{evictions:?}");
    assert_eq!(evictions[0].0, "a");
    assert!(
        evictions[0]
            .1
            .starts_with("evicted (idle 0s, priority 0) to fit pool/b: it needs 7.0 GiB per replica, 5.0 GiB free"),
        "{}",
        evictions[0].1
    );
    let snap = w.controller.subscribe().borrow().clone();
    let a = snap.objects.iter().find(|o| o.object.name == "a").unwrap();
    let ready = a.status.condition(ConditionType::Ready).unwrap();
    assert_eq!(ready.reason, Reason::ScaledToZero);
    assert!(
        ready.message.contains("evicted to make room for pool/b"),
        "{}",
        ready.message
    );

    // c wakes while b still runs a task: b stays, c waits, and the controller asks to hear when
    // b goes idle.
    w.script.busy("c", 1);
    for _ in 0..3 {
        w.controller.pass().await;
    }
    assert_eq!(w.resident(), ["b"], "a busy Pool is never evicted");
    assert_eq!(w.evictions().len(), 1);
    assert_eq!(*w.script.watched.lock().unwrap(), ["b"]);

    // b finishes: c gets the GPU; a (evicted, no new task) stays asleep.
    w.script.busy("b", 0);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["c"]);
    assert_eq!(w.evictions().len(), 2);
    assert!(w.script.watched.lock().unwrap().is_empty(), "nothing waits any more");
    w.controller.pass().await;
    assert_eq!(
        w.resident(),
        ["c"],
        "the evicted Pools stay asleep within their idle timeout"
    );
}

#[tokio::test]
async fn lower_priority_goes_before_the_least_recently_used() {
    let mut w = world(15);
    w.write(&stack(&[("keep", 5), ("cheap", 0), ("new", 0)]));
    w.script.busy("keep", 1);
    w.controller.pass().await;
    w.script.busy("cheap", 1);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["cheap", "keep"], "two fit in 15 GiB");
    w.script.busy("keep", 0);
    w.script.busy("cheap", 0);
    w.script.busy("new", 1);
    w.controller.pass().await;
    assert_eq!(
        w.resident(),
        ["keep", "new"],
        "cheap (priority 0) went although keep was idle longer"
    );
    let evictions = w.evictions();
    assert_eq!(evictions.len(), 1, "one eviction is enough: {evictions:?}");
    assert_eq!(evictions[0].0, "cheap");
}

#[tokio::test]
async fn a_sleeping_pool_whose_model_cannot_be_used_is_not_reported_ready() {
    let mut w = world(12);
    let bad = stack(&[("a", 0)]).replace(
        "ref: 'file:m.gguf'",
        "ref: 'file:m.gguf', digest: 'sha256:0000000000000000000000000000000000000000000000000000000000000000'",
    );
    w.write(&bad);
    for _ in 0..20 {
        w.controller.pass().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = w.controller.subscribe().borrow().clone();
    let a = snap.objects.iter().find(|o| o.object.name == "a").unwrap();
    let ready = a.status.condition(ConditionType::Ready).unwrap();
    assert!(
        !ready.status && ready.reason != Reason::ScaledToZero,
        "asleep, but its Model's digest is wrong: {ready:?}"
    );
}

#[tokio::test]
async fn a_scale_up_that_does_not_fit_is_not_made_and_one_that_fits_is() {
    let mut w = world(12);
    w.write(&stack(&[("a", 0)]).replace("maxReplicas: 1", "maxReplicas: 2"));
    w.script.busy("a", 3);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["a"]);
    // Tasks wait for a slot for longer than SCALE_UP_AFTER, but a second 7 GiB replica does
    // not fit on 12 GiB: no second replica, no refusal, no ScaledUp event.
    tokio::time::sleep(llorch_controller::scaling::SCALE_UP_AFTER + Duration::from_millis(100)).await;
    w.script.busy("a", 3);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["a"]);
    let reasons: Vec<Reason> = w.events.recent(None, 100).into_iter().map(|e| e.reason).collect();
    assert!(!reasons.contains(&Reason::ScaledUp), "{reasons:?}");
    assert!(!reasons.contains(&Reason::PlacementRefused), "{reasons:?}");

    // With room for two, the same wait brings the second replica, with its event.
    let mut w = world(15);
    w.write(&stack(&[("a", 0)]).replace("maxReplicas: 1", "maxReplicas: 2"));
    w.script.busy("a", 3);
    w.controller.pass().await;
    tokio::time::sleep(llorch_controller::scaling::SCALE_UP_AFTER + Duration::from_millis(100)).await;
    w.script.busy("a", 3);
    w.controller.pass().await;
    assert_eq!(w.resident(), ["a", "a"]);
    let up: Vec<String> = w
        .events
        .recent(None, 100)
        .into_iter()
        .filter(|e| e.reason == Reason::ScaledUp)
        .map(|e| e.message)
        .collect();
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].contains("1 → 2 replicas"), "{}", up[0]);
}
