//! `/v2/artifacts` on a real socket with a real artifact store in a temporary directory: plans
//! stored once and read back by id, every refusal (hostile ids, bad list parameters, a `job`
//! post, an oversized body, a replay of a plan), the diff an apply through the write API
//! stores, and 503 on a server without a store. Job records and replay run end to end in
//! `e2e/tests/records.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use llorch_api::records::{Records, RecordsSettings};
use llorch_api::sources::ManifestWrites;
use llorch_api::{AppState, NoEvents, NoLogs};
use llorch_manifests::api::{
    AppliedObject, ApplyAction, ApplyResult, DeleteResult, ManifestText, Snapshot, WriteError,
};
use llorch_manifests::{Kind, ObjectRef};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Applies everything as `configured` pool `chat`.
struct Applies;

impl ManifestWrites for Applies {
    fn apply(&self, _: &[ManifestText], dry_run: bool, _: &str) -> Result<ApplyResult, WriteError> {
        Ok(ApplyResult {
            dry_run,
            objects: vec![AppliedObject {
                object: ObjectRef::new(Kind::Pool, "chat"),
                action: ApplyAction::Configured,
                file: "/m/pool-chat.yaml".into(),
                generation: "g2".into(),
                yaml: "kind: Pool\nspec: {replicas: 2}\n".into(),
                previous_yaml: Some("kind: Pool\nspec: {replicas: 1}\n".into()),
            }],
            warnings: Vec::new(),
            synced: false,
        })
    }
    fn delete(&self, _: &ObjectRef) -> Result<DeleteResult, WriteError> {
        Err(WriteError::Failed("no".into()))
    }
    fn wake(&self) {}
}

struct Server {
    base: String,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(with_store: bool) -> Server {
    let (_publish, rx) = watch::channel(Arc::new(Snapshot::default()));
    let mut state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_manifest_writes(Arc::new(Applies));
    let dir = with_store.then(|| tempfile::tempdir().unwrap());
    if let Some(dir) = &dir {
        let settings = RecordsSettings {
            enabled: true,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        state = state.with_records(Records::open(dir.path(), settings).unwrap());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: stop,
    }
}

impl Server {
    async fn send(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body.to_string())).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }
}

#[tokio::test]
async fn a_plan_is_stored_once_and_read_back_by_its_id() {
    let s = serve(true).await;
    let plan = json!({"kind": "plan", "content": {"pool": "chat", "plan": "replica 0: …"}});
    let (first, created) = s.post("/v2/artifacts", plan.clone()).await;
    let (second, again) = s.post("/v2/artifacts", plan.clone()).await;
    assert_eq!((first, second), (201, 200), "new, then already stored");
    assert_eq!(created["id"], again["id"]);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let (status, stored) = s.get(&format!("/v2/artifacts/{id}")).await;
    assert_eq!((status, &stored), (200, &plan));
    let (_, list) = s.get("/v2/artifacts?kind=plan").await;
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["job"], Value::Null);
    assert_eq!(list["next"], Value::Null);
    let (_, jobs) = s.get("/v2/artifacts?kind=job").await;
    assert_eq!(jobs["items"], json!([]));
}

#[tokio::test]
async fn hostile_ids_bad_parameters_job_posts_and_big_bodies_are_refused() {
    let s = serve(true).await;
    for path in [
        "/v2/artifacts/..%2F..%2Fetc%2Fpasswd",
        "/v2/artifacts/sha256:..%2Fx",
        "/v2/artifacts/SHA256:abc",
        "/v2/artifacts?limit=501",
        "/v2/artifacts?limit=0",
        "/v2/artifacts?kind=trace",
        "/v2/artifacts?before=..%2Fx",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "INVALID_PARAMS", "{path}");
    }
    let (status, body) = s.get(&format!("/v2/artifacts/sha256:{}", "0".repeat(64))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = s.post("/v2/artifacts", json!({"kind": "job", "content": {}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("written by the daemon"),
        "{body}"
    );
    let big = json!({"kind": "diff", "content": "x".repeat(2 << 20)});
    let (status, body) = s.post("/v2/artifacts", big).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    let (_, plan) = s.post("/v2/artifacts", json!({"kind": "plan", "content": 1})).await;
    let id = plan["id"].as_str().unwrap();
    let (status, body) = s.post(&format!("/v2/artifacts/{id}/replay"), json!({})).await;
    assert_eq!(status, 400, "only job records replay: {body}");
}

#[tokio::test]
async fn an_apply_through_the_write_api_stores_its_diff() {
    let s = serve(true).await;
    let (status, _) = s
        .post(
            "/v2/manifests",
            json!({"files": [{"name": "p.yaml", "text": "kind: Pool"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = s.get("/v2/artifacts?kind=diff").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (_, diff) = s.get(&format!("/v2/artifacts/{id}")).await;
    assert_eq!(diff["kind"], "diff");
    assert_eq!(diff["content"]["appliedBy"], "localhost");
    assert_eq!(diff["content"]["objects"][0]["action"], "configured");
    assert_eq!(
        diff["content"]["objects"][0]["previousYaml"],
        "kind: Pool\nspec: {replicas: 1}\n"
    );
    let dry = json!({"files": [{"name": "p.yaml", "text": "kind: Pool"}], "dryRun": true});
    let (status, _) = s.post("/v2/manifests", dry).await;
    assert_eq!(status, 200);
    let (_, list) = s.get("/v2/artifacts?kind=diff").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "a dry run stores nothing");
}

#[tokio::test]
async fn a_server_without_a_store_answers_503() {
    let s = serve(false).await;
    let (status, body) = s.get("/v2/artifacts").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("NOT_READY")));
}
