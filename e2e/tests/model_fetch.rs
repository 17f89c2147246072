//! End-to-end: remote models through the real `llama-orchd`, real Docker and the mock engine,
//! fetched from a loopback HTTP server in this test (Range support, a switch that cuts the
//! next body after half its bytes, a record of every request).
//!
//! - a download cut halfway resumes with `Range` and completes → Model Ready → Pool Ready;
//! - a wrong digest → Model Failed naming both digests, no container ever, no partial file;
//! - `models.downloads: false` → refused with the reason (and a pull answers 403); a host not
//!   in `models.allowHosts` → refused, and the server is never asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, pool_status};
use llorch_manifests::Kind;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::{ConditionType, ModelPhase, ObjectStatus};

const WITHIN: Duration = Duration::from_secs(60);

/// A one-file HTTP/1.1 server on a loopback port.
struct FileServer {
    base: String,
    body: Vec<u8>,
    cut_next: AtomicBool,
    /// Each request's `Range` header (`None` without one).
    ranges: Mutex<Vec<Option<String>>>,
}

impl FileServer {
    fn start(body: Vec<u8>) -> Arc<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(FileServer {
            base: format!("http://{}", listener.local_addr().unwrap()),
            body,
            cut_next: AtomicBool::new(false),
            ranges: Mutex::new(Vec::new()),
        });
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.serve(conn));
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("{}/models/tiny.gguf", self.base)
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }

    fn serve(&self, mut conn: TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let headers: HashMap<String, String> = text
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let range = headers.get("range").cloned();
        self.ranges.lock().unwrap().push(range.clone());
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|s| *s < self.body.len());
        let (status, extra, body) = match start {
            Some(s) => (
                "206 Partial Content",
                format!(
                    "Content-Range: bytes {s}-{}/{}\r\n",
                    self.body.len() - 1,
                    self.body.len()
                ),
                &self.body[s..],
            ),
            None => ("200 OK", String::new(), &self.body[..]),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let send = if self.cut_next.swap(false, Ordering::SeqCst) {
            &body[..body.len() / 2]
        } else {
            body
        };
        let _ = conn.write_all(send);
        let _ = conn.flush();
    }
}

fn sha256(bytes: &[u8]) -> String {
    use llorch_controller::catalog::cache;
    cache::digest_of_hex(&cache::sha256_hex(bytes))
}

/// A daemon whose config has `models:` set to `models_yaml` (indented under `models:`).
fn daemon_with_models(models_yaml: &str) -> Daemon {
    let mut d = Daemon::start(Runtime::docker());
    let path = d.home.path().join("config.yaml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        "models:\n  cacheDir: {}\n{models_yaml}",
        d.home.path().join("cache").display()
    ));
    std::fs::write(&path, config).unwrap();
    d.kill_and_restart();
    d
}

fn cache(d: &Daemon) -> PathBuf {
    d.home.path().join("cache")
}

/// The mock stack with its Model pointing at `url` (and `digest`).
fn remote_stack(d: &Daemon, url: &str, digest: Option<&str>) -> String {
    let stack = mock_stack("mock", "chat", 1, &d.model_path(), &[]);
    let local = format!("ref: file:{}", d.model_path().display());
    let remote = match digest {
        Some(digest) => format!("ref: {url}\n  digest: {digest}"),
        None => format!("ref: {url}"),
    };
    assert!(stack.contains(&local));
    stack.replace(&local, &remote)
}

fn model_status<'a>(s: &'a Snapshot, name: &str) -> Option<&'a ObjectStatus> {
    s.objects
        .iter()
        .find(|o| o.object.kind == Kind::Model && o.object.name == name)
        .map(|o| &o.status)
}

fn model_failed(s: &Snapshot) -> bool {
    model_status(s, "chat-model")
        .and_then(|st| st.model.as_ref())
        .is_some_and(|m| m.phase == ModelPhase::Failed)
}

fn degraded(s: &Snapshot) -> (String, String) {
    let c = model_status(s, "chat-model")
        .and_then(|st| st.condition(ConditionType::Degraded))
        .cloned()
        .expect("a Degraded condition");
    (c.reason.as_str().to_string(), c.message)
}

fn files_in(dir: PathBuf) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn a_cut_download_resumes_with_range_and_its_pool_becomes_ready() {
    let body = llorch_gguf::fixture::tiny_model("llama");
    let server = FileServer::start(body.clone());
    server.cut_next.store(true, Ordering::SeqCst);
    let d = daemon_with_models("  allowHosts: [\"127.0.0.1\"]\n");
    d.write_manifest("stack.yaml", &remote_stack(&d, &server.url(), Some(&sha256(&body))));

    let started = Instant::now();
    let s = d.wait_for("Pool chat Ready on the fetched model", WITHIN, |s| {
        pool_ready(s, "chat", 1)
    });
    let took = started.elapsed();
    let m = model_status(&s, "chat-model").unwrap().model.clone().unwrap();
    assert_eq!(m.phase, ModelPhase::Ready);
    assert_eq!(m.digest.as_deref(), Some(sha256(&body).as_str()));
    assert_eq!(
        (m.bytes_done, m.bytes_total),
        (body.len() as u64, Some(body.len() as u64))
    );
    let path = PathBuf::from(m.path.unwrap());
    assert!(path.starts_with(cache(&d).join("blobs/sha256")), "{}", path.display());
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(m.source_url.as_deref(), Some(server.url().as_str()));
    assert_eq!(m.vram.unwrap().source, "gguf");

    let ranges = server.ranges();
    assert_eq!(ranges.len(), 2, "one cut request and one resume: {ranges:?}");
    assert_eq!(ranges[0], None);
    assert_eq!(
        ranges[1],
        Some(format!("bytes={}-", body.len() / 2)),
        "the resume asked for the rest"
    );
    assert_eq!(files_in(cache(&d).join("partial")), 0, "no partial file left");

    let list = d.orchctl(&["models", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let row = text
        .lines()
        .find(|l| l.starts_with("chat-model"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("Active") && row.contains(&sha256(&body)[..19]), "{row}");

    // Pulling a Ready model re-checks it and reports it Ready; nothing is downloaded again.
    let pull = d.orchctl(&["models", "pull", "chat-model"]);
    assert!(pull.status.success(), "{}", String::from_utf8_lossy(&pull.stderr));
    assert!(String::from_utf8_lossy(&pull.stdout).contains("model/chat-model ready"));
    assert_eq!(server.ranges().len(), 2);

    let metrics = reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"model_state{model="chat-model",phase="ready"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"catalog_verifications_total{result="ok"} 1"#),
        "{metrics}"
    );
    let events = String::from_utf8_lossy(&d.orchctl(&["events"]).stdout).to_string();
    assert!(
        events.contains("FetchStarted") && events.contains("FetchCompleted"),
        "{events}"
    );
    eprintln!("cut download resumed, verified and served: Pool Ready {took:?} after the manifest was written");
}

#[test]
fn a_wrong_digest_fails_the_model_and_its_pool_never_starts_a_container() {
    let body = llorch_gguf::fixture::tiny_model("llama");
    let server = FileServer::start(body.clone());
    let d = daemon_with_models("  allowHosts: [\"127.0.0.1\"]\n");
    let wrong = format!("sha256:{}", "0".repeat(64));
    d.write_manifest("stack.yaml", &remote_stack(&d, &server.url(), Some(&wrong)));

    let s = d.wait_for("Model chat-model Failed", WITHIN, model_failed);
    let (reason, message) = degraded(&s);
    assert_eq!(reason, "DigestMismatch");
    assert!(
        message.contains(&wrong) && message.contains(&sha256(&body)),
        "{message}"
    );
    // Its Pool stays blocked and no container is ever created, through several passes.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let s = d.snapshot();
        let pool = pool_status(&s, "chat").expect("pool status");
        assert!(!pool.is_ready(), "{pool:?}");
        assert!(
            d.container_ids().is_empty(),
            "a container was created for a failed model"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let pool = pool_status(&d.snapshot(), "chat").cloned().unwrap();
    let blocked = pool.condition(ConditionType::Degraded).unwrap();
    assert!(
        blocked.message.contains("Model `chat-model` is not usable"),
        "{blocked:?}"
    );
    assert_eq!(files_in(cache(&d).join("partial")), 0, "the partial file was deleted");
    assert_eq!(files_in(cache(&d).join("blobs/sha256")), 0, "nothing entered the cache");

    let pull = d.orchctl(&["models", "pull", "chat-model"]);
    assert_eq!(pull.status.code(), Some(1));
    let err = String::from_utf8_lossy(&pull.stderr);
    assert!(err.contains("DigestMismatch"), "{err}");
}

#[test]
fn downloads_off_or_a_host_not_allowed_are_refused_with_the_reason() {
    let body = llorch_gguf::fixture::tiny_model("llama");
    let server = FileServer::start(body.clone());

    let d = daemon_with_models("  downloads: false\n  allowHosts: [\"127.0.0.1\"]\n");
    d.write_manifest("stack.yaml", &remote_stack(&d, &server.url(), Some(&sha256(&body))));
    let s = d.wait_for("Model refused: downloads off", WITHIN, model_failed);
    let (reason, message) = degraded(&s);
    assert_eq!(reason, "DownloadsDisabled");
    assert!(
        message.contains("models.downloads: false") && message.contains("curl -L -o"),
        "{message}"
    );
    let pull = reqwest::blocking::Client::new()
        .post(format!("{}/v2/models/chat-model/pull", d.url))
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(pull.status().as_u16(), 403);
    let body_json: serde_json::Value = pull.json().unwrap();
    assert_eq!(body_json["code"], "POLICY_REFUSED");
    assert!(
        body_json["message"]
            .as_str()
            .unwrap()
            .contains("models.downloads: false")
    );
    drop(d);

    let d = daemon_with_models("  allowHosts: [\"example.com\"]\n");
    d.write_manifest("stack.yaml", &remote_stack(&d, &server.url(), Some(&sha256(&body))));
    let s = d.wait_for("Model refused: host not allowed", WITHIN, model_failed);
    let (reason, message) = degraded(&s);
    assert_eq!(reason, "HostNotAllowed");
    assert!(
        message.contains("host `127.0.0.1` is not in `models.allowHosts` (example.com); add it"),
        "{message}"
    );
    assert!(server.ranges().is_empty(), "the server was never asked");
    assert!(d.container_ids().is_empty());
}

#[test]
fn a_catalog_index_from_a_newer_llama_orch_stops_the_daemon_and_is_left_untouched() {
    let mut d = daemon_with_models("");
    d.kill();
    let index = d.home.path().join("state/catalog.json");
    let newer = r#"{"schemaVersion": 99, "entries": []}"#;
    std::fs::write(&index, newer).unwrap();
    let out = std::process::Command::new(llama_orch_e2e::daemon::bin("llama-orchd"))
        .env("LLAMA_ORCH_HOME", d.home.path())
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("catalog.json has schemaVersion 99") && stderr.contains("upgrade llama-orchd"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&index).unwrap(), newer);
}
