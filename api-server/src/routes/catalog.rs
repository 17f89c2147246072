//! The model catalog: `GET /v2/catalog` lists its entries (digest, size, path, references,
//! Models, lifecycle); `POST /v2/models/{name}/pull` starts or refreshes a Model's fetch now
//! (202) — its progress shows in the Model's status — or says which policy forbids it (403,
//! `POLICY_REFUSED`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llorch_manifests::api::{CatalogEntry, PullAccepted};
use llorch_manifests::task::ErrorCode;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::sources::PullRefusal;

pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<CatalogEntry>> {
    Json(state.catalog.entries())
}

pub(crate) async fn pull(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Response {
    match state.catalog.pull(&name) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(PullAccepted {
                message: format!(
                    "fetch of model `{name}` requested; follow it with `orchctl models pull {name}` or GET /v2/models/{name}"
                ),
                model: name,
            }),
        )
            .into_response(),
        Err(PullRefusal::NotFound(_)) if !state.current().synced => ApiError::not_synced().into_response(),
        Err(PullRefusal::NotFound(message)) => ApiError::not_found(message).into_response(),
        Err(PullRefusal::Policy(message)) => ApiError::new(ErrorCode::PolicyRefused, message).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use llorch_manifests::api::{Lifecycle, Snapshot};
    use tokio::sync::watch;

    use super::*;
    use crate::sources::{CatalogSource, NoEvents, NoLogs};

    #[derive(Default)]
    struct Fake {
        pulled: Mutex<Vec<String>>,
    }

    impl CatalogSource for Fake {
        fn entries(&self) -> Vec<CatalogEntry> {
            vec![CatalogEntry {
                digest: format!("sha256:{}", "a".repeat(64)),
                size_bytes: 3,
                path: "/c/blobs/sha256/aaa".into(),
                refs: vec!["hf:o/r/x.gguf".into()],
                models: vec!["tiny".into()],
                lifecycle: Lifecycle::Active,
                added_at: "2026-01-01T00:00:00Z".into(),
            }]
        }
        fn pull(&self, model: &str) -> Result<(), PullRefusal> {
            match model {
                "tiny" => {
                    self.pulled.lock().unwrap().push(model.into());
                    Ok(())
                }
                "remote" => Err(PullRefusal::Policy(
                    "downloads are disabled (config `models.downloads: false`)".into(),
                )),
                _ => Err(PullRefusal::NotFound(format!("model `{model}` not found"))),
            }
        }
        fn verifications(&self) -> Vec<(&'static str, u64)> {
            Vec::new()
        }
    }

    async fn call(fake: Arc<Fake>, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
        let (_tx, rx) = watch::channel(Arc::new(Snapshot {
            synced: true,
            ..Snapshot::default()
        }));
        let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_catalog(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::serve(listener, state, std::future::pending()));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = reqwest::Client::new()
            .request(method, format!("{base}{uri}"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn the_catalog_lists_entries_and_pulls_answer_202_403_or_404() {
        let fake = Arc::new(Fake::default());
        let (status, body) = call(fake.clone(), "GET", "/v2/catalog").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["lifecycle"], "Active");
        let (status, body) = call(fake.clone(), "POST", "/v2/models/tiny/pull").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(*fake.pulled.lock().unwrap(), ["tiny"]);
        let (status, body) = call(fake.clone(), "POST", "/v2/models/remote/pull").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], "POLICY_REFUSED");
        assert!(body["message"].as_str().unwrap().contains("models.downloads"));
        let (status, _) = call(fake, "POST", "/v2/models/nope/pull").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
