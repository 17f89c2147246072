//! End-to-end: OpenTelemetry traces from the real daemon (token auth on) to a real OTLP/HTTP
//! receiver (`e2e/python/otlp_receiver.py`, decoding with the PyPI `opentelemetry-proto`
//! package), with the mock engine image on Docker and on Podman. A task submitted with a
//! client's `traceparent` is one trace under the client's span: `task` with its children
//! `admission`, `queue`, `placement`, `engine request` and `stream`, with the task's ids and
//! counts as attributes; the engine received the engine request's `traceparent`; a reconcile
//! pass is a span of its own; a malformed `traceparent` starts a trace of its own; and neither
//! the prompt nor the API token is anywhere in the exported bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, mock_stack, pool_ready};
use llama_orch_e2e::python;
use llama_orch_e2e::sse::TaskClient;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
/// The batch processor sends every 5 s; a span is on file well within this.
const EXPORTED: Duration = Duration::from_secs(30);
const TOKEN: &str = "tr-7f3a9c2e5b1d4086a2c4e6f8";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// A word that exists only in the prompts.
const MARKER: &str = "zyzzogeton";
const CHILDREN: [&str; 5] = ["admission", "queue", "placement", "engine request", "stream"];

/// The receiver, running until dropped.
struct Receiver {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Receiver {
    fn start() -> Self {
        let python = python::with_otlp_proto();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otlp_receiver.py");
        let port_file = dir.path().join("port");
        let child = Command::new(python)
            .arg(script)
            .arg("--spans")
            .arg(dir.path().join("spans.jsonl"))
            .arg("--raw")
            .arg(dir.path().join("raw.bin"))
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the OTLP receiver");
        let mut receiver = Receiver { child, dir, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(20);
        receiver.port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().parse().unwrap();
            }
            if let Ok(Some(status)) = receiver.child.try_wait() {
                panic!("the OTLP receiver exited with {status}");
            }
            assert!(Instant::now() < deadline, "the OTLP receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        receiver
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path("spans.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The spans once `done` holds for them; fails after [`EXPORTED`] with what was received.
    fn spans_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + EXPORTED;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} exported within {EXPORTED:?}; received:\n{}",
                spans.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(d: &Daemon, traceparent: &str) -> TaskClient {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    headers.insert("traceparent", HeaderValue::from_str(traceparent).unwrap());
    TaskClient::with_headers(&d.url, headers)
}

fn named<'a>(spans: &'a [Value], trace: &str, name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["trace_id"] == trace && s["name"] == name)
        .collect()
}

/// True once the task span of `task_id` and all its children are in.
fn task_tree_in(spans: &[Value], task_id: &str) -> bool {
    let Some(task) = spans
        .iter()
        .find(|s| s["name"] == "task" && s["attributes"]["job_id"] == task_id)
    else {
        return false;
    };
    CHILDREN.iter().all(|name| {
        spans
            .iter()
            .any(|s| s["name"] == *name && s["parent_span_id"] == task["span_id"])
    })
}

fn traces_are_exported_with_parents_attributes_and_no_secrets(runtime: Runtime) {
    let receiver = Receiver::start();
    let extra = format!("telemetry:\n  otlpEndpoint: http://127.0.0.1:{}\n", receiver.port);
    let d = Daemon::start_secured(runtime, &[("e2e", TOKEN)], std::net::Ipv4Addr::LOCALHOST.into(), &extra);
    let manifest = mock_stack("tr-engine", "tr", 1, &d.model_path(), &["--token-rate", "200"]);
    d.write_manifest("tr.yaml", &manifest);
    let snapshot = d.wait_for("pool Ready", READY, |s| pool_ready(s, "tr", 1));
    let replica = snapshot.replicas.iter().find(|r| r.pool == "tr").unwrap();

    // A task under the client's trace, streamed to its end.
    let c = client(&d, &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"));
    let prompt = format!("Tell me about the {MARKER} in one line");
    let admitted = c.submit(&json!({"pool": "tr", "prompt": prompt, "max_tokens": 8, "seed": 3}));
    assert_eq!(admitted.status, 202, "{:?}", admitted.body);
    let task_id = admitted.body["task_id"].as_str().unwrap().to_string();
    let events = c.events(&task_id);
    assert_eq!(events.last().unwrap().event, "end", "{events:?}");

    // The same through /v1, non-streamed, with a message carrying the marker.
    let chat =
        json!({"model": "tr", "messages": [{"role": "user", "content": format!("a {MARKER} again")}], "max_tokens": 4});
    let v1 = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", d.url))
        .bearer_auth(TOKEN)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&chat)
        .send()
        .unwrap();
    assert_eq!(v1.status().as_u16(), 200);
    let v1_trace = v1.headers()["traceresponse"].to_str().unwrap().to_string();
    let v1_task = v1.headers()["x-llorch-task-id"].to_str().unwrap().to_string();

    // A malformed traceparent is no error: the task starts a trace of its own.
    let stray = client(&d, "00-not-a-trace-01");
    let other = stray.submit(&json!({"pool": "tr", "prompt": "hello", "max_tokens": 2}));
    assert_eq!(other.status, 202, "{:?}", other.body);
    let other_id = other.body["task_id"].as_str().unwrap().to_string();
    assert!(other.headers.get("traceresponse").is_some(), "{:?}", other.headers);
    stray.events(&other_id);

    let spans = receiver.spans_until("task trees and a reconcile pass", |spans| {
        [&task_id, &v1_task, &other_id].iter().all(|id| task_tree_in(spans, id))
            && spans.iter().any(|s| s["name"] == "reconcile pass")
    });

    // The task span continues the client's span; each phase is its child.
    let task = spans
        .iter()
        .find(|s| s["name"] == "task" && s["attributes"]["job_id"] == task_id.as_str())
        .unwrap();
    assert_eq!(task["trace_id"], CLIENT_TRACE, "{task:#}");
    assert_eq!(task["parent_span_id"], CLIENT_SPAN, "{task:#}");
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == task["span_id"])
        .collect();
    for name in CHILDREN {
        let child = children
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` under the task: {children:#?}"));
        assert_eq!(child["trace_id"], CLIENT_TRACE, "{child:#}");
    }
    for child in &children {
        assert!(CHILDREN.contains(&child["name"].as_str().unwrap()), "{child:#}");
    }
    // Phases in order: queue, then engine request, then stream.
    let start = |name: &str| {
        children.iter().find(|s| s["name"] == name).unwrap()["start_unix_nano"]
            .as_u64()
            .unwrap()
    };
    assert!(start("queue") <= start("engine request") && start("engine request") <= start("stream"));

    // Attributes: what the server decided and counted.
    let a = &task["attributes"];
    assert_eq!(a["pool_id"], "tr", "{a:#}");
    assert_eq!(a["replica_id"], replica.id.as_str(), "{a:#}");
    assert_eq!(a["model"], "tr-model", "{a:#}");
    assert_eq!(a["engine"], "tr-engine", "{a:#}");
    assert_eq!(a["engine_version"], "0.1.0", "{a:#}");
    assert_eq!(a["priority"], "interactive", "{a:#}");
    assert_eq!(a["tokens_out"], 8, "{a:#}");
    assert_eq!(a["finish_reason"], "length", "{a:#}");
    assert_eq!(a["state"], "done", "{a:#}");
    assert_eq!(a["queue_position"], 0, "{a:#}");
    assert!(a["tokens_in"].as_i64().unwrap() > 0, "{a:#}");
    let r = &task["resource"];
    assert_eq!(r["service.name"], "llama-orchd", "{r:#}");
    assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"), "{r:#}");
    assert_eq!(r["service.instance.id"], d.instance.as_str(), "{r:#}");
    let end = |s: &Value| s["end_unix_nano"].as_u64().unwrap();
    let stream = children.iter().find(|s| s["name"] == "stream").unwrap();
    assert!(
        end(stream) <= end(task),
        "the task ends with its stream: {stream:#} {task:#}"
    );

    // The answer named the trace; the engine was asked under the engine request's span.
    assert_eq!(
        admitted.headers["traceresponse"].to_str().unwrap(),
        format!("00-{CLIENT_TRACE}-{}-01", task["span_id"].as_str().unwrap())
    );
    let v1_task_span = spans
        .iter()
        .find(|s| s["name"] == "task" && s["attributes"]["job_id"] == v1_task.as_str())
        .unwrap();
    assert_eq!(
        v1_trace,
        format!("00-{CLIENT_TRACE}-{}-01", v1_task_span["span_id"].as_str().unwrap())
    );
    let engine_spans: Vec<String> = named(&spans, CLIENT_TRACE, "engine request")
        .iter()
        .map(|s| s["span_id"].as_str().unwrap().to_string())
        .collect();
    let endpoint = replica
        .endpoint
        .as_ref()
        .unwrap()
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let received: Vec<Value> = reqwest::blocking::get(format!("{endpoint}/debug/requests"))
        .unwrap()
        .json()
        .unwrap();
    let generations: Vec<&Value> = received
        .iter()
        .filter(|r| r["path"] == "/completion" || r["path"] == "/v1/chat/completions")
        .collect();
    let forwarded: Vec<&str> = generations
        .iter()
        .filter_map(|r| r["headers"]["traceparent"].as_str())
        .collect();
    assert_eq!(
        forwarded.len(),
        3,
        "every generation carried a traceparent (none at all: is the mock image older than its \
         trace-header report? run scripts/build-mock-image.sh): {generations:#?}"
    );
    for engine_span in &engine_spans {
        let expected = format!("00-{CLIENT_TRACE}-{engine_span}-01");
        assert!(
            forwarded.contains(&expected.as_str()),
            "{expected} not in {forwarded:?}"
        );
    }

    // A malformed parent: a root task span in a trace of its own, still with its children.
    let own = spans
        .iter()
        .find(|s| s["name"] == "task" && s["attributes"]["job_id"] == other_id.as_str())
        .unwrap();
    assert_eq!(own["parent_span_id"], "", "{own:#}");
    assert_ne!(own["trace_id"], CLIENT_TRACE);

    // Reconcile passes: numbered, with what they found.
    let pass = spans.iter().find(|s| s["name"] == "reconcile pass").unwrap();
    assert!(pass["attributes"]["pass"].as_i64().unwrap() >= 1, "{pass:#}");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "reconcile pass" && s["attributes"]["pools"] == 1)
    );

    // Never the prompt, a message or the token: not in a span, not in any byte sent.
    let raw = std::fs::read(receiver.path("raw.bin")).unwrap();
    let jsonl = std::fs::read(receiver.path("spans.jsonl")).unwrap();
    for (what, bytes) in [("the exported bytes", &raw), ("the decoded spans", &jsonl)] {
        for secret in [MARKER, TOKEN, "Bearer"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` is in {what}"
            );
        }
    }
}

#[test]
fn docker_traces_are_exported_with_parents_attributes_and_no_secrets() {
    traces_are_exported_with_parents_attributes_and_no_secrets(Runtime::docker());
}

#[test]
fn podman_traces_are_exported_with_parents_attributes_and_no_secrets() {
    traces_are_exported_with_parents_attributes_and_no_secrets(Runtime::podman());
}

/// A bad endpoint stops the daemon at start, naming the field and what is wrong; no trace
/// export is half set up.
#[test]
fn an_https_or_credentialed_otlp_endpoint_is_refused_at_start() {
    for (endpoint, why) in [
        ("https://127.0.0.1:4318", "https is not supported"),
        ("http://user:pw@127.0.0.1:4318", "carries credentials"),
    ] {
        let home = tempfile::tempdir().unwrap();
        let config = format!(
            "bind: 127.0.0.1:0\ngpus: {{simulate: [{{name: s, vramBytes: 1}}]}}\ntelemetry: {{otlpEndpoint: '{endpoint}'}}\n"
        );
        std::fs::write(home.path().join("config.yaml"), config).unwrap();
        let out = Command::new(bin("llama-orchd"))
            .env("LLAMA_ORCH_HOME", home.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("field `telemetry.otlpEndpoint`") && stderr.contains(why),
            "{stderr}"
        );
        assert!(!stderr.contains("pw@"), "the credentials are not echoed: {stderr}");
    }
}
