//! The process runtime against real processes (`sleep`, `sh`): start, list, exit status,
//! adoption by a second runtime on the same records, stop, and the refusal of a missing
//! executable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;

use super::*;
use crate::runtime::GpuAttachment;

fn spec(executable: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: format!("t-{}", std::process::id()),
        image: String::new(),
        launch: Launch::Executable(executable.into()),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![("LLORCH_TEST".into(), "1".into())],
        labels: BTreeMap::from([("pool".to_string(), "p".to_string())]),
        container_port: 8080,
        mounts: Vec::new(),
        gpus: GpuAttachment::None,
    }
}

fn selector() -> Vec<(String, String)> {
    vec![("pool".into(), "p".into())]
}

async fn next_action(events: &mut EventStream) -> String {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("no error")
        .action
}

#[tokio::test]
async fn a_started_process_runs_on_its_port_and_its_exit_status_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(dir.path()).unwrap();
    let mut events = rt.events(&selector());
    let started = rt
        .create_and_start(&spec("sh", &["-c", "echo listening on {port}; exit 3"]))
        .await
        .unwrap();
    assert!(ProcessRuntime::owns(&started.id));
    let port = started.host_port.expect("a port while running");
    assert_eq!(next_action(&mut events).await, "start");
    assert_eq!(next_action(&mut events).await, "die");
    let listed = rt.list(&selector()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Exited(3));
    assert_eq!(listed[0].host_port, None);
    assert_eq!(
        rt.logs_tail(&started.id, 5).await.unwrap(),
        [format!("listening on {port}")]
    );
    rt.remove(&started.id).await.unwrap();
    assert!(rt.list(&selector()).await.unwrap().is_empty());
    rt.remove(&started.id).await.unwrap();
}

#[tokio::test]
async fn a_second_runtime_adopts_a_live_process_and_sees_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let first = ProcessRuntime::open(dir.path()).unwrap();
    let started = first.create_and_start(&spec("sleep", &["30"])).await.unwrap();
    let record = first.inner.store.load(&started.id).unwrap();
    // A "restarted daemon": a fresh runtime over the same records.
    let second = ProcessRuntime::open(dir.path()).unwrap();
    let mut events = second.events(&selector());
    let listed = second.list(&selector()).await.unwrap();
    assert_eq!(listed[0].id, started.id);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert_eq!(listed[0].host_port, started.host_port);
    // Killed from outside: the adopted process is polled and reported gone.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(record.pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert_eq!(next_action(&mut events).await, "die");
    let listed = second.list(&selector()).await.unwrap();
    assert!(!listed[0].state.is_running(), "{:?}", listed[0].state);
    second.remove(&started.id).await.unwrap();
    assert!(second.list(&selector()).await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_stops_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(dir.path()).unwrap();
    let started = rt.create_and_start(&spec("sleep", &["30"])).await.unwrap();
    let record = rt.inner.store.load(&started.id).unwrap();
    assert!(procfs::is_alive(record.pid, record.start_ticks));
    rt.remove(&started.id).await.unwrap();
    assert!(!procfs::is_alive(record.pid, record.start_ticks));
    assert!(rt.list(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_executable_is_refused_with_what_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(dir.path()).unwrap();
    assert!(!rt.image_exists("llorch-no-such-engine").await.unwrap());
    let err = rt
        .create_and_start(&spec("llorch-no-such-engine", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`llorch-no-such-engine` is not on PATH"), "{err}");
    assert!(rt.list(&[]).await.unwrap().is_empty(), "nothing recorded");
}

#[tokio::test]
async fn the_pids_of_a_process_engine_are_its_own_and_its_childrens_and_none_once_removed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(dir.path()).unwrap();
    let started = rt
        .create_and_start(&spec("sh", &["-c", "sleep 30 & echo child $!; wait"]))
        .await
        .unwrap();
    // The log line comes after the fork: poll for it (no event says a line was written).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let child: u32 = loop {
        let lines = rt.logs_tail(&started.id, 5).await.unwrap();
        if let Some(pid) = lines.iter().find_map(|l| l.strip_prefix("child ")) {
            break pid.trim().parse().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no child line in {lines:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let record = rt.inner.store.load(&started.id).unwrap();
    let pids = rt.pids(&started.id).await.unwrap();
    assert!(
        pids.contains(&record.pid) && pids.contains(&child),
        "{pids:?} lacks {} or {child}",
        record.pid
    );
    rt.remove(&started.id).await.unwrap();
    assert!(rt.pids(&started.id).await.unwrap().is_empty());
}
