//! The ModelManager against real files and a loopback HTTP server: local files in place,
//! verification, policy refusals that come at once, downloads that resume, the catalog's
//! lifecycle, GGUF figures and overrides, hub resolution and a token that never shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llorch_manifests::api::Lifecycle;
use llorch_manifests::status::ModelState;

use super::*;
use crate::catalog::testserver::{Route, Server};

fn spec(reference: &str, digest: Option<&str>) -> ModelSpec {
    ModelSpec {
        reference: reference.into(),
        digest: digest.map(String::from),
        ctx_max: 64,
        vram_bytes: None,
    }
}

fn gguf() -> Vec<u8> {
    llorch_gguf::fixture::tiny_model("llama")
}

fn sha(b: &[u8]) -> String {
    cache::digest_of_hex(&cache::sha256_hex(b))
}

fn manager(dir: &Path, downloads: bool, hosts: &[&str], hub: &str, token: Option<&str>) -> ModelManager {
    ModelManager::new(
        ModelsSettings {
            cache_dir: Some(dir.join("cache")),
            index_file: Some(dir.join("state/catalog.json")),
            config: ModelsConfig {
                cache_dir: None,
                downloads,
                allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
                ..ModelsConfig::default()
            },
            hf_token: token.and_then(Secret::new),
            hub: hub.into(),
            file_roots: FileRoots::Anywhere,
        },
        Arc::new(Notify::new()),
    )
    .unwrap()
}

/// Observes until `done` holds (10 s at most), as the controller's passes would.
async fn observe_until(
    m: &mut ModelManager,
    name: &str,
    s: &ModelSpec,
    manifest: &Path,
    done: impl Fn(&ModelState) -> bool,
) -> ModelState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = m.observe(name, s, manifest);
        if done(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; last state {st:?}, problem {:?}",
            m.problem(name)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_local_file_without_digest_is_ready_at_once_and_recorded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.gguf"), gguf()).unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &[], hf::HUB, None);
    let s = spec("file:m.gguf", None);
    let st = m.observe("tiny", &s, &manifest);
    assert_eq!(st.phase, ModelPhase::Ready);
    assert!(st.path.as_deref().unwrap().ends_with("m.gguf"));
    assert!(m.ready("tiny").is_some());
    let st = observe_until(&mut m, "tiny", &s, &manifest, |st| st.digest.is_some()).await;
    assert_eq!(st.digest.as_deref(), Some(sha(&gguf()).as_str()));
    m.retain(&BTreeSet::from(["tiny".to_string()]));
    let entries = m.handle().entries();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].path.ends_with("m.gguf"), "used in place, not copied");
    assert_eq!(entries[0].lifecycle, Lifecycle::Active);
    assert!(
        !dir.path().join("cache/blobs/sha256").exists()
            || std::fs::read_dir(dir.path().join("cache/blobs/sha256"))
                .unwrap()
                .count()
                == 0
    );
}

#[tokio::test]
async fn a_local_file_with_a_wrong_digest_fails_naming_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.gguf"), gguf()).unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &[], hf::HUB, None);
    let wrong = format!("sha256:{}", "1".repeat(64));
    let s = spec("file:m.gguf", Some(&wrong));
    let st = m.observe("tiny", &s, &manifest);
    assert_ne!(st.phase, ModelPhase::Ready, "not usable before it is verified");
    observe_until(&mut m, "tiny", &s, &manifest, |st| st.phase == ModelPhase::Failed).await;
    let p = m.problem("tiny").unwrap();
    assert_eq!(p.reason, Reason::DigestMismatch);
    assert!(
        p.message.contains(&wrong) && p.message.contains(&sha(&gguf())),
        "{}",
        p.message
    );
    assert!(m.ready("tiny").is_none());
    assert_eq!(m.handle().verifications()[1], ("mismatch", 1));

    let good = spec("file:m.gguf", Some(&sha(&gguf())));
    observe_until(&mut m, "tiny", &good, &manifest, |st| st.phase == ModelPhase::Ready).await;
    assert_eq!(m.handle().verifications()[0], ("ok", 1));
}

#[tokio::test]
async fn policy_refusals_are_immediate_and_pull_repeats_them() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut off = manager(dir.path(), false, &["example.com"], hf::HUB, None);
    let s = spec("https://example.com/m/tiny.gguf", None);
    let st = off.observe("tiny", &s, &manifest);
    assert_eq!(st.phase, ModelPhase::Failed);
    let p = off.problem("tiny").unwrap();
    assert_eq!(p.reason, Reason::DownloadsDisabled);
    assert!(
        p.message
            .contains("curl -L -o tiny.gguf https://example.com/m/tiny.gguf"),
        "{}",
        p.message
    );
    match off.handle().pull("tiny") {
        Err(PullError::Policy(msg)) => assert!(msg.contains("models.downloads: false"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(off.handle().pull("nope"), Err(PullError::NotFound(_))));

    let mut on = manager(dir.path(), true, &["hf.co"], hf::HUB, None);
    on.observe("tiny", &s, &manifest);
    assert_eq!(on.problem("tiny").unwrap().reason, Reason::HostNotAllowed);
    let hf_ref = spec("hf:org/repo/x.gguf", None);
    on.observe("h", &hf_ref, &manifest);
    let p = on.problem("h").unwrap();
    assert!(
        p.message
            .contains("host `huggingface.co` is not in `models.allowHosts` (hf.co)"),
        "{}",
        p.message
    );
}

#[tokio::test]
async fn a_remote_model_is_fetched_resumed_verified_and_retired_when_undeclared() {
    let server = Server::start().await;
    let body = gguf();
    server.route("/tiny.gguf", Route::Body(body.clone()));
    server.cut_next();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &["127.0.0.1"], hf::HUB, None);
    let s = spec(&format!("{}/tiny.gguf", server.base), Some(&sha(&body)));
    let st = observe_until(&mut m, "tiny", &s, &manifest, |st| st.phase == ModelPhase::Ready).await;
    assert_eq!(st.bytes_done, body.len() as u64);
    assert_eq!(st.bytes_total, Some(body.len() as u64));
    let (path, _) = m.ready("tiny").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(path.starts_with(dir.path().join("cache/blobs/sha256")));
    assert!(
        server.seen().iter().any(|r| r.headers.contains_key("range")),
        "resumed with Range"
    );

    m.retain(&BTreeSet::from(["tiny".to_string()]));
    let index = std::fs::read_to_string(dir.path().join("state/catalog.json")).unwrap();
    assert!(index.contains("\"Active\""), "{index}");
    m.retain(&BTreeSet::new());
    let e = &m.handle().entries()[0];
    assert_eq!(e.lifecycle, Lifecycle::Retired);
    assert!(Path::new(&e.path).exists(), "a retired artifact stays on disk");

    // A new manager (a daemon restart) finds it in the cache without asking the server.
    let asked = server.seen().len();
    let mut again = manager(dir.path(), false, &[], hf::HUB, None);
    let st = again.observe("tiny", &s, &manifest);
    let st = if st.phase == ModelPhase::Ready {
        st
    } else {
        observe_until(&mut again, "tiny", &s, &manifest, |st| st.phase == ModelPhase::Ready).await
    };
    assert_eq!(st.path.as_deref(), Some(path.to_str().unwrap()));
    assert_eq!(server.seen().len(), asked);
}

#[tokio::test]
async fn a_model_deleted_mid_download_stops_its_fetch_and_a_later_one_resumes_the_partial_file() {
    let server = Server::start().await;
    let body = gguf();
    server.route("/tiny.gguf", Route::Body(body.clone()));
    server.stall_next();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &["127.0.0.1"], hf::HUB, None);
    let s = spec(&format!("{}/tiny.gguf", server.base), Some(&sha(&body)));
    observe_until(&mut m, "tiny", &s, &manifest, |st| {
        st.phase == ModelPhase::Fetching && st.bytes_done >= body.len() as u64 / 2
    })
    .await;
    m.retain(&BTreeSet::new());
    assert!(lock(&m.shared.jobs).is_empty(), "the fetch was dropped with its Model");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.closed_while_stalled() {
        assert!(Instant::now() < deadline, "the download was not stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let partial = dir
        .path()
        .join("cache/partial")
        .join(format!("{}.part", &sha(&body)[7..]));
    assert_eq!(
        std::fs::metadata(&partial).unwrap().len(),
        body.len() as u64 / 2,
        "the partial file stays"
    );

    // Declared again (or after a restart): the download resumes where the partial file ends.
    let st = observe_until(&mut m, "tiny", &s, &manifest, |st| st.phase == ModelPhase::Ready).await;
    assert_eq!(std::fs::read(st.path.unwrap()).unwrap(), body);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].headers["range"], format!("bytes={}-", body.len() / 2));
}

#[tokio::test]
async fn gguf_headers_give_vram_figures_and_vram_bytes_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.gguf"), llorch_gguf::fixture::tiny_model("llama")).unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &[], hf::HUB, None);
    let st = m.observe("tiny", &spec("file:m.gguf", None), &manifest);
    let vram = st.vram.unwrap();
    assert_eq!(vram.source, "gguf");
    let summary = llorch_gguf::read_summary(&dir.path().join("m.gguf")).unwrap();
    assert_eq!(vram.weights_bytes, summary.tensor_bytes);
    assert_eq!(vram.kv_bytes_per_token, summary.kv_bytes_per_token());
    assert_eq!(st.gguf.unwrap().architecture, "llama");

    let mut over = spec("file:m.gguf", None);
    over.vram_bytes = Some(123);
    let st = m.observe("big", &over, &manifest);
    assert_eq!(
        st.vram,
        Some(ModelVram {
            source: "override".into(),
            weights_bytes: 123,
            kv_bytes_per_token: 0
        })
    );
    assert_eq!(m.ready("big").unwrap().1.weights_bytes, 123);
}

#[tokio::test]
async fn a_file_that_is_not_gguf_fails_unless_vram_bytes_is_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.bin"), b"not a model").unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &[], hf::HUB, None);
    let st = m.observe("x", &spec("file:m.bin", None), &manifest);
    assert_eq!(st.phase, ModelPhase::Failed);
    let p = m.problem("x").unwrap();
    assert_eq!(p.reason, Reason::NotGguf);
    assert!(
        p.message.contains("is not a GGUF file") && p.message.contains("set `spec.vramBytes`"),
        "{}",
        p.message
    );
    assert!(
        m.usable("x")
            .unwrap_err()
            .to_string()
            .starts_with("Model `x` is not usable: ")
    );

    let mut with_override = spec("file:m.bin", None);
    with_override.vram_bytes = Some(1 << 30);
    let st = m.observe("x", &with_override, &manifest);
    assert_eq!(st.phase, ModelPhase::Ready);
    assert_eq!(st.vram.unwrap().source, "override");
    assert!(st.gguf.is_none());
}

#[tokio::test]
async fn an_hf_repository_reference_downloads_its_only_gguf_and_the_token_never_shows() {
    let server = Server::start().await;
    let token = "hf_TOPSECRET0123";
    let json = br#"{"siblings":[{"rfilename":"a.gguf"},{"rfilename":"b.gguf"}]}"#.to_vec();
    server.route("/api/models/org/two", Route::Body(json));
    server.route(
        "/api/models/org/one",
        Route::Body(br#"{"siblings":[{"rfilename":"q.gguf"}]}"#.to_vec()),
    );
    server.route("/org/one/resolve/main/q.gguf", Route::Body(gguf()));
    server.route("/org/gated/resolve/main/x.gguf", Route::Status(401));
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("model.yaml");
    let mut m = manager(dir.path(), true, &["127.0.0.1"], &server.base, Some(token));

    let one = spec("hf:org/one", None);
    let st = observe_until(&mut m, "one", &one, &manifest, |st| st.phase == ModelPhase::Ready).await;
    assert_eq!(std::fs::read(st.path.unwrap()).unwrap(), gguf());

    let two = spec("hf:org/two", None);
    observe_until(&mut m, "two", &two, &manifest, |st| st.phase == ModelPhase::Failed).await;
    let p = m.problem("two").unwrap();
    assert!(p.message.contains("2 .gguf files (a.gguf, b.gguf)"), "{}", p.message);

    let gated = spec("hf:org/gated/x.gguf", None);
    let st = observe_until(&mut m, "gated", &gated, &manifest, |st| st.phase == ModelPhase::Failed).await;
    let p = m.problem("gated").unwrap();
    let everything = format!("{st:?} {p:?} {:?} {:?}", m, m.handle().entries());
    assert!(!everything.contains(token), "{everything}");
    assert!(p.message.contains("HTTP 401"), "{}", p.message);
}
