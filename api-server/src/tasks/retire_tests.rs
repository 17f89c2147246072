//! The data plane against retirements, with two real mock engines: a task never starts on a
//! container the controller closed — it goes to another replica, or waits for the snapshot that
//! shows the replacement — and it is never failed for it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use llorch_manifests::api::{ObjectView, Snapshot};
use llorch_manifests::status::{ObjectStatus, ReplicaPhase, ReplicaStatus};
use llorch_manifests::task::TaskRequest;
use llorch_manifests::{Endpoint, Kind, ObjectRef, ReplicaId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::DataPlane;
use super::task::TaskEvent;
use crate::engine::EngineClients;

/// A mock engine on a loopback port; stops when dropped.
struct Engine {
    base: String,
    stop: CancellationToken,
    _model: tempfile::NamedTempFile,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn engine() -> Engine {
    let model = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    std::fs::write(model.path(), mock_engine::model_file::fixture_model()).unwrap();
    let config = mock_engine::Config::for_model(model.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(mock_engine::run(config, listener, stop.clone()));
    let http = reqwest::Client::new();
    for _ in 0..500 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Engine {
                base,
                stop,
                _model: model,
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("mock engine at {base} never became healthy");
}

fn object(kind: Kind, manifest: serde_json::Value) -> ObjectView {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    let object = ObjectRef::new(kind, name);
    ObjectView {
        object: object.clone(),
        source: None,
        manifest: Some(manifest),
        status: ObjectStatus::new(object),
    }
}

fn replica(index: u32, container: &str, endpoint: &str) -> ReplicaStatus {
    ReplicaStatus {
        id: ReplicaId::new("chat", index),
        pool: "chat".into(),
        index,
        phase: ReplicaPhase::Ready,
        container_id: Some(container.into()),
        container_name: Some(container.into()),
        endpoint: Some(Endpoint::external(endpoint)),
        gpus: vec![0],
        gpus_simulated: true,
        engine_version: "1".into(),
        spec_hash: "h".into(),
        restarts: 0,
        ready_since: None,
        kv_cache_usage_ratio: None,
    }
}

fn snapshot(replicas: Vec<ReplicaStatus>) -> Arc<Snapshot> {
    let v = "llama-orch.dev/v1alpha1";
    let mut snapshot = Snapshot {
        synced: true,
        objects: vec![
            object(
                Kind::Engine,
                serde_json::json!({"apiVersion": v, "kind": "Engine", "metadata": {"name": "mock"},
                    "spec": {"image": "img:1", "version": "1"}}),
            ),
            object(
                Kind::Model,
                serde_json::json!({"apiVersion": v, "kind": "Model", "metadata": {"name": "tiny"},
                    "spec": {"ref": "file:/m/tiny.gguf", "ctxMax": 4096}}),
            ),
            object(
                Kind::Pool,
                serde_json::json!({"apiVersion": v, "kind": "Pool", "metadata": {"name": "chat"},
                    "spec": {"engine": "mock", "model": "tiny", "replicas": 2, "slotsPerReplica": 1}}),
            ),
        ],
        replicas,
        ..Snapshot::default()
    };
    snapshot.serving = llorch_manifests::serving::from_objects(&snapshot);
    Arc::new(snapshot)
}

/// Submits a task and reads its events to the end; returns (replica, last event).
async fn run_one(dp: &Arc<DataPlane>) -> (String, TaskEvent) {
    let req = TaskRequest {
        pool: Some("chat".into()),
        prompt: Some("hello".into()),
        max_tokens: 4,
        ..TaskRequest::default()
    };
    let admitted = dp.submit(req).await.unwrap();
    let task = dp.task(&admitted.task_id).unwrap();
    let mut events = task.take_events().unwrap();
    let last = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(e @ (TaskEvent::End(_) | TaskEvent::Error(_))) => return e,
                Some(_) => {}
                None => panic!("the stream ended without end or error"),
            }
        }
    })
    .await
    .expect("the task finished");
    (task.replica().map(|r| r.to_string()).unwrap_or_default(), last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_container_gets_no_task_and_its_tasks_go_to_the_other_replica() {
    let (a, b) = (engine().await, engine().await);
    let (publish, rx) = watch::channel(snapshot(vec![replica(0, "c0", &a.base), replica(1, "c1", &b.base)]));
    let dp = DataPlane::new(rx, EngineClients::new());
    assert!(dp.close_if_idle("c0"), "nothing runs on c0 yet");
    for _ in 0..4 {
        let (replica, last) = run_one(&dp).await;
        assert!(matches!(last, TaskEvent::End(_)), "{last:?}");
        assert_eq!(replica, "chat-1", "never on the closed container");
    }
    // Both closed: the task waits (it is not failed) until the replacement shows up. The last
    // task's slot on c1 is released just after its `end` reaches the client, so c1 may report
    // busy for a moment; the controller asks again on its next pass, and so does this test.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !dp.close_if_idle("c1") {
        assert!(tokio::time::Instant::now() < deadline, "c1 never became idle");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiting = tokio::spawn({
        let dp = dp.clone();
        async move { run_one(&dp).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no open replica: the task waits");
    publish.send_replace(snapshot(vec![replica(0, "c0-new", &a.base), replica(1, "c1", &b.base)]));
    let (replica, last) = waiting.await.unwrap();
    assert!(matches!(last, TaskEvent::End(_)), "{last:?}");
    assert_eq!(replica, "chat-0", "placed on the new container of chat-0");
    drop(publish);
}
