//! `POST /v2/pools/{id}/reload` on a real socket with a recording `PoolControl`: what the route
//! checks on the snapshot itself, what it hands to the controller, and how each of the
//! controller's answers becomes an HTTP answer.
// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use llorch_api::sources::PoolEditError;
use llorch_api::{AppState, NoEvents, NoLogs, PoolControl, RestartError};
use llorch_manifests::api::{ObjectView, Snapshot, SourceRef};
use llorch_manifests::pool_size::{PoolSize, SizeChange};
use llorch_manifests::status::{Condition, ConditionType, ObjectStatus};
use llorch_manifests::task::TaskError as ApiErrorBody;
use llorch_manifests::{Kind, ObjectRef, Reason};
use tokio::sync::watch;

/// What `set_model` was called with.
type SetModelCall = (String, PathBuf, String, String);

/// Records every command and answers `set_model` with `answer`.
struct RecordingControl {
    answer: Result<(), PoolEditError>,
    set_model: Mutex<Vec<SetModelCall>>,
    restarts: Mutex<Vec<String>>,
}

impl RecordingControl {
    fn answering(answer: Result<(), PoolEditError>) -> Arc<Self> {
        Arc::new(Self {
            answer,
            set_model: Mutex::new(Vec::new()),
            restarts: Mutex::new(Vec::new()),
        })
    }
}

impl PoolControl for RecordingControl {
    fn restart(&self, pool: &str) -> Result<u64, RestartError> {
        let mut restarts = self.restarts.lock().unwrap();
        restarts.push(pool.to_string());
        Ok(restarts.len() as u64)
    }

    fn set_model(&self, pool: &str, file: &Path, from: &str, to: &str) -> Result<(), PoolEditError> {
        self.set_model
            .lock()
            .unwrap()
            .push((pool.into(), file.into(), from.into(), to.into()));
        self.answer.clone()
    }

    fn set_size(&self, pool: &str, _: &Path, _: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError> {
        Err(PoolEditError::Failed(format!("a reload must not scale pool `{pool}`")))
    }
}

fn view(kind: Kind, name: &str, manifest: serde_json::Value) -> ObjectView {
    let object = ObjectRef::new(kind, name);
    ObjectView {
        object: object.clone(),
        source: Some(SourceRef {
            file: format!("/m/{}-{name}.yaml", kind.lower()),
            document: 0,
        }),
        manifest: Some(manifest),
        status: ObjectStatus::new(object),
    }
}

fn snapshot() -> Snapshot {
    let pool = view(
        Kind::Pool,
        "chat",
        serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Pool", "metadata": { "name": "chat" },
            "spec": { "engine": "mock", "model": "tiny", "replicas": 2 }
        }),
    );
    let model = |name: &str| view(Kind::Model, name, serde_json::json!({ "kind": "Model" }));
    let mut broken = model("broken");
    broken.status.conditions = vec![Condition {
        type_: ConditionType::Degraded,
        status: true,
        reason: Reason::DigestMismatch,
        message: "the file's digest differs".into(),
        last_transition_time: "2026-01-01T00:00:00Z".into(),
    }];
    let mut snapshot = Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![model("tiny"), model("tiny2"), broken, pool],
        gpus_simulated: true,
        ..Snapshot::default()
    };
    snapshot.serving = llorch_manifests::serving::from_objects(&snapshot);
    snapshot
}

/// Starts a server with `control`, posts `body` to chat's reload route, returns status and body.
async fn reload(control: Arc<RecordingControl>, body: &str) -> (u16, serde_json::Value) {
    let (_publish, rx) = watch::channel(Arc::new(snapshot()));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_pool_control(control);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let response = reqwest::Client::new()
        .post(format!("{base}/v2/pools/chat/reload"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap();
    let _ = stop.send(());
    (status, json)
}

fn error(json: serde_json::Value) -> ApiErrorBody {
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn a_new_model_is_handed_to_the_controller_with_the_pools_file_and_answers_202() {
    let control = RecordingControl::answering(Ok(()));
    let (status, body) = reload(control.clone(), r#"{"model": "tiny2"}"#).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        serde_json::json!({
            "pool": "chat", "model": "tiny2", "action": "manifest", "file": "/m/pool-chat.yaml",
            "message": "spec.model of pool `chat` is now `tiny2` in /m/pool-chat.yaml; new replicas start next \
                        to the old ones, which serve until the new ones are Ready (and stay if they fail)"
        })
    );
    assert_eq!(
        *control.set_model.lock().unwrap(),
        [(
            "chat".to_string(),
            PathBuf::from("/m/pool-chat.yaml"),
            "tiny".to_string(),
            "tiny2".to_string()
        )]
    );
    assert!(control.restarts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_or_unusable_model_is_refused_before_the_controller_is_asked() {
    let control = RecordingControl::answering(Ok(()));
    let (status, body) = reload(control.clone(), r#"{"model": "nope"}"#).await;
    assert_eq!(status, 404);
    let e = error(body);
    assert_eq!(e.code, "NOT_FOUND");
    assert!(
        e.message
            .starts_with("model `nope` not found (declared: tiny, tiny2, broken)"),
        "{}",
        e.message
    );

    let (status, body) = reload(control.clone(), r#"{"model": "broken"}"#).await;
    assert_eq!(status, 422);
    let e = error(body);
    assert_eq!(e.code, "MODEL_UNUSABLE");
    assert_eq!(
        e.message,
        "model `broken` is not usable: the file's digest differs; see `orchctl describe model/broken`"
    );
    assert!(control.set_model.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_file_the_controller_refuses_to_edit_is_a_409_with_its_message() {
    let message = "/m/stack.yaml holds 2 document(s), not only pool `chat`; edit it yourself";
    let control = RecordingControl::answering(Err(PoolEditError::Conflict(message.into())));
    let (status, body) = reload(control, r#"{"model": "tiny2"}"#).await;
    assert_eq!(status, 409);
    let e = error(body);
    assert_eq!((e.code.as_str(), e.message.as_str()), ("CONFLICT", message));
}

#[tokio::test]
async fn a_failed_edit_is_a_500_that_keeps_the_detail_out_of_the_body() {
    let control = RecordingControl::answering(Err(PoolEditError::Failed("cannot write /m/x: EROFS".into())));
    let (status, body) = reload(control, r#"{"model": "tiny2"}"#).await;
    assert_eq!(status, 500);
    let e = error(body);
    assert_eq!(e.code, "INTERNAL");
    assert!(!e.message.contains("EROFS"), "{}", e.message);
}

#[tokio::test]
async fn the_current_model_or_none_restarts_the_pool_without_editing_its_file() {
    let control = RecordingControl::answering(Ok(()));
    let (status, body) = reload(control.clone(), r#"{"model": "tiny"}"#).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["action"].as_str(), body["reload"].as_u64()),
        (Some("restart"), Some(1))
    );
    let (status, body) = reload(control.clone(), "").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["reload"].as_u64(), Some(2));
    assert_eq!(*control.restarts.lock().unwrap(), ["chat", "chat"]);
    assert!(control.set_model.lock().unwrap().is_empty());
}
