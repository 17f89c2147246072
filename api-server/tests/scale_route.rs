//! `POST /v2/pools/{id}/scale` on a real socket with a recording `PoolControl`: what the route
//! refuses on its own (the body's shape, a size of the wrong kind for the Pool, the manifest
//! limits, an external Engine's one replica, a Pool without a file), what it hands to the
//! controller, and how each of the controller's answers becomes an HTTP answer.
// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use llorch_api::{AppState, NoEvents, NoLogs, PoolControl, PoolEditError, RestartError};
use llorch_manifests::api::{ObjectView, ScaleAccepted, Snapshot, SourceRef};
use llorch_manifests::pool_size::{PoolSize, SizeChange};
use llorch_manifests::status::ObjectStatus;
use llorch_manifests::task::TaskError as ApiErrorBody;
use llorch_manifests::{Pool, parse_file};
use tokio::sync::watch;

/// What `set_size` was called with.
type SetSizeCall = (String, PathBuf, SizeChange);

/// Records every scale and answers with `answer`, or else with the size the change gives the
/// Pool as the test's snapshot declares it.
struct RecordingControl {
    answer: Option<PoolEditError>,
    calls: Mutex<Vec<SetSizeCall>>,
}

impl RecordingControl {
    fn answering(answer: Option<PoolEditError>) -> Arc<Self> {
        Arc::new(Self {
            answer,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<SetSizeCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl PoolControl for RecordingControl {
    fn restart(&self, pool: &str) -> Result<u64, RestartError> {
        Err(RestartError::NoController { pool: pool.into() })
    }

    fn set_model(&self, pool: &str, _: &Path, _: &str, _: &str) -> Result<(), PoolEditError> {
        Err(PoolEditError::Failed(format!("a scale must not reload pool `{pool}`")))
    }

    fn set_size(&self, pool: &str, file: &Path, change: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError> {
        self.calls.lock().unwrap().push((pool.into(), file.into(), change));
        if let Some(answer) = &self.answer {
            return Err(answer.clone());
        }
        let view = snapshot().objects.into_iter().find(|o| o.object.name == pool).unwrap();
        let declared: Pool = serde_json::from_value(view.manifest.unwrap()).unwrap();
        let after = change.apply(pool, &declared.spec).unwrap();
        Ok((PoolSize::of(&declared.spec), PoolSize::of(&after)))
    }
}

fn view_of(text: &str) -> ObjectView {
    let object = parse_file("/m/x.yaml", text.as_bytes()).unwrap().remove(0).object;
    let id = object.object_ref();
    ObjectView {
        object: id.clone(),
        source: Some(SourceRef {
            file: format!("/m/{}-{}.yaml", id.kind.lower(), id.name),
            document: 0,
        }),
        manifest: Some(object.to_json()),
        status: ObjectStatus::new(id),
    }
}

fn pool(name: &str, engine: &str, size: &str) -> ObjectView {
    view_of(&format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\nspec: {{engine: {engine}, model: tiny, {size}}}\n"
    ))
}

/// chat: 2 fixed replicas; coder: 0–2 by demand; ext: 1 replica of an external Engine; gone:
/// a Pool whose file was removed.
fn snapshot() -> Snapshot {
    let mut gone = pool("gone", "mock", "replicas: 1");
    gone.source = None;
    let mut snapshot = Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![
            view_of(
                "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\nspec: {image: 'mock:1', version: '1'}\n",
            ),
            view_of(
                "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: ext}\n\
                 spec: {provisioning: external, url: 'http://127.0.0.1:8081', version: '1'}\n",
            ),
            view_of(
                "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: tiny}\nspec: {ref: 'file:/m.gguf', ctxMax: 4096}\n",
            ),
            pool("chat", "mock", "replicas: 2"),
            pool("coder", "mock", "scaling: {minReplicas: 0, maxReplicas: 2}"),
            pool("ext", "ext", "replicas: 1"),
            gone,
        ],
        gpus_simulated: true,
        ..Snapshot::default()
    };
    snapshot.serving = llorch_manifests::serving::from_objects(&snapshot);
    snapshot
}

/// Starts a server with `control`, posts `body` to `pool`'s scale route (as JSON unless
/// `content_type` says otherwise), returns status and body.
async fn post(control: Arc<RecordingControl>, pool: &str, body: &str, content_type: &str) -> (u16, serde_json::Value) {
    let (_publish, rx) = watch::channel(Arc::new(snapshot()));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_pool_control(control);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let response = reqwest::Client::new()
        .post(format!("{base}/v2/pools/{pool}/scale"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap();
    let _ = stop.send(());
    (status, json)
}

async fn scale(control: Arc<RecordingControl>, pool: &str, body: &str) -> (u16, serde_json::Value) {
    post(control, pool, body, "application/json").await
}

/// The refusal's status, code and message.
async fn refusal(pool: &str, body: &str) -> (u16, String, String) {
    let control = RecordingControl::answering(None);
    let (status, json) = scale(control.clone(), pool, body).await;
    assert!(
        control.calls().is_empty(),
        "the controller was asked: {:?}",
        control.calls()
    );
    let e: ApiErrorBody = serde_json::from_value(json).unwrap();
    (status, e.code.as_str().to_string(), e.message)
}

#[tokio::test]
async fn a_fixed_pools_replicas_are_handed_to_the_controller_and_answered_202_with_from_and_to() {
    let control = RecordingControl::answering(None);
    let (status, body) = scale(control.clone(), "chat", r#"{"replicas": 3}"#).await;
    assert_eq!(status, 202, "{body}");
    let accepted: ScaleAccepted = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(
        (accepted.from, accepted.to, accepted.file.as_str()),
        (
            PoolSize::Fixed { replicas: 2 },
            PoolSize::Fixed { replicas: 3 },
            "/m/pool-chat.yaml"
        )
    );
    assert_eq!(body["from"], serde_json::json!({"replicas": 2}));
    assert_eq!(
        accepted.message,
        "pool `chat`: replicas 2 → 3 in /m/pool-chat.yaml; the controller works to the new size from its next \
         pass (a replica it removes first finishes its tasks); follow with `orchctl get pools`"
    );
    assert_eq!(
        control.calls(),
        [(
            "chat".to_string(),
            PathBuf::from("/m/pool-chat.yaml"),
            SizeChange::Replicas(3)
        )]
    );
}

#[tokio::test]
async fn a_pool_sized_by_demand_takes_either_bound() {
    let control = RecordingControl::answering(None);
    let (status, body) = scale(control.clone(), "coder", r#"{"max_replicas": 4}"#).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (&body["from"], &body["to"]),
        (
            &serde_json::json!({"min_replicas": 0, "max_replicas": 2}),
            &serde_json::json!({"min_replicas": 0, "max_replicas": 4})
        )
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("pool `coder`: maxReplicas 2 → 4 in /m/pool-coder.yaml;"),
        "{body}"
    );
    let (status, _) = scale(control.clone(), "coder", r#"{"min_replicas": 1, "max_replicas": 3}"#).await;
    assert_eq!(status, 202);
    assert_eq!(
        control.calls().into_iter().map(|c| c.2).collect::<Vec<_>>(),
        [
            SizeChange::Bounds {
                min: None,
                max: Some(4)
            },
            SizeChange::Bounds {
                min: Some(1),
                max: Some(3)
            }
        ]
    );
}

#[tokio::test]
async fn a_size_equal_to_the_current_one_says_nothing_was_written() {
    let (status, body) = scale(RecordingControl::answering(None), "chat", r#"{"replicas": 2}"#).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["message"],
        "pool `chat` already has replicas 2 in /m/pool-chat.yaml; nothing was written"
    );
}

#[tokio::test]
async fn a_body_without_exactly_one_kind_of_size_is_a_400_that_shows_both_forms() {
    for body in [
        "",
        "{}",
        r#"{"replicas": 2, "max_replicas": 3}"#,
        r#"{"replica": 2}"#,
        r#"{"replicas": -1}"#,
    ] {
        let (status, code, message) = refusal("chat", body).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_PARAMS"), "{body}: {message}");
        assert!(
            message.contains("{\"replicas\": N}") || message.contains("not both"),
            "{body}: {message}"
        );
    }
    let (_, _, message) = refusal("chat", "").await;
    assert!(message.starts_with("scale body is empty; send"), "{message}");
    let (_, _, message) = refusal("chat", r#"{"replica": 2}"#).await;
    assert!(message.contains("unknown field `replica`"), "{message}");
}

#[tokio::test]
async fn a_size_of_the_wrong_kind_for_the_pool_is_a_409_that_says_what_to_do_instead() {
    let (status, code, message) = refusal("coder", r#"{"replicas": 2}"#).await;
    assert_eq!((status, code.as_str()), (409, "CONFLICT"));
    assert!(message.starts_with("pool `coder` is sized by demand"), "{message}");
    assert!(
        message.contains("--min A --max B") && message.contains("remove `scaling` from its manifest"),
        "{message}"
    );
    let (status, code, message) = refusal("chat", r#"{"min_replicas": 1}"#).await;
    assert_eq!((status, code.as_str()), (409, "CONFLICT"));
    assert!(
        message.starts_with("pool `chat` has a fixed size (`replicas: 2`)"),
        "{message}"
    );
    assert!(
        message.contains("scaling: {minReplicas: 0, maxReplicas: 2, idleTimeout: 5m}")
            && message.contains("docs/scaling.md"),
        "{message}"
    );
}

#[tokio::test]
async fn a_size_outside_the_manifest_limits_is_a_400_naming_the_field_and_the_limit() {
    for (pool, body, says) in [
        (
            "chat",
            r#"{"replicas": 17}"#,
            "spec.replicas: 17 is above the maximum of 16",
        ),
        (
            "coder",
            r#"{"max_replicas": 0}"#,
            "spec.scaling.maxReplicas: 0 is outside 1–16; use 1 to 16",
        ),
        (
            "coder",
            r#"{"min_replicas": 3}"#,
            "spec.scaling.minReplicas: 3 is above maxReplicas (2)",
        ),
        (
            "ext",
            r#"{"replicas": 2}"#,
            "Engine `ext` is `provisioning: external`: one URL is one replica",
        ),
    ] {
        let (status, code, message) = refusal(pool, body).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_PARAMS"), "{body}: {message}");
        assert!(
            message.starts_with(&format!("pool `{pool}` cannot be scaled so: ")),
            "{message}"
        );
        assert!(message.contains(says), "{body}: {message}");
    }
}

#[tokio::test]
async fn an_unknown_pool_is_a_404_and_one_without_a_file_a_409() {
    let (status, code, message) = refusal("nope", r#"{"replicas": 1}"#).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    assert!(message.starts_with("pool `nope` not found (declared: "), "{message}");
    let (status, code, message) = refusal("gone", r#"{"replicas": 2}"#).await;
    assert_eq!((status, code.as_str()), (409, "CONFLICT"));
    assert_eq!(
        message,
        "pool `gone` has no manifest file to edit (its file is gone: the pool is being removed)"
    );
}

#[tokio::test]
async fn the_controllers_refusal_is_a_409_with_its_message_and_its_failure_a_500_without_detail() {
    let message = "/m/stack.yaml holds 2 document(s), not only pool `chat`; set it yourself";
    let control = RecordingControl::answering(Some(PoolEditError::Conflict(message.into())));
    let (status, body) = scale(control, "chat", r#"{"replicas": 3}"#).await;
    let e: ApiErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!(
        (status, e.code.as_str(), e.message.as_str()),
        (409, "CONFLICT", message)
    );

    let control = RecordingControl::answering(Some(PoolEditError::Failed("cannot write /m/x: EROFS".into())));
    let (status, body) = scale(control, "chat", r#"{"replicas": 3}"#).await;
    let e: ApiErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!((status, e.code.as_str()), (500, "INTERNAL"));
    assert!(!e.message.contains("EROFS"), "{}", e.message);
}

#[tokio::test]
async fn the_route_sits_behind_the_front_door() {
    let control = RecordingControl::answering(None);
    let (status, body) = post(control.clone(), "chat", r#"{"replicas": 3}"#, "text/plain").await;
    assert_eq!((status, body["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")));
    assert!(control.calls().is_empty());
}
