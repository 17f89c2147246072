//! The write API's routes (`POST /v2/manifests`, `DELETE /v2/manifests/{kind}/{name}`) on a
//! real socket with a scripted `ManifestWrites`: how each of the writer's answers becomes an
//! HTTP answer, what the route hands over (files, dry run, the caller's identity), and that a
//! write answers `synced: true` once the snapshot shows it. The real writer is tested in the
//! controller and, end to end, by `e2e/tests/remote_orchctl.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use llorch_api::sources::ManifestWrites;
use llorch_api::{AppState, NoEvents, NoLogs};
use llorch_manifests::api::{
    AppliedObject, ApplyAction, ApplyResult, DeleteResult, ManifestText, ObjectView, Snapshot, WriteError,
};
use llorch_manifests::status::ObjectStatus;
use llorch_manifests::{Kind, ObjectRef};
use tokio::sync::watch;

/// Answers every write with `answer`; on `wake`, publishes pool `chat` at generation `g2`.
struct Scripted {
    answer: Result<(), WriteError>,
    calls: Mutex<Vec<String>>,
    publish: watch::Sender<Arc<Snapshot>>,
}

fn chat() -> ObjectRef {
    ObjectRef::new(Kind::Pool, "chat")
}

impl ManifestWrites for Scripted {
    fn apply(&self, files: &[ManifestText], dry_run: bool, writer: &str) -> Result<ApplyResult, WriteError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("apply {} files dry_run={dry_run} by {writer}", files.len()));
        self.answer.clone().map(|()| ApplyResult {
            dry_run,
            objects: vec![AppliedObject {
                object: chat(),
                action: ApplyAction::Configured,
                file: "/m/pool-chat.yaml".into(),
                generation: "g2".into(),
                yaml: "kind: Pool\n".into(),
                previous_yaml: Some("kind: Pool\n".into()),
            }],
            warnings: Vec::new(),
            synced: false,
        })
    }

    fn delete(&self, object: &ObjectRef) -> Result<DeleteResult, WriteError> {
        self.calls.lock().unwrap().push(format!("delete {object}"));
        self.answer.clone().map(|()| DeleteResult {
            object: object.clone(),
            file: "/m/pool-chat.yaml".into(),
            warnings: Vec::new(),
            synced: false,
        })
    }

    fn wake(&self) {
        let mut status = ObjectStatus::new(chat());
        status.generation = Some("g2".into());
        self.publish.send_replace(Arc::new(Snapshot {
            synced: true,
            objects: vec![ObjectView {
                object: chat(),
                source: None,
                manifest: None,
                status,
            }],
            ..Snapshot::default()
        }));
    }
}

/// Serves a daemon whose writer answers `answer`; sends `method path body`.
async fn send(
    answer: Result<(), WriteError>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value, Vec<String>) {
    let (publish, rx) = watch::channel(Arc::new(Snapshot::default()));
    let writes = Arc::new(Scripted {
        answer,
        calls: Mutex::new(Vec::new()),
        publish,
    });
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_manifest_writes(writes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap();
    let _ = stop.send(());
    let calls = writes.calls.lock().unwrap().clone();
    (status, json, calls)
}

const ONE_FILE: &str = r#"{"files": [{"name": "p.yaml", "text": "kind: Pool"}]}"#;

#[tokio::test]
async fn an_apply_is_handed_over_with_the_callers_identity_and_answers_once_synced() {
    let (status, body, calls) = send(Ok(()), "POST", "/v2/manifests", ONE_FILE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls, ["apply 1 files dry_run=false by localhost"]);
    assert_eq!(body["synced"], true, "{body}");
    assert_eq!(body["objects"][0]["action"], "configured");
    let dry = r#"{"files": [{"name": "p.yaml", "text": "kind: Pool"}], "dryRun": true}"#;
    let (status, body, calls) = send(Ok(()), "POST", "/v2/manifests", dry).await;
    assert_eq!(
        (status, &calls[0][..]),
        (200, "apply 1 files dry_run=true by localhost")
    );
    assert_eq!(
        (body["dryRun"].clone(), body["synced"].clone()),
        (true.into(), false.into())
    );
}

#[tokio::test]
async fn each_refusal_has_its_status_and_code_and_lists_every_line() {
    let cases = [
        (
            WriteError::Invalid(vec!["a.yaml: one".into(), "b.yaml: two".into()]),
            422,
            "INVALID_MANIFEST",
        ),
        (
            WriteError::Refused(vec!["engine `sh`: no".into()]),
            403,
            "POLICY_REFUSED",
        ),
        (WriteError::Conflict(vec!["hand-written".into()]), 409, "CONFLICT"),
        (WriteError::NotFound("pool/chat not found".into()), 404, "NOT_FOUND"),
        (WriteError::Failed("disk full at /secret/path".into()), 500, "INTERNAL"),
    ];
    for (error, want_status, want_code) in cases {
        let lines = error.to_string();
        let (status, body, _) = send(Err(error), "POST", "/v2/manifests", ONE_FILE).await;
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            (want_status, want_code),
            "{body}"
        );
        if want_status != 500 {
            assert_eq!(body["message"], lines.as_str());
        } else {
            assert!(
                !body["message"].as_str().unwrap().contains("/secret"),
                "internal details stay in the log"
            );
        }
    }
}

#[tokio::test]
async fn bad_bodies_and_paths_never_reach_the_writer() {
    for (method, path, body) in [
        ("POST", "/v2/manifests", "not json"),
        ("POST", "/v2/manifests", r#"{"files": [], "extra": 1}"#),
        ("DELETE", "/v2/manifests/widgets/chat", ""),
        ("DELETE", "/v2/manifests/pools/..%2Fetc", ""),
    ] {
        let (status, body, calls) = send(Ok(()), method, path, body).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert!(calls.is_empty(), "{method} {path} reached the writer");
    }
    let (status, body, calls) = send(Ok(()), "DELETE", "/v2/manifests/pools/chat", "").await;
    assert_eq!((status, calls), (200, vec!["delete pool/chat".to_string()]), "{body}");
    assert_eq!(
        body["synced"], false,
        "chat is still in the snapshot the fake publishes"
    );
}
