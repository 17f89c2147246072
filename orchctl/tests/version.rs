//! `orchctl version` against the real API server on port 0: the client's version, the
//! daemon's version and API version from `GET /v2/meta/capabilities`, `-o json|yaml`; with no
//! daemon the client part is printed and the command fails (exit 1) naming the address, unless
//! `--client` asked for the client alone, which needs no config at all.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::Home;
use llorch_api::{AppState, BoxFuture, EventSource, LogSource, LogsError};
use llorch_manifests::ObjectRef;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::Event;
use llorch_manifests::task::DATA_API_VERSION;
use orchctl::version::{VERSION, Versions};
use tokio::sync::watch;

struct NoEvents;

impl EventSource for NoEvents {
    fn recent(&self, _: Option<&ObjectRef>, _: usize) -> Vec<Event> {
        Vec::new()
    }
}

struct NoLogs;

impl LogSource for NoLogs {
    fn tail(&self, _: &str, _: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The real router on a free loopback port; stops when the sender is dropped.
async fn daemon() -> (String, tokio::sync::oneshot::Sender<()>) {
    let (_publish, rx) = watch::channel(Arc::new(Snapshot::default()));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// A loopback address nothing listens on (a port the kernel just handed out, then closed).
fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn client_line() -> String {
    match orchctl::version::GIT_COMMIT.filter(|c| !c.is_empty()) {
        Some(commit) => format!("Client Version: {VERSION} (commit {commit})\n"),
        None => format!("Client Version: {VERSION}\n"),
    }
}

#[tokio::test]
async fn version_prints_the_client_and_the_daemons_version_and_api_version() {
    let (url, _stop) = daemon().await;
    let home = Home::new(&url);
    let ran = home.run(&["version"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert_eq!(
        ran.out,
        format!(
            "{}Server Version: {}\nServer API Version: {DATA_API_VERSION}\nServer: {url}\n",
            client_line(),
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(ran.err, "");

    let json = home.run(&["version", "-o", "json"]).await;
    assert_eq!(json.code, 0, "{}", json.err);
    let versions: Versions = serde_json::from_str(&json.out).unwrap();
    assert_eq!(versions.client_version.version, VERSION);
    let server = versions.server_version.unwrap();
    assert_eq!(
        (
            server.version.as_deref(),
            server.api_version.as_str(),
            server.url.as_str()
        ),
        (Some(env!("CARGO_PKG_VERSION")), DATA_API_VERSION, url.as_str())
    );
    let yaml = home.run(&["version", "-o", "yaml"]).await;
    assert!(
        yaml.out.starts_with("clientVersion:\n") && yaml.out.contains(&format!("apiVersion: \"{DATA_API_VERSION}\"")),
        "{}",
        yaml.out
    );
}

#[tokio::test]
async fn without_a_daemon_version_prints_the_client_and_fails_naming_the_address() {
    let url = closed_address();
    let home = Home::new(&url);
    let ran = home.run(&["version"]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.out, client_line());
    assert!(
        ran.err
            .starts_with("error: server version unknown: cannot reach llama-orchd at ")
            && ran.err.contains(&url),
        "{}",
        ran.err
    );
    // JSON too: the client part, no server part, the reason on stderr.
    let json = home.run(&["version", "-o", "json"]).await;
    assert_eq!(json.code, 1);
    let versions: Versions = serde_json::from_str(&json.out).unwrap();
    assert_eq!(versions.server_version, None);

    // --client asks no daemon and succeeds.
    let ran = home.run(&["version", "--client"]).await;
    assert_eq!(
        (ran.code, ran.out.as_str(), ran.err.as_str()),
        (0, client_line().as_str(), "")
    );
}

#[tokio::test]
async fn version_client_works_even_with_a_broken_config() {
    let home = Home::new("http://127.0.0.1:1");
    std::fs::write(home.config(), "bindd: nonsense\n").unwrap();
    let ran = home.run(&["version", "--client", "-o", "json"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let versions: Versions = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(
        (versions.client_version.version.as_str(), versions.server_version),
        (VERSION, None)
    );
    // Without --client the broken config is reported, as for any command that needs it.
    let ran = home.run(&["version"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("bindd"), "{}", ran.err);
}
