//! The API on a real socket (port 0) with a hand-built snapshot and fake event and log sources.
// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use llorch_api::{AppState, BoxFuture, EventSource, LogSource, LogsError};
use llorch_manifests::api::{EventList, GpuList, GpuView, LogTail, ObjectView, Snapshot, SourceRef};
use llorch_manifests::status::{
    Condition, ConditionType, Event, EventType, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus,
};
use llorch_manifests::task::TaskError as ApiErrorBody;
use llorch_manifests::{Endpoint, Kind, ManifestError, ObjectRef, Reason, ReplicaId};
use tokio::sync::watch;

struct FakeEvents(Vec<Event>);

impl EventSource for FakeEvents {
    fn recent(&self, object: Option<&ObjectRef>, limit: usize) -> Vec<Event> {
        let matching: Vec<Event> = self
            .0
            .iter()
            .filter(|e| object.is_none() || e.object.as_ref() == object)
            .cloned()
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).collect()
    }
}

#[derive(Default)]
struct FakeLogs {
    calls: Mutex<Vec<(String, usize)>>,
}

impl LogSource for FakeLogs {
    fn tail(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((replica_id.to_string(), lines));
        }
        let id = replica_id.to_string();
        Box::pin(async move {
            if id == "chat-1" {
                Err(LogsError::Runtime("container of replica chat-1 is gone".into()))
            } else {
                Ok((0..lines.min(3)).map(|i| format!("{id} line {i}")).collect())
            }
        })
    }
}

fn condition(type_: ConditionType, status: bool, reason: Reason) -> Condition {
    Condition {
        type_,
        status,
        reason,
        message: format!("{reason} message"),
        last_transition_time: "2026-01-01T00:00:00Z".into(),
    }
}

fn view(kind: Kind, name: &str) -> ObjectView {
    let object = ObjectRef::new(kind, name);
    ObjectView {
        object: object.clone(),
        source: Some(SourceRef {
            file: format!("/m/{}-{name}.yaml", kind.lower()),
            document: 0,
        }),
        manifest: Some(serde_json::json!({ "kind": kind.as_str(), "metadata": { "name": name } })),
        status: ObjectStatus::new(object),
    }
}

fn replica(pool: &str, index: u32, phase: ReplicaPhase) -> ReplicaStatus {
    ReplicaStatus {
        id: ReplicaId::new(pool, index),
        pool: pool.into(),
        index,
        phase,
        container_id: Some("0123456789abcdef0123".into()),
        container_name: Some(format!("llorch-{pool}-{index}")),
        endpoint: Some(Endpoint::loopback(41000 + index as u16)),
        gpus: vec![index],
        gpus_simulated: true,
        engine_version: "0.1.0".into(),
        spec_hash: "abc123abc123".into(),
        restarts: u64::from(index),
        ready_since: None,
        kv_cache_usage_ratio: None,
    }
}

fn snapshot() -> Snapshot {
    let mut chat = view(Kind::Pool, "chat");
    chat.status.conditions = vec![
        condition(ConditionType::Ready, true, Reason::ReplicasReady),
        condition(ConditionType::Progressing, false, Reason::ReplicasReady),
        condition(ConditionType::Degraded, false, Reason::ReplicasReady),
    ];
    chat.status.replicas = Some(ReplicaCounts { desired: 2, ready: 1 });
    chat.status.restarts = 3;
    let mut broken = view(Kind::Pool, "broken");
    broken.status.manifest_errors = vec![ManifestError::file(
        "/m/pool-broken.yaml",
        "Engine `x` does not exist",
        "",
    )];
    let gpu = |index: u32, name: &str| GpuView {
        index,
        uuid: format!("SIM-GPU-{index}"),
        name: name.into(),
        total_bytes: 24 << 30,
        used_bytes: 1 << 30,
        free_bytes: 23 << 30,
        utilization_pct: Some(50),
        simulated: true,
        processes: Vec::new(),
        process_listing: Default::default(),
        errors: Vec::new(),
    };
    Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![view(Kind::Engine, "mock"), view(Kind::Model, "tiny"), broken, chat],
        replicas: vec![
            replica("chat", 0, ReplicaPhase::Ready),
            replica("chat", 1, ReplicaPhase::BackingOff),
        ],
        gpus: vec![gpu(0, "Simulated RTX 3090"), gpu(1, "Sim \"quoted\" \\ card")],
        gpus_simulated: true,
        gpu_source: llorch_manifests::api::GpuSource::Simulated,
        file_errors: vec![ManifestError::file("/m/bad.yaml", "YAML syntax error", "fix it")],
        runtime: Default::default(),
        serving: Vec::new(),
    }
}

fn event(object: Option<ObjectRef>, reason: Reason) -> Event {
    Event {
        ts: "2026-01-01T00:00:00Z".into(),
        object,
        replica: None,
        type_: EventType::Normal,
        reason,
        message: format!("{reason} happened"),
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    publish: watch::Sender<Arc<Snapshot>>,
    logs: Arc<FakeLogs>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn start(snapshot: Snapshot) -> Server {
        let (publish, rx) = watch::channel(Arc::new(snapshot));
        let logs = Arc::new(FakeLogs::default());
        let events = FakeEvents(vec![
            event(None, Reason::ControllerStarted),
            event(Some(ObjectRef::new(Kind::Pool, "chat")), Reason::ReplicaCreated),
            event(Some(ObjectRef::new(Kind::Model, "tiny")), Reason::ModelReady),
            event(Some(ObjectRef::new(Kind::Pool, "chat")), Reason::Ready),
            event(Some(ObjectRef::new(Kind::Pool, "other")), Reason::ReplicaCreated),
        ]);
        let state = AppState::new(rx, Arc::new(events), logs.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(llorch_api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            client: reqwest::Client::new(),
            publish,
            logs,
            _stop: stop,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    async fn error(&self, path: &str, status: u16) -> ApiErrorBody {
        let response = self.get(path).await;
        assert_eq!(response.status().as_u16(), status, "status of {path}");
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn healthz_answers_ok_even_before_the_first_scan() {
    let server = Server::start(Snapshot::default()).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_with_a_reason_until_the_controller_has_synced() {
    let server = Server::start(Snapshot::default()).await;
    let body = server.error("/readyz", 503).await;
    assert_eq!(body.code, "NOT_READY");
    assert!(body.message.contains("scanning"), "{}", body.message);

    server.publish.send_replace(Arc::new(snapshot()));
    assert_eq!(server.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn pools_list_only_pools_and_one_pool_is_its_object_view() {
    let server = Server::start(snapshot()).await;
    let pools: Vec<ObjectView> = server.get("/v2/pools").await.json().await.unwrap();
    let names: Vec<&str> = pools.iter().map(|p| p.object.name.as_str()).collect();
    assert_eq!(names, ["broken", "chat"]);

    let chat: ObjectView = server.get("/v2/pools/chat").await.json().await.unwrap();
    assert_eq!(chat.status.replicas, Some(ReplicaCounts { desired: 2, ready: 1 }));
    assert!(chat.status.is_ready());

    let models: Vec<ObjectView> = server.get("/v2/models").await.json().await.unwrap();
    assert_eq!(models.len(), 1);
    let engine: ObjectView = server.get("/v2/engines/mock").await.json().await.unwrap();
    assert_eq!(engine.object, ObjectRef::new(Kind::Engine, "mock"));
}

#[tokio::test]
async fn an_unknown_pool_is_a_404_naming_it_and_the_command_that_lists_pools() {
    let server = Server::start(snapshot()).await;
    let body = server.error("/v2/pools/nope", 404).await;
    assert_eq!(body.code, "NOT_FOUND");
    assert!(body.message.contains("pool `nope` not found"), "{}", body.message);
    assert!(body.message.contains("orchctl get pools"), "{}", body.message);

    let body = server.error("/v2/models/chat", 404).await;
    assert!(body.message.contains("orchctl get models"), "{}", body.message);
}

#[tokio::test]
async fn a_lookup_that_misses_before_the_first_scan_is_503_not_404() {
    let server = Server::start(Snapshot::default()).await;
    assert_eq!(server.error("/v2/pools/chat", 503).await.code, "NOT_READY");
    assert_eq!(server.error("/v2/replicas/chat-0/logs", 503).await.code, "NOT_READY");
}

#[tokio::test]
async fn replicas_can_be_filtered_by_pool_and_an_unknown_pool_is_a_404() {
    let server = Server::start(snapshot()).await;
    let all: Vec<ReplicaStatus> = server.get("/v2/replicas").await.json().await.unwrap();
    assert_eq!(all.len(), 2);
    let chat: Vec<ReplicaStatus> = server.get("/v2/replicas?pool=chat").await.json().await.unwrap();
    assert_eq!(
        chat.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["chat-0", "chat-1"]
    );
    let broken: Vec<ReplicaStatus> = server.get("/v2/replicas?pool=broken").await.json().await.unwrap();
    assert!(broken.is_empty(), "a declared pool without replicas is an empty list");
    assert_eq!(server.error("/v2/replicas?pool=nope", 404).await.code, "NOT_FOUND");
}

#[tokio::test]
async fn gpus_say_that_the_inventory_is_simulated() {
    let server = Server::start(snapshot()).await;
    let gpus: GpuList = server.get("/v2/gpus").await.json().await.unwrap();
    assert!(gpus.simulated);
    assert_eq!(gpus.gpus.len(), 2);
    assert!(gpus.gpus.iter().all(|g| g.simulated));
}

#[tokio::test]
async fn the_snapshot_route_returns_the_whole_snapshot() {
    let server = Server::start(snapshot()).await;
    let got: Snapshot = server.get("/v2/snapshot").await.json().await.unwrap();
    assert_eq!(got, snapshot());
}

#[tokio::test]
async fn events_filter_by_object_or_kind_and_honour_the_limit() {
    let server = Server::start(snapshot()).await;
    let all: EventList = server.get("/v2/events").await.json().await.unwrap();
    assert_eq!(all.events.len(), 5);

    let chat: EventList = server.get("/v2/events?kind=pool&name=chat").await.json().await.unwrap();
    let reasons: Vec<&str> = chat.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["ReplicaCreated", "Ready"]);

    let pools: EventList = server.get("/v2/events?kind=pools&limit=2").await.json().await.unwrap();
    let reasons: Vec<&str> = pools.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Ready", "ReplicaCreated"], "the two most recent pool events");
    assert!(
        pools
            .events
            .iter()
            .all(|e| e.object.as_ref().is_some_and(|o| o.kind == Kind::Pool))
    );

    let last: EventList = server.get("/v2/events?limit=1").await.json().await.unwrap();
    assert_eq!(last.events.len(), 1);
    assert_eq!(last.events[0].object, Some(ObjectRef::new(Kind::Pool, "other")));
}

#[tokio::test]
async fn bad_event_queries_are_json_400s_that_name_the_parameter() {
    let server = Server::start(snapshot()).await;
    let body = server.error("/v2/events?limit=0", 400).await;
    assert_eq!(body.code, "INVALID_PARAMS");
    assert!(body.message.contains("`limit` is 0"), "{}", body.message);
    let body = server.error("/v2/events?limit=abc", 400).await;
    assert!(body.message.contains("limit"), "{}", body.message);
    let body = server.error("/v2/events?kind=widget", 400).await;
    assert!(body.message.contains("widget"), "{}", body.message);
    let body = server.error("/v2/events?name=chat", 400).await;
    assert!(body.message.contains("`kind` is missing"), "{}", body.message);
}

#[tokio::test]
async fn logs_come_from_the_log_source_with_the_requested_tail() {
    let server = Server::start(snapshot()).await;
    let tail: LogTail = server
        .get("/v2/replicas/chat-0/logs?tail=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tail.replica, "chat-0");
    assert_eq!(tail.lines, ["chat-0 line 0", "chat-0 line 1"]);
    let _ = server.get("/v2/replicas/chat-0/logs").await;
    let calls = server.logs.calls.lock().unwrap().clone();
    assert_eq!(calls, [("chat-0".to_string(), 2), ("chat-0".to_string(), 100)]);
}

#[tokio::test]
async fn logs_of_an_unknown_replica_are_a_404_and_a_failing_source_a_502() {
    let server = Server::start(snapshot()).await;
    let body = server.error("/v2/replicas/chat-9/logs", 404).await;
    assert!(body.message.contains("replica `chat-9` not found"), "{}", body.message);
    assert!(server.logs.calls.lock().unwrap().is_empty(), "the source is not asked");

    let body = server.error("/v2/replicas/chat-1/logs", 502).await;
    assert_eq!(body.code, "LOGS_UNAVAILABLE");
    assert!(body.message.contains("is gone"), "{}", body.message);
    assert_eq!(
        server.error("/v2/replicas/chat-0/logs?tail=0", 400).await.code,
        "INVALID_PARAMS"
    );
}

#[tokio::test]
async fn metrics_render_the_snapshot_with_simulated_gpus_labelled_and_labels_escaped() {
    let server = Server::start(snapshot()).await;
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    for line in [
        "llorch_gpu_inventory_simulated 1",
        "llorch_snapshot_synced 1",
        r#"llorch_gpu_info{index="0",uuid="SIM-GPU-0",name="Simulated RTX 3090",simulated="true"} 1"#,
        r#"llorch_gpu_info{index="1",uuid="SIM-GPU-1",name="Sim \"quoted\" \\ card",simulated="true"} 1"#,
        r#"vram_total_bytes{gpu="0",simulated="true"} 25769803776"#,
        r#"vram_used_bytes{gpu="1",simulated="true"} 1073741824"#,
        r#"gpu_utilization{gpu="0",simulated="true"} 0.5"#,
        r#"llorch_pool_replicas{pool="chat",state="desired"} 2"#,
        r#"llorch_pool_replicas{pool="chat",state="ready"} 1"#,
        r#"llorch_pool_ready{pool="chat"} 1"#,
        r#"llorch_pool_ready{pool="broken"} 0"#,
        r#"llorch_pool_restarts_total{pool="chat"} 3"#,
        "llorch_manifest_errors 2",
        "# TYPE llorch_pool_restarts_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn metrics_follow_the_latest_snapshot() {
    let server = Server::start(snapshot()).await;
    let mut next = snapshot();
    next.objects.retain(|o| o.object.name != "chat");
    next.gpus_simulated = false;
    next.gpus.clear();
    server.publish.send_replace(Arc::new(next));
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains(r#"pool="chat""#),
        "a deleted pool leaves no series:\n{text}"
    );
    assert!(text.lines().any(|l| l == "llorch_gpu_inventory_simulated 0"));
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json_errors() {
    let server = Server::start(snapshot()).await;
    assert_eq!(server.error("/v3/nothing", 404).await.code, "NOT_FOUND");
    let response = server
        .client
        .post(format!("{}/v2/pools", server.base))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: ApiErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn a_correlation_id_is_echoed_when_sent_and_generated_when_not() {
    let server = Server::start(snapshot()).await;
    let sent = server
        .client
        .get(format!("{}/v2/pools/nope", server.base))
        .header("X-Correlation-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-correlation-id"], "req-42", "also on errors");

    let generated = server.get("/healthz").await;
    let id = generated.headers()["x-correlation-id"].to_str().unwrap();
    assert_eq!(id.len(), 16);

    let unsafe_id = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("X-Correlation-Id", "a b")
        .send()
        .await
        .unwrap();
    assert_ne!(unsafe_id.headers()["x-correlation-id"], "a b");
}
