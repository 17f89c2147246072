//! End-to-end: a corpus of malformed manifests (ORCH-3030, OC-CONFIG-6001). Each one, dropped
//! into the watched directory, yields an error naming its file (and field, where there is
//! one) in the daemon's status; each one, given to `orchctl apply`, is refused with the same
//! kind of message and writes nothing. Throughout, the daemon stays healthy and a running,
//! valid Pool keeps exactly its containers. Special files named like manifests (a FIFO, a
//! link to a device) are refused at once: neither the daemon nor orchctl waits on them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use llama_orch_e2e::bad_input::{Body, POOL_OK, corpus, pool};
use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, replica_containers};
use llorch_manifests::api::Snapshot;

fn put(dir: &Path, file: &str, body: &Body) {
    let path = dir.join(file);
    match body {
        Body::Text(s) => std::fs::write(&path, s).unwrap(),
        Body::Bytes(b) => std::fs::write(&path, b).unwrap(),
        Body::SymlinkLoop => std::os::unix::fs::symlink(file, &path).unwrap(),
        Body::DanglingSymlink => std::os::unix::fs::symlink("/nonexistent/llorch.yaml", &path).unwrap(),
        Body::SymlinkTo(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        Body::Fifo => {
            let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
            assert!(made.success(), "mkfifo {}", path.display());
        }
    }
}

/// Every error the snapshot shows, as text.
fn all_errors(s: &Snapshot) -> Vec<String> {
    s.file_errors
        .iter()
        .chain(s.objects.iter().flat_map(|o| o.status.manifest_errors.iter()))
        .map(ToString::to_string)
        .collect()
}

fn bad_inputs_are_reported_and_change_nothing(rt: Runtime) {
    let mut d = Daemon::start(rt);
    d.write_manifest("good.yaml", &mock_stack("mock", "chat", 1, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready", Duration::from_secs(20), |s| pool_ready(s, "chat", 1));
    let good_ids = replica_containers(&s, "chat");
    let outside = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    for case in &cases {
        let file = format!("bad-{}.yaml", case.name);
        // 1. Through the watched directory.
        put(&d.manifests_dir(), &file, &case.body);
        let s = d.wait_for(
            &format!("an error for {file} containing {:?}", case.needle),
            // Generous: the alias bomb alone costs the debug parser ~2.5 s of CPU before its
            // node budget stops it, and a loaded 2-core machine stretches that.
            Duration::from_secs(30),
            |s| {
                all_errors(s)
                    .iter()
                    .any(|e| e.contains(&file) && e.contains(case.needle))
            },
        );
        assert!(pool_ready(&s, "chat", 1), "{}: the good pool stays Ready", case.name);
        assert_eq!(
            replica_containers(&s, "chat"),
            good_ids,
            "{}: the good pool's containers are untouched",
            case.name
        );
        std::fs::remove_file(d.manifests_dir().join(&file)).unwrap();
        assert!(d.is_healthy(), "{}: the daemon is healthy", case.name);

        // 2. Through `orchctl apply`: refused, nothing written.
        put(outside.path(), &file, &case.body);
        let before: Vec<_> = std::fs::read_dir(d.manifests_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let out = d.orchctl(&["apply", "-f", &outside.path().join(&file).display().to_string()]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{}: orchctl apply must fail; it said: {text}",
            case.name
        );
        assert!(
            text.contains(&file),
            "{}: orchctl names the file; it said: {text}",
            case.name
        );
        let after: Vec<_> = std::fs::read_dir(d.manifests_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "{}: orchctl apply wrote nothing", case.name);
    }
    // The file caught mid-write, once complete, is accepted.
    d.write_manifest("late.yaml", &pool(POOL_OK));
    d.wait_for("p1 accepted once complete", Duration::from_secs(20), |s| {
        pool_ready(s, "p1", 1)
    });
    assert_eq!(replica_containers(&d.snapshot(), "chat"), good_ids);
    assert!(d.is_healthy());
    d.kill();
}

#[test]
fn docker_bad_inputs_are_reported_and_change_nothing() {
    bad_inputs_are_reported_and_change_nothing(Runtime::docker());
}

#[test]
fn podman_bad_inputs_are_reported_and_change_nothing() {
    bad_inputs_are_reported_and_change_nothing(Runtime::podman());
}
