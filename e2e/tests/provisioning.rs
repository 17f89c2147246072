//! End-to-end: provisioning modes through a real `llama-orchd`.
//! - `binary`: the mock engine (`target/debug/mock-engine`) as a plain process — Pool Ready, a
//!   task streams, `kill -9` → restarted with backoff (counted, evented), daemon SIGKILL +
//!   restart → the same pid adopted, Pool deleted → process gone; `orchctl plan` twice gives
//!   the same bytes.
//! - `external`: a mock engine started by the test; Pool Ready, a task streams; stopped → NotReady.
//! - A daemon whose manifests declare only process engines starts without Docker/Podman.
//! - `gpus: none` with no runtime reachable: an `external` Pool serves (SSE and `orchctl run`),
//!   a container Pool is blocked with the reason, and no Model is fetched for either.
//! - `container`: a missing image with pulls off says so on the Engine, with the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, pool_ready, pool_status, replica_containers};
use llama_orch_e2e::sse::{TaskClient, tokens};
use llorch_manifests::api::Snapshot;
use serde_json::json;

const READY: Duration = Duration::from_secs(30);

/// SIGKILLs every engine process a daemon recorded under `<home>/state/processes` when dropped,
/// so a failing test leaves nothing running. Declare it after the [`Daemon`] (drops first).
struct ProcessGuard(PathBuf);

impl ProcessGuard {
    fn pids(&self) -> Vec<u32> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .filter_map(|v| v["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).status();
        }
    }
}

/// Start time of `pid` from /proc (field 22), `None` when gone or a zombie.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (!matches!(fields.first(), Some(&"Z") | Some(&"X"))).then(|| fields.get(19)?.parse().ok())?
}

fn pid_of(container_id: &str) -> u32 {
    let rest = container_id.strip_prefix("proc-").expect("a process replica");
    rest.split('-').next().unwrap().parse().unwrap()
}

/// Config lines that let `binary` Engines run the mock engine (and nothing else).
fn allow_mock_engine() -> String {
    format!(
        "provisioning:\n  allowedExecutables: [{}]\n",
        bin("mock-engine").display()
    )
}

fn binary_stack(executable: &Path, model: &Path, extra: &str) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock-bin}}\nspec:\n  provisioning: binary\n  \
         executable: {}\n  version: \"0.1.0\"\n{extra}  health: {{path: /health, intervalMs: 200}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:{}', ctxMax: 4096}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec:\n  engine: mock-bin\n  model: tiny\n  \
         replicas: 1\n  slotsPerReplica: 2\n  restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n",
        executable.display(),
        model.display()
    )
}

fn the_replica(s: &Snapshot) -> String {
    replica_containers(s, "chat")[0]
        .clone()
        .expect("a replica with a process")
}

fn events_text(d: &Daemon) -> String {
    reqwest::blocking::get(format!("{}/v2/events?kind=pool&name=chat&limit=1000", d.url))
        .and_then(|r| r.text())
        .unwrap()
}

fn streams_a_task(d: &Daemon) {
    let c = TaskClient::new(&d.url);
    let a = c.submit(&json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 6, "seed": 3}));
    assert_eq!(a.status, 202, "{:?}", a.body);
    let events = c.events(a.body["task_id"].as_str().unwrap());
    assert_eq!(tokens(&events).len(), 6, "{events:?}");
    assert_eq!(events.last().unwrap().event, "end");
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_mode_runs_restarts_adopts_and_removes_a_plain_process() {
    let mut d = Daemon::start_with(Runtime::docker(), &allow_mock_engine());
    let guard = ProcessGuard(d.home.path().join("state/processes"));
    let t0 = Instant::now();
    d.write_manifest("chat.yaml", &binary_stack(&bin("mock-engine"), &d.model_path(), ""));
    let s = d.wait_for("pool chat Ready on a process", READY, |s| pool_ready(s, "chat", 1));
    eprintln!("binary: manifest written → Pool Ready in {:?}", t0.elapsed());
    let first = the_replica(&s);
    let pid = pid_of(&first);
    let replica = &s.replicas[0];
    let endpoint = replica.endpoint.as_ref().expect("an endpoint");
    assert!(endpoint.as_str().starts_with("http://127.0.0.1:"), "{endpoint}");
    assert!(start_ticks(pid).is_some(), "pid {pid} runs");
    assert!(d.container_ids().is_empty(), "no container was created");
    streams_a_task(&d);
    let logs = d.orchctl(&["logs", "chat/0"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("HTTP server is listening"),
        "the process's own log: {logs}"
    );

    // Plan: deterministic, and it names the process.
    let plan = |d: &Daemon| d.orchctl(&["plan", "pool/chat"]);
    let (p1, p2) = (plan(&d), plan(&d));
    assert!(p1.status.success(), "{}", String::from_utf8_lossy(&p1.stderr));
    assert_eq!(p1.stdout, p2.stdout, "same input, same bytes");
    let text = String::from_utf8_lossy(&p1.stdout);
    assert!(text.contains("replica 0: process llorch-"), "{text}");
    assert!(
        text.contains(&format!("executable: {}", bin("mock-engine").display())),
        "{text}"
    );

    // kill -9 → restarted through the backoff, counted and evented.
    let t0 = Instant::now();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let s = d.wait_for("a new process Ready", READY, |s| {
        pool_ready(s, "chat", 1)
            && replica_containers(s, "chat")[0]
                .as_deref()
                .is_some_and(|id| id != first)
    });
    eprintln!("binary: kill -9 → replacement Ready in {:?}", t0.elapsed());
    let st = pool_status(&s, "chat").unwrap();
    assert!(st.restarts >= 1, "restart counted: {st:?}");
    let events = events_text(&d);
    assert!(events.contains("EngineCrashed"), "{events}");
    assert!(
        events.contains("exited with code 137"),
        "the daemon was the parent: {events}"
    );
    let second = the_replica(&s);
    let pid2 = pid_of(&second);
    let ticks2 = start_ticks(pid2).unwrap();

    // Daemon SIGKILL + restart → the same process adopted, not restarted.
    let t0 = Instant::now();
    d.kill_and_restart();
    let s = d.wait_for("adopted and Ready", READY, |s| pool_ready(s, "chat", 1));
    eprintln!(
        "binary: daemon SIGKILL + restart → adopted and Ready in {:?}",
        t0.elapsed()
    );
    assert_eq!(the_replica(&s), second, "same process id");
    assert_eq!(start_ticks(pid2), Some(ticks2), "the same process still runs");
    assert!(events_text(&d).contains("ReplicaAdopted"));
    streams_a_task(&d);

    // Delete the Pool → the process goes.
    d.delete_manifest("chat.yaml");
    d.wait_for("pool gone", READY, |s| {
        pool_status(s, "chat").is_none() && s.replicas.is_empty()
    });
    wait_until("the process to exit", READY, || start_ticks(pid2).is_none());
    wait_until("its record to go", READY, || guard.pids().is_empty());
}

#[test]
fn an_engine_killed_while_the_daemon_is_down_is_restarted_after_it_comes_back() {
    let mut d = Daemon::start_with(Runtime::docker(), &allow_mock_engine());
    let _guard = ProcessGuard(d.home.path().join("state/processes"));
    d.write_manifest("chat.yaml", &binary_stack(&bin("mock-engine"), &d.model_path(), ""));
    let s = d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));
    let first = the_replica(&s);
    d.kill();
    Command::new("kill")
        .args(["-9", &pid_of(&first).to_string()])
        .status()
        .unwrap();
    d.kill_and_restart();
    let s = d.wait_for("a replacement Ready", READY, |s| {
        pool_ready(s, "chat", 1)
            && replica_containers(s, "chat")[0]
                .as_deref()
                .is_some_and(|id| id != first)
    });
    assert!(pool_status(&s, "chat").unwrap().restarts >= 1);
    assert!(events_text(&d).contains("gone (exited while llama-orchd was not its parent"));
}

/// A mock engine the test runs itself, on a free loopback port; killed on drop.
struct External {
    child: Child,
    url: String,
}

impl External {
    fn start(model: &Path) -> External {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(bin("mock-engine"))
            .args([
                "--model",
                &model.display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--parallel", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/health");
        wait_until("the external engine to answer", READY, || {
            reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success())
        });
        External { child, url }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn external_mode_attaches_to_a_running_engine_and_follows_its_health() {
    let d = Daemon::start(Runtime::docker());
    let mut engine = External::start(&d.model_path());
    d.write_manifest(
        "chat.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: ext}}\nspec:\n  provisioning: external\n  \
             url: {}\n  version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200, failureThreshold: 2}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:{}', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: ext, model: tiny, replicas: 1, slotsPerReplica: 2}}\n",
            engine.url,
            d.model_path().display()
        ),
    );
    let s = d.wait_for("pool chat Ready on the external engine", READY, |s| {
        pool_ready(s, "chat", 1)
    });
    assert_eq!(
        s.replicas[0].endpoint.as_ref().map(|e| e.as_str()),
        Some(engine.url.as_str())
    );
    assert!(d.container_ids().is_empty(), "nothing was started");
    streams_a_task(&d);
    let _ = engine.child.kill();
    let _ = engine.child.wait();
    let s = d.wait_for("pool chat NotReady", READY, |s| {
        pool_status(s, "chat").is_some_and(|st| !st.is_ready())
    });
    let ready = pool_status(&s, "chat")
        .unwrap()
        .condition(llorch_manifests::status::ConditionType::Ready)
        .unwrap()
        .clone();
    assert!(
        ready
            .message
            .contains(&format!("external engine at {} is not healthy", engine.url)),
        "{ready:?}"
    );
    assert!(events_text(&d).contains("NotReady"));
}

#[test]
fn with_only_process_engines_the_daemon_starts_without_a_container_runtime() {
    let mut d = Daemon::start_with(Runtime::docker(), &allow_mock_engine());
    let _guard = ProcessGuard(d.home.path().join("state/processes"));
    d.kill();
    let config_path = d.home.path().join("config.yaml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let broken: String = config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("socket:") {
                "  socket: unix:///tmp/llorch-no-such-runtime.sock".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config_path, broken + "\n").unwrap();
    d.write_manifest("chat.yaml", &binary_stack(&bin("mock-engine"), &d.model_path(), ""));
    d.kill_and_restart();
    let s = d.wait_for("pool chat Ready without Docker", READY, |s| pool_ready(s, "chat", 1));
    assert_eq!(s.runtime.kind, "process");
    let log = d.log_until(Duration::from_secs(5), |l| l.contains("no container runtime"));
    assert!(log.contains("no container runtime"), "{log}");
    // A container Engine declared now says what is missing instead of hanging.
    d.write_manifest(
        "img.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: img}\nspec: {image: 'llama-orch/mock-engine:dev', version: '1'}\n",
    );
    let s = d.wait_for("engine img not Ready", READY, |s| engine_message(s, "img").is_some());
    let msg = engine_message(&s, "img").unwrap();
    assert!(msg.contains("started without a container runtime"), "{msg}");
}

/// A loopback model server that counts the connections it gets (and answers none): a
/// download attempt would show as a count.
fn counting_model_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/weights.gguf",
        listener.local_addr().unwrap().port()
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, hits)
}

/// `gpus: none` (a gateway: no GPU, no container runtime) through the real binaries: it
/// starts with the runtime unreachable, serves a Pool on an external engine (the mock engine
/// as a plain process) over SSE and through `orchctl run`, blocks a container Pool with the
/// reason, and downloads no Model for either.
#[test]
fn with_gpus_none_and_no_runtime_the_daemon_serves_external_engines_and_blocks_the_rest() {
    let mut d = Daemon::start(Runtime::docker());
    let engine = External::start(&d.model_path());
    let (model_url, hits) = counting_model_server();
    d.kill();
    let config_path = d.home.path().join("config.yaml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let mut gateway: Vec<String> = config
        .lines()
        .filter(|l| {
            !(l.starts_with("gpus:") || l.starts_with("  simulate:") || l.starts_with("    - {name: Simulated"))
        })
        .map(|l| {
            if l.trim_start().starts_with("socket:") {
                "  socket: unix:///tmp/llorch-no-such-runtime.sock".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    gateway.push("gpus: none".into());
    gateway.push("models: {allowHosts: ['127.0.0.1']}".into());
    std::fs::write(&config_path, gateway.join("\n") + "\n").unwrap();
    d.write_manifest(
        "chat.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: ext}}\nspec:\n  provisioning: external\n  \
             url: {}\n  version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: weights}}\nspec: {{ref: '{model_url}', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: ext, model: weights, replicas: 1, slotsPerReplica: 2}}\n",
            engine.url
        ),
    );
    d.write_manifest(
        "local.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: img}}\nspec: {{image: 'llama-orch/mock-engine:dev', version: '1'}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:{}', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: local}}\nspec: {{engine: img, model: tiny, replicas: 1}}\n",
            d.model_path().display()
        ),
    );
    d.kill_and_restart();
    let s = d.wait_for("pool chat Ready on the external engine", READY, |s| {
        pool_ready(s, "chat", 1)
    });
    assert_eq!(s.runtime.kind, "process", "no container runtime");
    assert_eq!(s.gpu_source, llorch_manifests::api::GpuSource::None);
    assert!(s.gpus.is_empty() && !s.gpus_simulated);
    let log = d.log_until(Duration::from_secs(5), |l| l.contains("no GPUs (config `gpus: none`)"));
    assert!(log.contains("no GPUs (config `gpus: none`)"), "{log}");
    streams_a_task(&d);
    let ran = d.orchctl(&["run", "chat", "Once upon a time", "--max-tokens", "5"]);
    let (out, err) = (
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
    );
    assert!(ran.status.success(), "{out}\n{err}");
    assert!(err.contains("done: 5 tokens"), "{err}");
    assert!(!out.trim().is_empty(), "tokens streamed to stdout: {err}");
    // The container Pool is blocked with the reason; nothing is created.
    let s = d.wait_for("pool local blocked", READY, |s| {
        s.serving("local").is_some_and(|p| p.blocked.is_some())
    });
    let blocked = s.serving("local").unwrap().blocked.clone().unwrap();
    assert!(
        blocked
            .to_string()
            .starts_with("this daemon has no GPUs (config `gpus: none`)"),
        "{blocked}"
    );
    let refused = d.orchctl(&["run", "local", "hi", "--max-tokens", "2"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("POOL_UNREADY") && why.contains("gpus: none"), "{why}");
    assert!(d.container_ids().is_empty(), "nothing was started");
    let gpus = d.orchctl(&["get", "gpus"]);
    assert_eq!(
        String::from_utf8_lossy(&gpus.stdout),
        "no GPUs: config `gpus: none` (only Pools on external Engines run on this daemon)\n"
    );
    // Neither Model was fetched: the external engine loads its own, the blocked Pool runs nowhere.
    for model in ["weights", "tiny"] {
        let view = s.objects.iter().find(|o| o.object.name == model).unwrap();
        let phase = view.status.model.as_ref().map(|m| m.phase);
        assert_eq!(phase, Some(llorch_manifests::status::ModelPhase::NotFetched), "{model}");
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no download attempted"
    );
}

/// The config is the trust root (issue 9, item 4): a `binary` Engine runs only what config
/// allows, a Model's `file:` ref must lie under `models.fileRoots`, and a `source` target
/// cannot name a path. The attack from the issue (`/bin/sh` reading `/etc/shadow`) is refused.
#[test]
fn manifests_run_and_read_only_what_the_config_allows() {
    let d = Daemon::start(Runtime::docker());
    let attack = binary_stack(
        Path::new("/bin/sh"),
        Path::new("/etc/shadow"),
        "  args: [\"-c\", \"cat {model_path}\"]\n",
    );
    d.write_manifest("attack.yaml", &attack);
    let s = d.wait_for("the engine refused", READY, |s| {
        engine_message(s, "mock-bin").is_some_and(|m| m.contains("allowBinaries"))
    });
    let msg = engine_message(&s, "mock-bin").unwrap();
    assert!(
        msg.contains("/bin/sh") || msg.contains("/usr/bin/dash") || msg.contains("allowedExecutables"),
        "{msg}"
    );
    let s = d.wait_for("the model refused", READY, |s| {
        model_message(s, "tiny").is_some_and(|m| m.contains("models.fileRoots"))
    });
    assert!(model_message(&s, "tiny").unwrap().contains("/etc/shadow"));
    assert!(!pool_ready(&s, "chat", 1));
    assert!(
        s.replicas.iter().all(|r| r.pool != "chat" || r.container_id.is_none()),
        "nothing was started"
    );

    // An absolute source target is a manifest error; nothing is built or run.
    d.write_manifest(
        "escape.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: escape}\nspec:\n  provisioning: source\n  \
         version: '1'\n  source: {repo: 'https://example.invalid/x.git', ref: v1, target: /bin/sh}\n",
    );
    d.wait_for("the source target refused", READY, |s| {
        s.file_errors
            .iter()
            .chain(s.objects.iter().flat_map(|o| o.status.manifest_errors.iter()))
            .any(|e| e.to_string().contains("spec.source.target"))
    });
}

fn model_message(s: &Snapshot, name: &str) -> Option<String> {
    s.objects
        .iter()
        .find(|o| o.object.kind == llorch_manifests::Kind::Model && o.object.name == name)
        .and_then(|o| {
            o.status
                .conditions
                .iter()
                .find(|c| c.status && c.type_ == llorch_manifests::status::ConditionType::Degraded)
                .or_else(|| {
                    o.status
                        .condition(llorch_manifests::status::ConditionType::Ready)
                        .filter(|c| !c.status)
                })
        })
        .map(|c| c.message.clone())
}

fn engine_message(s: &Snapshot, name: &str) -> Option<String> {
    s.objects
        .iter()
        .find(|o| o.object.kind == llorch_manifests::Kind::Engine && o.object.name == name)
        .and_then(|o| o.status.condition(llorch_manifests::status::ConditionType::Ready))
        .filter(|c| !c.status)
        .map(|c| c.message.clone())
}

#[test]
fn a_missing_image_with_pulls_off_is_named_on_the_engine_with_the_fix() {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "img.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: img}\nspec: {image: 'llama-orch/no-such-image:1', version: '1'}\n",
    );
    let s = d.wait_for("engine img not Ready", READY, |s| engine_message(s, "img").is_some());
    let msg = engine_message(&s, "img").unwrap();
    assert!(
        msg.starts_with(
            "image `llama-orch/no-such-image:1` is not present in docker and pulls are off (config \
             `provisioning.allowImagePulls: false`): run `docker pull llama-orch/no-such-image:1` or enable pulls"
        ),
        "{msg}"
    );
}

#[test]
fn a_source_engine_without_permission_blocks_its_pool_with_the_plan_and_the_flag() {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "chat.yaml",
        &format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: built}}\nspec:\n  provisioning: source\n  \
             version: b4500\n  source: {{repo: 'https://github.com/ggml-org/llama.cpp', ref: b4500}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:{}', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: built, model: tiny, replicas: 1}}\n",
            d.model_path().display()
        ),
    );
    let s = d.wait_for("pool chat Blocked", READY, |s| {
        pool_status(s, "chat")
            .and_then(|st| st.condition(llorch_manifests::status::ConditionType::Ready))
            .is_some_and(|c| c.reason == "Blocked")
    });
    let msg = pool_status(&s, "chat")
        .unwrap()
        .condition(llorch_manifests::status::ConditionType::Ready)
        .unwrap()
        .message
        .clone();
    assert!(
        msg.contains("config `provisioning.allowSourceBuilds` is false"),
        "{msg}"
    );
    assert!(
        msg.contains("1. git clone --depth 1 --branch b4500 https://github.com/ggml-org/llama.cpp"),
        "{msg}"
    );
    assert!(s.replicas.is_empty() && d.container_ids().is_empty(), "nothing runs");
    let engine = engine_message(&s, "built").unwrap();
    assert!(engine.contains("allowSourceBuilds"), "{engine}");
}
