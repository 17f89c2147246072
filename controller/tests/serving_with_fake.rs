//! The serving view the snapshot publishes, through the whole loop with real health probes
//! (`support`): a Pool's resolved contract and its Ready replicas; a Pool blocked after it
//! served keeps both (its containers are left running); an external Pool serves its URL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ConditionType;
use llorch_manifests::{ApiFlavour, Blocked, Endpoint, ReplicaId, ServingPool};

use support::{OneGpu, Served, health_server};

mod support;

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<Served>,
    controller: Controller<Served>,
}

const ENGINE: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\n\
     spec: {image: 'img:dev', version: 'b7', health: {path: /health, intervalMs: 100, startupTimeoutMs: 3000}}\n";

const MODEL_AND_POOL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: tiny}\n\
     spec: {ref: 'file:tiny.gguf', ctxMax: 64}\n---\n\
     apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
     spec: {engine: mock, model: tiny, replicas: 1, gpus: [0], ctxSize: 32, slotsPerReplica: 2}\n";

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
    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.path().join("manifests")),
        Box::new(OneGpu),
        StatusFiles::open(&dir.path().join("state")).unwrap(),
        Arc::new(EventLog::open(&dir.path().join("state")).unwrap()),
    );
    World {
        dir,
        runtime,
        controller,
    }
}

impl World {
    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join("manifests").join(file), text).unwrap();
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::clone(&self.controller.subscribe().borrow())
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

fn chat(s: &Snapshot) -> &ServingPool {
    s.serving("chat").expect("chat is served")
}

#[tokio::test]
async fn a_pool_serves_its_resolved_contract_on_its_ready_replicas() {
    let mut w = world();
    w.write("engine.yaml", ENGINE);
    w.write("chat.yaml", MODEL_AND_POOL);
    let s = w.until("a Ready replica", |s| chat(s).replicas.len() == 1).await;
    let view = chat(&s);
    assert_eq!((view.model.as_str(), view.engine.as_str()), ("tiny", "mock"));
    assert_eq!(view.slots_per_replica, 2);
    assert_eq!(view.blocked, None);
    let contract = view.contract.as_ref().unwrap();
    assert_eq!(contract.engine_version, "b7");
    assert_eq!(contract.api, ApiFlavour::Llamacpp);
    assert_eq!(contract.ctx_size, 32, "the Pool's ctxSize, not the Model's ctxMax");
    assert!(
        contract.model_file.as_deref().unwrap().ends_with("tiny.gguf"),
        "{contract:?}"
    );
    let replica = &view.replicas[0];
    assert_eq!(replica.id, ReplicaId::new("chat", 0));
    let row = s.replicas.iter().find(|r| r.id == replica.id).unwrap();
    assert_eq!(Some(&replica.endpoint), row.endpoint.as_ref());
    assert_eq!(replica.container_id, row.container_id);
    assert_eq!(replica.gpus, [0]);
    assert_eq!(replica.free_vram_bytes, s.gpus[0].free_bytes, "the published GPU view");
}

#[tokio::test]
async fn an_engine_deleted_after_the_pool_served_blocks_it_with_its_old_contract_and_ready_replicas() {
    let mut w = world();
    w.write("engine.yaml", ENGINE);
    w.write("chat.yaml", MODEL_AND_POOL);
    let before = w.until("a Ready replica", |s| chat(s).replicas.len() == 1).await;
    let served = chat(&before).clone();
    std::fs::remove_file(w.dir.path().join("manifests/engine.yaml")).unwrap();
    w.controller.pass().await;
    let s = w.snapshot();
    let view = chat(&s);
    assert_eq!(view.blocked, Some(Blocked::EngineMissing { engine: "mock".into() }));
    assert_eq!(view.contract, served.contract, "the contract its containers run with");
    assert_eq!(view.replicas.len(), 1, "its Ready replica still serves");
    assert_eq!(view.replicas[0].endpoint, served.replicas[0].endpoint);
    assert!(view.usable().is_ok());
    let pool = &s.objects.iter().find(|o| o.object.name == "chat").unwrap().status;
    let degraded = pool.condition(ConditionType::Degraded).unwrap();
    assert_eq!(degraded.message, "not reconciling: Engine `mock` does not exist");
    assert_eq!(w.runtime.fake.create_count(), 1, "nothing started or replaced");
}

#[tokio::test]
async fn a_pool_that_never_resolved_has_no_contract() {
    let mut w = world();
    w.write("chat.yaml", MODEL_AND_POOL);
    w.controller.pass().await;
    let s = w.snapshot();
    let view = chat(&s);
    assert_eq!(view.contract, None);
    assert_eq!(
        view.usable().unwrap_err().to_string(),
        "pool `chat` cannot serve: Engine `mock` does not exist"
    );
}

#[tokio::test]
async fn an_external_pool_serves_the_engines_url_with_no_container() {
    let mut w = world();
    let port = health_server(false).await;
    w.write(
        "engine.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\n\
             spec: {{provisioning: external, url: 'http://127.0.0.1:{port}/', version: 'remote-1', api: openai, \
             health: {{path: /health, intervalMs: 100}}}}\n"
        ),
    );
    w.write("chat.yaml", &MODEL_AND_POOL.replace(", gpus: [0]", ""));
    let s = w.until("the external replica", |s| chat(s).replicas.len() == 1).await;
    let view = chat(&s);
    let contract = view.contract.as_ref().unwrap();
    assert_eq!(
        (contract.engine_version.as_str(), contract.api, contract.ctx_size),
        ("remote-1", ApiFlavour::Openai, 32)
    );
    assert_eq!(contract.model_file, None);
    let replica = &view.replicas[0];
    assert_eq!(
        replica.endpoint,
        Endpoint::external(&format!("http://127.0.0.1:{port}"))
    );
    assert_eq!(replica.container_id, None);
    assert_eq!(w.runtime.fake.create_count(), 0);
}
