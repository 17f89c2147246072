//! get, describe, wait, events and logs against the real API server on port 0, serving a
//! hand-built snapshot that the tests change while orchctl runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ENGINE, Home, MODEL, POOL};
use llorch_api::{AppState, BoxFuture, EventSource, LogSource, LogsError};
use llorch_manifests::api::{GpuView, ObjectView, Snapshot, SourceRef};
use llorch_manifests::status::{
    Condition, ConditionType, Event, EventType, LastError, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus,
};
use llorch_manifests::{Endpoint, ManifestError, ObjectRef, Reason, ReplicaId, hash, parse_file};
use tokio::sync::watch;

struct Events;

impl EventSource for Events {
    fn recent(&self, object: Option<&ObjectRef>, limit: usize) -> Vec<Event> {
        let all = vec![
            Event {
                ts: "2026-01-01T00:00:01Z".into(),
                object: Some(ObjectRef::new(llorch_manifests::Kind::Pool, "chat")),
                replica: Some(ReplicaId::new("chat", 1)),
                type_: EventType::Warning,
                reason: Reason::EngineCrashed,
                message: "exit code 1".into(),
            },
            Event {
                ts: "2026-01-01T00:00:02Z".into(),
                object: Some(ObjectRef::new(llorch_manifests::Kind::Model, "tiny")),
                replica: None,
                type_: EventType::Normal,
                reason: Reason::ModelReady,
                message: "digest ok".into(),
            },
        ];
        let mut matching: Vec<Event> = all
            .into_iter()
            .filter(|e| object.is_none() || e.object.as_ref() == object)
            .collect();
        matching.truncate(limit);
        matching
    }
}

struct Logs;

impl LogSource for Logs {
    fn tail(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        let out = (0..lines.min(2)).map(|i| format!("{replica_id}: line {i}")).collect();
        Box::pin(async move { Ok(out) })
    }
}

fn view_of(text: &str) -> ObjectView {
    let located = parse_file("/m/x.yaml", text.as_bytes()).unwrap().remove(0);
    let object = located.object.object_ref();
    let mut status = ObjectStatus::new(object.clone());
    status.generation = Some(hash::short_hash(&located.object));
    status.observed_generation = status.generation.clone();
    ObjectView {
        object: object.clone(),
        source: Some(SourceRef {
            file: format!("/m/{}-{}.yaml", object.kind.lower(), object.name),
            document: 0,
        }),
        manifest: Some(located.object.to_json()),
        status,
    }
}

fn condition(type_: ConditionType, status: bool, reason: Reason, message: &str) -> Condition {
    Condition {
        type_,
        status,
        reason,
        message: message.into(),
        last_transition_time: String::new(),
    }
}

fn replica(index: u32, phase: ReplicaPhase) -> ReplicaStatus {
    ReplicaStatus {
        id: ReplicaId::new("chat", index),
        pool: "chat".into(),
        index,
        phase,
        container_id: Some(format!("{index}123456789abcdef")),
        container_name: Some(format!("llorch-chat-{index}")),
        endpoint: Some(Endpoint::loopback(41000 + index as u16)),
        gpus: vec![index],
        gpus_simulated: true,
        engine_version: "0.1.0".into(),
        spec_hash: "abc".into(),
        restarts: u64::from(index) * 3,
        ready_since: None,
        kv_cache_usage_ratio: (phase == ReplicaPhase::Ready).then_some(0.375),
    }
}

/// chat: 1 of 2 ready, scaling up, with a crashed replica and its log tail.
fn snapshot() -> Snapshot {
    let mut chat = view_of(POOL);
    chat.status.conditions = vec![
        condition(
            ConditionType::Ready,
            false,
            Reason::ReplicasNotReady,
            "1 of 2 replicas ready",
        ),
        condition(
            ConditionType::Progressing,
            true,
            Reason::ReplicasStarting,
            "starting chat-1",
        ),
        condition(ConditionType::Degraded, false, Reason::AsExpected, "no failures"),
    ];
    chat.status.replicas = Some(ReplicaCounts { desired: 2, ready: 1 });
    chat.status.restarts = 3;
    chat.status.last_error = Some(LastError {
        message: "chat-1 exited with code 1".into(),
        log_tail: vec!["loading model".into(), "error: out of memory".into()],
        at: String::new(),
    });
    Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![view_of(ENGINE), view_of(MODEL), chat],
        replicas: vec![replica(0, ReplicaPhase::Ready), replica(1, ReplicaPhase::BackingOff)],
        gpus: vec![GpuView {
            index: 0,
            uuid: "SIM-GPU-0".into(),
            name: "Simulated RTX 3090".into(),
            total_bytes: 24 << 30,
            used_bytes: 4 << 30,
            free_bytes: 20 << 30,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        }],
        gpus_simulated: true,
        gpu_source: llorch_manifests::api::GpuSource::Simulated,
        file_errors: vec![ManifestError::file(
            "/m/broken.yaml",
            "YAML syntax error: bad indentation",
            "fix the YAML syntax",
        )],
        runtime: Default::default(),
        serving: Vec::new(),
    }
}

fn ready(mut snapshot: Snapshot, observed: &str) -> Snapshot {
    let chat = snapshot.objects.iter_mut().find(|o| o.object.name == "chat").unwrap();
    chat.status.conditions[0] = condition(
        ConditionType::Ready,
        true,
        Reason::ReplicasReady,
        "2 of 2 replicas ready",
    );
    chat.status.observed_generation = Some(observed.to_string());
    snapshot
}

struct Daemon {
    home: Home,
    publish: watch::Sender<Arc<Snapshot>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn daemon(snapshot: Snapshot) -> Daemon {
    let (publish, rx) = watch::channel(Arc::new(snapshot));
    let state = AppState::new(rx, Arc::new(Events), Arc::new(Logs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Daemon {
        home: Home::new(&url),
        publish,
        _stop: stop,
    }
}

/// The generation the daemon would compute for the pool as `apply` wrote it.
fn generation_on_disk(home: &Home) -> String {
    let bytes = std::fs::read(home.manifests().join("pool-chat.yaml")).unwrap();
    hash::short_hash(&parse_file("x", &bytes).unwrap()[0].object)
}

async fn apply_all(home: &Home) {
    let input = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(home.run(&["apply", "-f", &input]).await.code, 0);
}

#[tokio::test]
async fn get_pools_prints_an_aligned_table_with_unattached_manifest_errors_as_warnings() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["get", "pools"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert_eq!(
        ran.out,
        "\
NAME   ENGINE   MODEL   READY   SCALE   IDLE   RESTARTS   STATUS                           UPDATED
chat   mock     tiny    1/2     -       -      3          Progressing (ReplicasStarting)   -
warning: /m/broken.yaml: YAML syntax error: bad indentation — fix the YAML syntax
"
    );
}

#[tokio::test]
async fn get_models_and_engines_show_their_spec_columns() {
    let d = daemon(snapshot()).await;
    let models = d.home.run(&["get", "models"]).await;
    assert!(models.out.starts_with("NAME   REF "), "{}", models.out);
    assert!(
        models.out.contains("tiny   file:models/tiny.gguf   4096"),
        "{}",
        models.out
    );
    let engines = d.home.run(&["get", "engine", "mock"]).await;
    assert!(
        engines
            .out
            .contains("mock   llama-orch/mock-engine:dev   0.1.0     llamacpp"),
        "{}",
        engines.out
    );
}

#[tokio::test]
async fn get_of_an_unknown_pool_prints_the_daemons_message_and_fails() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["get", "pool", "nope"]).await;
    assert_eq!(ran.code, 1);
    assert_eq!(
        ran.err,
        "error: pool `nope` not found; list them with `orchctl get pools`\n"
    );
}

#[tokio::test]
async fn get_replicas_shows_short_container_ids_and_labels_simulated_gpus() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["get", "replicas", "--pool", "chat"]).await;
    assert_eq!(
        ran.out,
        "\
ID       POOL   PHASE        CONTAINER      ENDPOINT                 GPUS            KV    RESTARTS
chat-0   chat   Ready        0123456789ab   http://127.0.0.1:41000   0 (simulated)   38%   0
chat-1   chat   BackingOff   1123456789ab   http://127.0.0.1:41001   1 (simulated)   -     3
"
    );
}

#[tokio::test]
async fn get_gpus_says_the_inventory_is_simulated() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["get", "gpus"]).await;
    assert_eq!(
        ran.out,
        "\
INDEX   NAME                 TOTAL      USED      FREE       UTIL   PROCS   HEALTH   SIMULATED
0       Simulated RTX 3090   24.0 GiB   4.0 GiB   20.0 GiB   -      0       ok       yes
note: this GPU inventory is simulated; no inference runs on these devices
note: on simulated GPUs, USED is the VRAM llama-orch's own replicas reserve
"
    );
}

#[tokio::test]
async fn get_gpus_under_gpus_none_says_there_are_none_by_config_instead_of_an_empty_table() {
    let d = daemon(Snapshot {
        gpus: Vec::new(),
        gpus_simulated: false,
        gpu_source: llorch_manifests::api::GpuSource::None,
        ..snapshot()
    })
    .await;
    let ran = d.home.run(&["get", "gpus"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert_eq!(
        ran.out,
        "no GPUs: config `gpus: none` (only Pools on external Engines run on this daemon)\n"
    );
    let json = d.home.run(&["get", "gpus", "-o", "json"]).await;
    assert_eq!(json.out.trim(), "[]", "raw output stays the (empty) list");
}

#[tokio::test]
async fn get_with_json_or_yaml_output_prints_the_raw_objects() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["get", "pools", "-o", "json"]).await;
    let views: Vec<ObjectView> = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(views, vec![snapshot().objects[2].clone()]);
    // YAML is the manifest as declared, which `apply -f -` takes back (tests/get.rs).
    let ran = d.home.run(&["get", "pool", "chat", "-o", "yaml"]).await;
    assert!(
        ran.out.contains("kind: Pool\nmetadata:\n  name: chat\n") && !ran.out.contains("observedGeneration:"),
        "{}",
        ran.out
    );
}

#[tokio::test]
async fn describe_explains_a_pool_with_conditions_replicas_last_error_and_events() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["describe", "pool/chat"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    for needle in [
        "Name:         chat",
        "Source:       /m/pool-chat.yaml (document 0)",
        "  engine           mock",
        "Status:       Progressing (ReplicasStarting)",
        "Replicas:     1/2 ready, 3 restarts",
        "Progressing   True     ReplicasStarting",
        "chat-1   chat   BackingOff",
        "Last error:\n  chat-1 exited with code 1",
        "    | error: out of memory",
        "EngineCrashed",
        "[chat-1] exit code 1",
    ] {
        assert!(ran.out.contains(needle), "missing `{needle}` in:\n{}", ran.out);
    }
    assert!(!ran.out.contains("ModelReady"), "only this object's events");
}

#[tokio::test]
async fn wait_succeeds_when_ready_for_the_manifest_on_disk() {
    let d = daemon(snapshot()).await;
    apply_all(&d.home).await;
    d.publish
        .send_replace(Arc::new(ready(snapshot(), &generation_on_disk(&d.home))));
    let ran = d
        .home
        .run(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=5s"])
        .await;
    assert_eq!(
        (ran.code, ran.out.as_str()),
        (0, "pool/chat condition met\n"),
        "{}",
        ran.err
    );
}

#[tokio::test]
async fn wait_does_not_take_ready_for_an_older_manifest_and_reports_the_last_status() {
    let d = daemon(snapshot()).await;
    apply_all(&d.home).await;
    d.publish.send_replace(Arc::new(ready(snapshot(), "0123456789ab")));
    let ran = d
        .home
        .run(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=500ms"])
        .await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.err
            .starts_with("error: timed out after 500ms waiting for condition=Ready on pool/chat"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("not yet acted on the current manifest"), "{}", ran.err);
    assert!(ran.err.contains("Ready=True (ReplicasReady)"), "{}", ran.err);
    assert!(ran.err.contains("last error: chat-1 exited with code 1"), "{}", ran.err);
}

#[tokio::test]
async fn wait_returns_once_the_daemon_catches_up_with_the_manifest() {
    let d = daemon(snapshot()).await;
    apply_all(&d.home).await;
    let current = generation_on_disk(&d.home);
    let publish = d.publish.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        publish.send_replace(Arc::new(ready(snapshot(), &current)));
    });
    let ran = d
        .home
        .run(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=10s"])
        .await;
    assert_eq!(ran.code, 0, "{}", ran.err);
}

#[tokio::test]
async fn wait_for_delete_needs_a_synced_daemon_that_no_longer_knows_the_object() {
    let d = daemon(Snapshot::default()).await;
    let ran = d
        .home
        .run(&["wait", "pool/chat", "--for=delete", "--timeout=400ms"])
        .await;
    assert_eq!(ran.code, 1, "a daemon still scanning proves nothing");
    assert!(ran.err.contains("still scanning"), "{}", ran.err);

    d.publish.send_replace(Arc::new(Snapshot {
        synced: true,
        ..Snapshot::default()
    }));
    let ran = d.home.run(&["wait", "pool/chat", "--for=delete", "--timeout=2s"]).await;
    assert_eq!((ran.code, ran.out.as_str()), (0, "pool/chat deleted\n"), "{}", ran.err);
}

#[tokio::test]
async fn events_of_one_object_are_a_table() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["events", "pool/chat"]).await;
    assert_eq!(
        ran.out,
        "\
TIME                  TYPE      OBJECT               REASON          MESSAGE
2026-01-01 00:00:01   Warning   pool/chat (chat-1)   EngineCrashed   exit code 1
"
    );
}

#[tokio::test]
async fn logs_print_the_replicas_last_lines_and_an_unknown_replica_fails() {
    let d = daemon(snapshot()).await;
    let ran = d.home.run(&["logs", "chat/1", "--tail", "5"]).await;
    assert_eq!((ran.code, ran.out.as_str()), (0, "chat-1: line 0\nchat-1: line 1\n"));
    let ran = d.home.run(&["logs", "chat-9"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("replica `chat-9` not found"), "{}", ran.err);
}

#[tokio::test]
async fn an_unreachable_daemon_gets_a_hint_not_a_stack_trace() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let home = Home::new(&url);
    for args in [
        &["get", "pools"][..],
        &["wait", "pool/chat", "--for=condition=Ready", "--timeout=5s"][..],
    ] {
        let ran = home.run(args).await;
        assert_eq!(ran.code, 1);
        assert_eq!(
            ran.err,
            format!(
                "error: cannot reach llama-orchd at {url}: is it running? start it with `llama-orchd` (see README), \
                 or point orchctl at it with --server or $LLAMA_ORCH_URL\n"
            )
        );
    }
}
