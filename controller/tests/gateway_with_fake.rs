//! A daemon with `gpus: none` (a gateway in front of engines that run elsewhere), through the
//! whole loop with real health probes (`support`): an `external` Pool becomes Ready against a
//! real HTTP health endpoint while a container Pool is blocked with the reason and nothing is
//! created; a Model that only Pools running elsewhere use is never fetched (its server sees no
//! request) and its status says why, in every GPU mode, while a Model no Pool uses still is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llorch_controller::controller::{Controller, Settings};
use llorch_controller::gpu::{self, GpuInventory};
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::models::{ModelsSettings, PullError};
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_manifests::api::{GpuSource, ObjectView, Snapshot};
use llorch_manifests::config::{GpuConfig, ModelsConfig};
use llorch_manifests::status::{ConditionType, ModelPhase, ReplicaPhase};
use llorch_manifests::{Blocked, Provisioning, Reason, ServingPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{OneGpu, Served, health_server};

mod support;

struct World {
    dir: tempfile::TempDir,
    runtime: Arc<Served>,
    controller: Controller<Served>,
    events: Arc<EventLog>,
}

/// A controller over `gpus`, allowed to download from loopback into the test's cache.
fn world(gpus: Box<dyn GpuInventory>) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("manifests/tiny.gguf"),
        llorch_gguf::fixture::tiny_model("llama"),
    )
    .unwrap();
    let runtime = Arc::new(Served::new());
    let events = Arc::new(EventLog::open(&dir.path().join("state")).unwrap());
    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: "t".into(),
            resync: Duration::from_secs(5),
        },
        ManifestStore::new(dir.path().join("manifests")),
        gpus,
        StatusFiles::open(&dir.path().join("state")).unwrap(),
        events.clone(),
    )
    .with_models(ModelsSettings {
        cache_dir: Some(dir.path().join("cache")),
        config: ModelsConfig {
            downloads: true,
            allow_hosts: vec!["127.0.0.1".into()],
            ..ModelsConfig::default()
        },
        ..ModelsSettings::default()
    })
    .unwrap();
    World {
        dir,
        runtime,
        controller,
        events,
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

fn object<'a>(s: &'a Snapshot, name: &str) -> &'a ObjectView {
    s.objects.iter().find(|o| o.object.name == name).unwrap()
}

fn serving<'a>(s: &'a Snapshot, pool: &str) -> &'a ServingPool {
    s.serving(pool).unwrap()
}

/// A loopback model server that counts the connections it gets and answers each with 404.
async fn counting_model_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/weights.gguf",
        listener.local_addr().unwrap().port()
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                let reply = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

fn external_engine(port: u16) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: remote}}\n\
         spec: {{provisioning: external, url: 'http://127.0.0.1:{port}', version: 'remote-1', \
         health: {{path: /health, intervalMs: 100}}}}\n"
    )
}

const CONTAINER_ENGINE: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: local}\n\
     spec: {image: 'img:dev', version: 'b7', health: {path: /health, intervalMs: 100, startupTimeoutMs: 3000}}\n";

fn model(name: &str, reference: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}}}\n\
         spec: {{ref: '{reference}', ctxMax: 64}}\n"
    )
}

fn pool(name: &str, engine: &str, model: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\n\
         spec: {{engine: {engine}, model: {model}, replicas: 1}}\n"
    )
}

#[tokio::test]
async fn under_gpus_none_an_external_pool_becomes_ready_and_a_container_pool_is_blocked_with_nothing_created() {
    let mut w = world(gpu::open(&GpuConfig::None).unwrap());
    let port = health_server(false).await;
    let (url, hits) = counting_model_server().await;
    w.write("remote.yaml", &external_engine(port));
    w.write("local.yaml", CONTAINER_ENGINE);
    w.write("weights.yaml", &model("weights", &url));
    w.write("tiny.yaml", &model("tiny", "file:tiny.gguf"));
    w.write("edge.yaml", &pool("edge", "remote", "weights"));
    w.write("chat.yaml", &pool("chat", "local", "tiny"));
    let s = w
        .until("the external replica Ready", |s| serving(s, "edge").replicas.len() == 1)
        .await;
    // The inventory: none, by configuration, and not simulated.
    assert_eq!(s.gpu_source, GpuSource::None);
    assert!(s.gpus.is_empty() && !s.gpus_simulated);
    // The external Pool serves its URL.
    let edge = serving(&s, "edge");
    assert_eq!(edge.blocked, None);
    assert_eq!(edge.contract.as_ref().unwrap().engine_version, "remote-1");
    let row = s.replicas.iter().find(|r| r.pool == "edge").unwrap();
    assert_eq!(row.phase, ReplicaPhase::Ready);
    assert_eq!(row.container_id, None);
    let ready = object(&s, "edge").status.condition(ConditionType::Ready).unwrap();
    assert!(ready.status && ready.reason == Reason::ExternalReady, "{ready:?}");
    // The container Pool is blocked with the typed reason, and says what to do.
    let chat = serving(&s, "chat");
    assert_eq!(
        chat.blocked,
        Some(Blocked::NoGpus {
            engine: "local".into(),
            provisioning: Provisioning::Container
        })
    );
    assert_eq!(chat.contract, None);
    assert!(
        chat.usable()
            .unwrap_err()
            .to_string()
            .starts_with("pool `chat` cannot serve: this daemon has no GPUs (config `gpus: none`)"),
        "{:?}",
        chat.usable().unwrap_err().to_string()
    );
    let degraded = object(&s, "chat").status.condition(ConditionType::Degraded).unwrap();
    assert!(degraded.status && degraded.reason == Reason::Blocked, "{degraded:?}");
    assert!(
        degraded.message.contains("point an `external` Engine here at it"),
        "{}",
        degraded.message
    );
    assert!(
        !s.replicas.iter().any(|r| r.pool == "chat"),
        "no replica row: {:?}",
        s.replicas
    );
    // Its Engine is not checked or provisioned here, and says why.
    let local = object(&s, "local").status.condition(ConditionType::Degraded).unwrap();
    assert!(
        local.status && local.reason == Reason::ProvisioningUnsupported,
        "{local:?}"
    );
    assert!(
        local
            .message
            .starts_with("cannot run on this daemon: config `gpus: none`"),
        "{}",
        local.message
    );
    // More passes change nothing: no container, no placement, and no Model fetched — neither
    // the external Pool's nor the blocked Pool's (nothing here would read them).
    for _ in 0..5 {
        w.controller.pass().await;
    }
    assert_eq!(w.runtime.fake.create_count(), 0, "no container is ever created");
    let vram = object(&w.snapshot(), "chat").status.vram.clone();
    assert!(
        vram.as_ref().is_none_or(|v| v.decisions.is_empty()),
        "no placement decided: {vram:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the external Pool's Model is never downloaded"
    );
    let s = w.snapshot();
    for name in ["weights", "tiny"] {
        let m = &object(&s, name).status;
        assert_eq!(m.model.as_ref().unwrap().phase, ModelPhase::NotFetched, "{name}");
        assert_eq!(m.model.as_ref().unwrap().digest, None, "{name}: nothing verified");
        let ready = m.condition(ConditionType::Ready).unwrap();
        assert!(
            !ready.status && ready.reason == Reason::NotFetchedHere,
            "{name}: {ready:?}"
        );
        assert!(
            !m.condition(ConditionType::Degraded).unwrap().status,
            "{name}: not failed"
        );
        assert!(ready.message.contains("no GPUs (`gpus: none`)"), "{}", ready.message);
    }
}

#[tokio::test]
async fn with_gpus_a_model_only_external_pools_use_is_not_fetched_but_an_unused_one_still_is() {
    let mut w = world(Box::new(OneGpu));
    let port = health_server(false).await;
    let (url, hits) = counting_model_server().await;
    let (spare_url, spare_hits) = counting_model_server().await;
    w.write("remote.yaml", &external_engine(port));
    w.write("weights.yaml", &model("weights", &url));
    w.write("spare.yaml", &model("spare", &spare_url));
    w.write("edge.yaml", &pool("edge", "remote", "weights"));
    // A Model no Pool uses is fetched as before (what `orchctl models pull` relies on): the
    // control that shows a fetch would reach the server.
    w.until("the unused Model fetched (and refused by its server)", |s| {
        object(s, "spare")
            .status
            .model
            .as_ref()
            .is_some_and(|m| m.phase == ModelPhase::Failed)
    })
    .await;
    assert!(spare_hits.load(Ordering::SeqCst) >= 1);
    let s = w
        .until("the external replica Ready", |s| serving(s, "edge").replicas.len() == 1)
        .await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no download attempted: {:#?}",
        w.events.recent(None, 200)
    );
    let weights = &object(&s, "weights").status;
    assert_eq!(weights.model.as_ref().unwrap().phase, ModelPhase::NotFetched);
    let ready = weights.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        ready.message,
        "not fetched or verified here: used only by pool/edge; they run on `external` Engines, which load their \
         own weights"
    );
    assert!(!weights.condition(ConditionType::Progressing).unwrap().status);
    let noted: Vec<_> = w
        .events
        .recent(None, 200)
        .into_iter()
        .filter(|e| e.reason == Reason::NotFetchedHere)
        .collect();
    assert_eq!(noted.len(), 1, "said once, not every pass: {noted:?}");
    // A pull is refused with the same reason rather than left waiting.
    match w.controller.models_handle().pull("weights") {
        Err(PullError::Policy(why)) => assert!(why.contains("used only by pool/edge"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Once a Pool that runs here uses it too, it is fetched as before.
    w.write("local.yaml", CONTAINER_ENGINE);
    w.write("chat.yaml", &pool("chat", "local", "weights"));
    w.until("the Model fetched for the local Pool", |s| {
        object(s, "weights")
            .status
            .model
            .as_ref()
            .is_some_and(|m| m.phase != ModelPhase::NotFetched)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the download never started");
        w.controller.pass().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}
