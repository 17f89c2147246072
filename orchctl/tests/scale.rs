//! `orchctl scale` end to end without containers: orchctl, the real API server on port 0 and
//! the controller's real manifest edit on a temporary manifests directory, behind a
//! `PoolControl` that does what llama-orchd's does. What the file says afterwards, what
//! orchctl prints, and how the daemon's refusals reach the user.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use common::{ENGINE, Home, MODEL, POOL};
use llorch_api::{AppState, NoEvents, NoLogs, PoolControl, PoolEditError, RestartError};
use llorch_controller::manifest_edit::{self, EditError};
use llorch_manifests::api::{ObjectView, Snapshot, SourceRef};
use llorch_manifests::parse_file;
use llorch_manifests::pool_size::{PoolSize, SizeChange};
use llorch_manifests::status::ObjectStatus;
use tokio::sync::watch;

/// llama-orchd's scale, without the controller to wake.
struct Edits;

impl PoolControl for Edits {
    fn restart(&self, pool: &str) -> Result<u64, RestartError> {
        Err(RestartError::NoController { pool: pool.into() })
    }

    fn set_model(&self, _: &str, _: &Path, _: &str, _: &str) -> Result<(), PoolEditError> {
        Err(PoolEditError::Failed("not in this test".into()))
    }

    fn set_size(&self, pool: &str, file: &Path, change: SizeChange) -> Result<(PoolSize, PoolSize), PoolEditError> {
        manifest_edit::set_size(file, pool, change).map_err(|e| match e {
            EditError::Failed(m) => PoolEditError::Failed(m),
            other => PoolEditError::Conflict(other.to_string()),
        })
    }
}

fn view_of(text: &str, file: &Path) -> ObjectView {
    let object = parse_file("x.yaml", text.as_bytes()).unwrap().remove(0).object;
    ObjectView {
        object: object.object_ref(),
        source: Some(SourceRef {
            file: file.display().to_string(),
            document: 0,
        }),
        manifest: Some(object.to_json()),
        status: ObjectStatus::new(object.object_ref()),
    }
}

/// A daemon whose snapshot declares the common stack, with pool `chat` (2 replicas) in a
/// hand-written `pool-chat.yaml`; the home and the pool's file.
async fn daemon() -> (Home, PathBuf, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let home = Home::new(&format!("http://{}", listener.local_addr().unwrap()));
    let file = home.hand_written(
        "pool-chat.yaml",
        &POOL.replace("  replicas: 2\n", "  replicas: 2  # one per GPU\n"),
    );
    let elsewhere = home.manifests().join("stack.yaml");
    let mut snapshot = Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![
            view_of(ENGINE, &elsewhere),
            view_of(MODEL, &elsewhere),
            view_of(POOL, &file),
        ],
        ..Snapshot::default()
    };
    snapshot.serving = llorch_manifests::serving::from_objects(&snapshot);
    let (_publish, rx) = watch::channel(Arc::new(snapshot));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_pool_control(Arc::new(Edits));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (home, file, stop)
}

#[tokio::test]
async fn scale_writes_the_new_replica_count_into_the_pools_file_and_says_so_in_one_line() {
    let (home, file, _stop) = daemon().await;
    let ran = home.run(&["scale", "pool/chat", "--replicas", "3"]).await;
    assert_eq!((ran.code, ran.err.as_str()), (0, ""));
    assert_eq!(
        ran.out,
        format!(
            "pool/chat scaled: replicas 2 → 3 (edited {}); follow with `orchctl get pools`\n",
            file.display()
        )
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("  ctxSize: 2048\n") && text.contains("  replicas: 3  # one per GPU\n"),
        "{text}"
    );

    let ran = home.run(&["scale", "chat", "--replicas", "3"]).await;
    assert_eq!(
        ran.out,
        format!(
            "pool/chat unchanged: it already has replicas 3 ({} not edited)\n",
            file.display()
        )
    );
}

#[tokio::test]
async fn the_daemons_refusals_are_printed_as_errors_and_leave_the_file_alone() {
    let (home, file, _stop) = daemon().await;
    let before = std::fs::read_to_string(&file).unwrap();
    let ran = home.run(&["scale", "pool/chat", "--max", "3"]).await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.err
            .starts_with("error: pool `chat` has a fixed size (`replicas: 2`)")
            && ran.err.contains("docs/scaling.md"),
        "{}",
        ran.err
    );
    let ran = home.run(&["scale", "pool/chat", "--replicas", "17"]).await;
    assert_eq!(
        (ran.code, ran.err.as_str()),
        (
            1,
            "error: pool `chat` cannot be scaled so: spec.replicas: 17 is above the maximum of 16; use fewer replicas\n"
        )
    );
    let ran = home.run(&["scale", "pool/nope", "--replicas", "1"]).await;
    assert!(ran.err.starts_with("error: pool `nope` not found"), "{}", ran.err);
    let ran = home.run(&["scale", "model/tiny", "--replicas", "1"]).await;
    assert!(
        ran.err
            .contains("only pools can be drained, reloaded, woken, scaled or checked"),
        "{}",
        ran.err
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn scale_needs_a_size_and_only_one_kind_of_it() {
    let parse =
        |args: &[&str]| orchctl::cli::Cli::try_parse_from([&["orchctl", "scale", "pool/chat"][..], args].concat());
    assert!(parse(&[]).is_err(), "no size");
    assert!(parse(&["--replicas", "2", "--max", "3"]).is_err(), "both kinds");
    assert!(parse(&["--replicas", "-1"]).is_err(), "not a count");
    assert!(parse(&["--min", "1"]).is_ok() && parse(&["--min", "0", "--max", "2"]).is_ok());
}
