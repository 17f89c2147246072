//! End-to-end: job records and replay (issue 12, items 1–2) with the real daemon on real
//! Docker and Podman and the mock engine image, plus one replay on the real llama-server.
//!
//! - a task's record, fetched by task id and by `sha256:` id, holds a transcript equal byte for
//!   byte to the SSE stream its client read (keep-alive comments aside); opted-out requests
//!   (`record: false`, `X-Llorch-Record: off`) leave none; plans dedupe; hostile ids are 400;
//! - `orchctl plan` stores its plan; `orchctl artifacts list|get` show the record, and `orchctl replay` exits 0 for a seeded task, then 2
//!   (naming `modelDigest`) once the Model points at another file with its own digest;
//! - a changed engine default seed makes an unseeded task's replay differ: exit 1;
//! - retention (a small `records.maxBytes`) removes the oldest records first, and what is left
//!   survives a daemon restart; a short `records.maxAge` removes old records at the next write;
//! - with tokens, a record is its submitter's (403 and an empty list for another token);
//! - on llama.cpp's real `llama-server` (`--parallel 1`), a seeded task replays identically.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// The mock stack with its Model pinned to `digest` (when given).
fn stack(pool: &str, model: &std::path::Path, digest: Option<&str>, args: &[&str]) -> String {
    let text = mock_stack(&format!("{pool}-engine"), pool, 1, model, args);
    match digest {
        Some(digest) => text.replace("  ctxMax: 4096\n", &format!("  digest: {digest}\n  ctxMax: 4096\n")),
        None => text,
    }
}

fn sha256_of(path: &std::path::Path) -> String {
    format!(
        "sha256:{}",
        llorch_manifests::hash::sha256_hex(&std::fs::read(path).unwrap())
    )
}

/// Submits `body` and reads its stream raw: the task id and the bytes the client read.
fn run_raw(d: &Daemon, body: &Value) -> (String, String) {
    let r = http().post(format!("{}/v2/tasks", d.url)).json(body).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().unwrap()["task_id"].as_str().unwrap().to_string();
    let raw = http()
        .get(format!("{}/v2/tasks/{id}/events", d.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    (id, raw)
}

/// `raw` without keep-alive comments (the record leaves them out).
fn without_comments(raw: &str) -> String {
    raw.split_inclusive("\n\n")
        .filter(|block| !block.starts_with(':'))
        .collect()
}

/// `GET /v2/artifacts/{id}` once it answers 200 (records are written just after a task ends).
fn artifact(d: &Daemon, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http().get(format!("{}/v2/artifacts/{id}", d.url)).send().unwrap();
        if r.status().as_u16() == 200 {
            return r.json().unwrap();
        }
        assert_eq!(r.status().as_u16(), 404, "{id}: {}", r.text().unwrap_or_default());
        assert!(Instant::now() < deadline, "no record of {id} after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_of(d: &Daemon, id: &str) -> u16 {
    http()
        .get(format!("{}/v2/artifacts/{id}", d.url))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// The transcript as SSE text again.
fn transcript_sse(record: &Value) -> String {
    record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {}\n\n",
                e["event"].as_str().unwrap(),
                e["data"].as_str().unwrap()
            )
        })
        .collect()
}

fn orchctl(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = d.orchctl(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_digest(d: &Daemon, pool: &str, digest: &str) {
    d.wait_for(&format!("pool {pool} serving {digest}"), READY, |s| {
        pool_ready(s, pool, 1)
            && s.serving
                .iter()
                .any(|p| p.pool == pool && p.contract.as_ref().and_then(|c| c.model_digest.as_deref()) == Some(digest))
    });
}

fn records_hold_what_the_client_read_and_replay_until_the_model_changes(rt: Runtime) {
    let d = Daemon::start(rt);
    let digest = sha256_of(&d.model_path());
    d.write_manifest("rec.yaml", &stack("rec", &d.model_path(), Some(&digest), &[]));
    // A Pool that opted out of records (`spec.records.enabled: false`).
    d.write_manifest(
        "hush.yaml",
        &format!(
            "{}  records: {{enabled: false}}\n",
            stack("hush", &d.model_path(), None, &[])
        ),
    );
    wait_digest(&d, "rec", &digest);
    d.wait_for("pool hush Ready", READY, |s| pool_ready(s, "hush", 1));

    let body = json!({"pool": "rec", "prompt": "Once upon a time", "max_tokens": 12, "seed": 7, "temperature": 0.8});
    let (id, raw) = run_raw(&d, &body);
    let record = artifact(&d, &id);
    assert_eq!(record["kind"], "job");
    assert_eq!(record["taskId"], id.as_str());
    assert_eq!(
        transcript_sse(&record),
        without_comments(&raw),
        "the record's transcript is byte for byte what the client read"
    );
    assert!(raw.contains("event: token"), "{raw}");
    assert_eq!(record["state"], "done");
    assert_eq!(record["identity"], "localhost");
    assert_eq!(record["request"]["prompt"], "Once upon a time");
    assert_eq!(record["request"]["seed"], 7);
    assert_eq!(record["model"]["digest"], digest.as_str());
    assert_eq!(record["engine"]["version"], "0.1.0");
    assert_eq!(record["replica"], "rec-0");
    assert_eq!(record["tokensOut"], 12);
    assert!(record["timings"]["ttftMs"].is_u64() && record["timings"]["queueWaitMs"].is_u64());

    // Listed newest first with a summary, and the same bytes under its content address.
    let list: Value = http()
        .get(format!("{}/v2/artifacts?kind=job&pool=rec&limit=5", d.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let entry = &list["items"][0];
    assert_eq!(entry["job"], id.as_str());
    assert_eq!(entry["summary"]["tokensOut"], 12);
    assert_eq!(entry["summary"]["state"], "done");
    let by_hash = artifact(&d, entry["id"].as_str().unwrap());
    assert_eq!(by_hash, record);
    for hostile in ["..%2F..%2Fetc%2Fpasswd", "sha256:..%2Fx", "task-..%2Fx"] {
        assert_eq!(status_of(&d, hostile), 400, "{hostile}");
    }
    assert_eq!(status_of(&d, &format!("sha256:{}", "0".repeat(64))), 404);

    // Opted out: a native `record: false` and a /v1 request with `X-Llorch-Record: off` leave
    // none. Records are written in order, so once a later task's record is there, theirs
    // would have been too.
    let mut quiet = body.clone();
    quiet["record"] = json!(false);
    let (quiet_id, _) = run_raw(&d, &quiet);
    let v1 = http()
        .post(format!("{}/v1/completions", d.url))
        .header("X-Llorch-Record", "off")
        .json(&json!({"model": "rec", "prompt": "secret", "max_tokens": 3}))
        .send()
        .unwrap();
    assert_eq!(v1.status().as_u16(), 200);
    let v1_id = v1.headers()["x-llorch-task-id"].to_str().unwrap().to_string();
    let (hushed, _) = run_raw(&d, &json!({"pool": "hush", "prompt": "secret", "max_tokens": 2}));
    let (later, _) = run_raw(&d, &json!({"pool": "rec", "prompt": "later", "max_tokens": 2}));
    artifact(&d, &later);
    assert_eq!(status_of(&d, &hushed), 404, "a Pool with records off leaves no record");
    assert_eq!(status_of(&d, &quiet_id), 404, "record: false leaves no record");
    assert_eq!(status_of(&d, &v1_id), 404, "X-Llorch-Record: off leaves no record");

    // Plans and diffs: the same content twice is one artifact (201, then 200).
    let post = |content: Value| {
        let r = http()
            .post(format!("{}/v2/artifacts", d.url))
            .json(&json!({"kind": "plan", "content": content}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap()["id"].clone())
    };
    let (first, a) = post(json!({"pool": "rec", "steps": [1, 2]}));
    let (second, b) = post(json!({"pool": "rec", "steps": [1, 2]}));
    assert_eq!((first, second), (201, 200));
    assert_eq!(a, b);

    // orchctl: the list and the readable record.
    let (code, out, err) = orchctl(&d, &["artifacts", "list", "--kind", "job"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("rec-model"), "{out}");
    let (code, out, err) = orchctl(&d, &["artifacts", "get", &id]);
    assert_eq!(code, 0, "{err}");
    let text: String = record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "token")
        .map(|e| {
            serde_json::from_str::<Value>(e["data"].as_str().unwrap()).unwrap()["t"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        out.contains(&text.replace('\n', "\n  ")),
        "the transcript's text:\n{out}"
    );

    // `orchctl plan` keeps its plan on the daemon (stdout stays the plan alone).
    let (code, plan, err) = orchctl(&d, &["plan", "pool/rec"]);
    assert_eq!(code, 0, "{err}");
    let stored = err
        .lines()
        .find_map(|l| l.strip_prefix("plan stored as artifact "))
        .unwrap_or_else(|| panic!("no artifact id on stderr: {err}"));
    let kept = artifact(&d, stored);
    assert_eq!(kept["kind"], "plan");
    assert_eq!(kept["content"]["plan"], plan.as_str());

    // Replay: identical on the same engine and model …
    let (code, out, err) = orchctl(&d, &["replay", &id]);
    assert_eq!(code, 0, "replay of a seeded task is identical\n{out}{err}");
    assert!(out.contains("identical"), "{out}");
    // … also for a /v1 chat request, replayed with the OpenAI fields it relayed.
    let v1 = http()
        .post(format!("{}/v1/chat/completions", d.url))
        .json(
            &json!({"model": "rec", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
            "seed": 3, "temperature": 0.7, "presence_penalty": 0.1}),
        )
        .send()
        .unwrap();
    assert_eq!(v1.status().as_u16(), 200);
    let v1_task = v1.headers()["x-llorch-task-id"].to_str().unwrap().to_string();
    let v1_record = artifact(&d, &v1_task);
    assert_eq!(v1_record["request"]["openai"]["surface"], "chat");
    assert_eq!(v1_record["request"]["openai"]["fields"]["presence_penalty"], 0.1);
    assert_eq!(v1_record["request"]["messages"][0]["content"], "Hi");
    let (code, out, err) = orchctl(&d, &["replay", &v1_task]);
    assert_eq!(code, 0, "replay of a seeded /v1 request is identical\n{out}{err}");

    // … and not reproducible once the Model is another file with another digest.
    let other = d.home.path().join("models/other.gguf");
    let mut bytes = llorch_gguf::fixture::tiny_model("llama");
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&other, bytes).unwrap();
    let other_digest = sha256_of(&other);
    assert_ne!(other_digest, digest);
    d.write_manifest("rec.yaml", &stack("rec", &other, Some(&other_digest), &[]));
    wait_digest(&d, "rec", &other_digest);
    let (code, out, err) = orchctl(&d, &["replay", &id]);
    assert_eq!(code, 2, "not reproducible after the digest changed\n{out}{err}");
    assert!(
        err.contains("modelDigest") && err.contains(&digest) && err.contains(&other_digest),
        "{err}"
    );
}

/// Nice to have: the mock engine's default seed (for requests that give none) is an Engine
/// arg; changing it keeps the engine version, so the replay runs and differs.
#[test]
fn a_changed_default_seed_makes_an_unseeded_replay_differ() {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest("var.yaml", &stack("var", &d.model_path(), None, &["--seed", "1"]));
    d.wait_for("pool var Ready", READY, |s| pool_ready(s, "var", 1));
    let (id, _) = run_raw(
        &d,
        &json!({"pool": "var", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.9}),
    );
    artifact(&d, &id);
    let (code, out, err) = orchctl(&d, &["replay", &id]);
    assert_eq!(code, 0, "same default seed: identical\n{out}{err}");
    let before = d
        .snapshot()
        .replicas
        .iter()
        .find(|r| r.pool == "var")
        .and_then(|r| r.container_id.clone());
    d.write_manifest("var.yaml", &stack("var", &d.model_path(), None, &["--seed", "2"]));
    // Tasks go only to the new container once the serving view lists it alone.
    d.wait_for("pool var serving from its new engine args only", READY, |s| {
        pool_ready(s, "var", 1)
            && s.serving.iter().any(|p| {
                p.pool == "var" && !p.replicas.is_empty() && p.replicas.iter().all(|r| r.container_id != before)
            })
    });
    let (code, out, err) = orchctl(&d, &["replay", &id]);
    assert_eq!(code, 1, "another default seed: different\n{out}{err}");
    assert!(err.contains("departs at token"), "{err}");
}

fn retention_removes_the_oldest_records_first(rt: Runtime) {
    // A record of 8 tokens is ~1.3 KB: 3,000 bytes keep two.
    let mut d = Daemon::start_with(rt, "records:\n  maxBytes: 3000\n");
    d.write_manifest("old.yaml", &stack("old", &d.model_path(), None, &[]));
    d.wait_for("pool old Ready", READY, |s| pool_ready(s, "old", 1));
    let ids: Vec<String> = (0..6)
        .map(|n| {
            let (id, _) = run_raw(
                &d,
                &json!({"pool": "old", "prompt": format!("task {n}"), "max_tokens": 8, "seed": n}),
            );
            artifact(&d, &id);
            id
        })
        .collect();
    let list: Value = http()
        .get(format!("{}/v2/artifacts?kind=job", d.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kept: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job"].as_str().unwrap())
        .collect();
    let total: u64 = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sizeBytes"].as_u64().unwrap())
        .sum();
    assert!(total <= 3000, "kept {total} bytes: {list}");
    assert_eq!(kept.first(), Some(&ids[5].as_str()), "the newest is kept, listed first");
    assert!(kept.len() >= 2 && kept.len() < 6, "{kept:?}");
    assert_eq!(status_of(&d, &ids[0]), 404, "the oldest went first");
    // What is left survives a restart (the index is rebuilt from disk).
    d.kill_and_restart();
    assert_eq!(artifact(&d, &ids[5])["taskId"], ids[5].as_str());
    assert_eq!(status_of(&d, &ids[0]), 404);
}

/// Records by age (`records.maxAge: 2s`): a record older than that goes at the next write.
#[test]
fn retention_removes_records_older_than_max_age() {
    let d = Daemon::start_with(Runtime::docker(), "records:\n  maxAge: 2s\n");
    d.write_manifest("age.yaml", &stack("age", &d.model_path(), None, &[]));
    d.wait_for("pool age Ready", READY, |s| pool_ready(s, "age", 1));
    let body = json!({"pool": "age", "prompt": "x", "max_tokens": 2});
    let (first, _) = run_raw(&d, &body);
    artifact(&d, &first);
    // Each later task's write runs retention; once the first record is 2 s old, it goes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut newest = String::new();
    while status_of(&d, &first) == 200 {
        assert!(Instant::now() < deadline, "the first record outlived maxAge by far");
        let (id, _) = run_raw(&d, &body);
        artifact(&d, &id);
        newest = id;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!newest.is_empty(), "a later task's write removed it");
    assert_eq!(status_of(&d, &first), 404);
}

/// With tokens, a record is its submitter's: another token gets 403 and an empty list.
#[test]
fn a_record_belongs_to_the_identity_that_submitted_its_task() {
    let (mine, theirs) = ("records-e2e-token-0123456789", "records-other-token-987654321");
    let d = Daemon::start_secured(
        Runtime::docker(),
        &[("mine", mine), ("theirs", theirs)],
        std::net::Ipv4Addr::LOCALHOST.into(),
        "",
    );
    d.write_manifest("own.yaml", &stack("own", &d.model_path(), None, &[]));
    d.wait_for("pool own Ready", READY, |s| pool_ready(s, "own", 1));
    let as_ = |token: &str, method: reqwest::Method, path: &str| {
        http()
            .request(method, format!("{}{path}", d.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .json(&json!({"pool": "own", "prompt": "mine only", "max_tokens": 3, "seed": 1}))
            .send()
            .unwrap()
    };
    let id = as_(mine, reqwest::Method::POST, "/v2/tasks").json::<Value>().unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    as_(mine, reqwest::Method::GET, &format!("/v2/tasks/{id}/events"))
        .text()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record: Value = loop {
        let r = as_(mine, reqwest::Method::GET, &format!("/v2/artifacts/{id}"));
        if r.status().as_u16() == 200 {
            break r.json().unwrap();
        }
        assert!(Instant::now() < deadline, "no record");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(record["identity"], "token:mine");
    let r = as_(theirs, reqwest::Method::GET, &format!("/v2/artifacts/{id}"));
    assert_eq!(r.status().as_u16(), 403);
    let r = as_(theirs, reqwest::Method::POST, &format!("/v2/artifacts/{id}/replay"));
    assert_eq!(r.status().as_u16(), 403, "nor may it replay it");
    let list: Value = as_(theirs, reqwest::Method::GET, "/v2/artifacts").json().unwrap();
    assert_eq!(list["items"], json!([]), "another identity's records are not listed");
    let list: Value = as_(mine, reqwest::Method::GET, "/v2/artifacts").json().unwrap();
    assert_eq!(list["items"][0]["job"], id.as_str());
    let r = http().get(format!("{}/v2/artifacts", d.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token, no list");
}

/// llama.cpp's own llama-server (`--parallel 1`, the real SmolLM2-135M): a seeded task's
/// replay is identical.
#[test]
fn real_llama_server_replays_a_seeded_task_identically() {
    use llama_orch_e2e::llama_server::{CTX_MAX, GGUF_SHA256, engine_manifest, require_fixtures};
    let rt = Runtime::docker();
    let model = require_fixtures(&rt);
    let d = Daemon::start(rt);
    d.write_manifest(
        "smol.yaml",
        &format!(
            "{}---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: smollm2}}\nspec:\n  ref: file:{}\n  digest: sha256:{GGUF_SHA256}\n  ctxMax: {CTX_MAX}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: smol}}\nspec:\n  engine: llamacpp\n  model: smollm2\n  replicas: 1\n  slotsPerReplica: 1\n  ctxSize: 2048\n",
            engine_manifest(),
            model.display()
        ),
    );
    d.wait_for("pool smol Ready", Duration::from_secs(120), |s| {
        pool_ready(s, "smol", 1)
    });
    let (id, raw) = run_raw(
        &d,
        &json!({"pool": "smol", "prompt": "Once upon a time", "max_tokens": 16, "seed": 42, "temperature": 0.8}),
    );
    let record = artifact(&d, &id);
    assert_eq!(transcript_sse(&record), without_comments(&raw));
    assert_eq!(record["model"]["digest"], format!("sha256:{GGUF_SHA256}"));
    let (code, out, err) = orchctl(&d, &["replay", &id]);
    assert_eq!(
        code, 0,
        "a seeded task on the real engine replays identically\n{out}{err}"
    );
}

llama_orch_e2e::on_both_runtimes!(
    records_hold_what_the_client_read_and_replay_until_the_model_changes,
    retention_removes_the_oldest_records_first
);
