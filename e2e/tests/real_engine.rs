//! End-to-end with a REAL engine: llama.cpp's own `llama-server` (image
//! `llama-orch/llama-server:dev`) serving the real SmolLM2-135M GGUF, managed by the real
//! `llama-orchd` on real Docker and real Podman. Both are test fixtures that
//! `scripts/build-llama-server-image.sh` builds and caches; the daemon still runs with an
//! explicitly simulated GPU inventory (inference runs on the CPU, in the test only).
//!
//! This proves the real engine is managed correctly: the Engine's args reach llama-server (it
//! reports the context size and slot count the Pool asked for), the model is mounted read-only
//! and digest-verified, the health probe sees it, and the endpoint the daemon reports answers
//! `/completion` deterministically for a fixed seed. A wrong digest keeps every container away.
//! The replica's `kvCacheUsageRatio` is read from the real llama-server (its `/slots`: this
//! llama.cpp no longer exports a KV gauge): 0 while idle, above 0 while it generates.
//!
//! Nothing here skips: a missing model file or image is a failure that names the command to run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready, pool_status};
use llama_orch_e2e::llama_server::{CTX_MAX, GGUF_FILE, GGUF_SHA256, engine_manifest, require_fixtures};
use llorch_manifests::Kind;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::{ConditionType, ObjectStatus};

/// What the Pool asks for; llama-server must report exactly these.
const CTX_SIZE: u32 = 2048;
const SLOTS: u32 = 1;
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The real engine, the real model (with `digest`) and a Pool `smol` of one replica.
fn real_stack(model: &Path, digest: &str) -> String {
    format!(
        "{}---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: smollm2}}\nspec:\n  ref: file:{}\n  digest: sha256:{digest}\n  ctxMax: {CTX_MAX}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: smol}}\nspec:\n  engine: llamacpp\n  model: smollm2\n  replicas: 1\n  \
         slotsPerReplica: {SLOTS}\n  ctxSize: {CTX_SIZE}\n  restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n",
        engine_manifest(),
        model.display()
    )
}

fn status_of<'a>(s: &'a Snapshot, kind: Kind, name: &str) -> Option<&'a ObjectStatus> {
    s.objects
        .iter()
        .find(|o| o.object.kind == kind && o.object.name == name)
        .map(|o| &o.status)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

fn get_json(url: &str) -> serde_json::Value {
    let r = http().get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// `POST <endpoint>/completion` with a fixed seed and sampling on; returns the text.
fn complete(endpoint: &str) -> String {
    let url = format!("{endpoint}/completion");
    let body = serde_json::json!({
        "prompt": "Once upon a time",
        "n_predict": 16,
        "seed": 42,
        "temperature": 0.8,
    });
    let r = http()
        .post(&url)
        .json(&body)
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(r.status().is_success(), "POST {url}: {}", r.status());
    let v: serde_json::Value = r.json().unwrap_or_else(|e| panic!("POST {url}: not JSON: {e}"));
    let text = v["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no `content` in the answer: {v}"))
        .to_string();
    assert!(!text.trim().is_empty(), "the engine generated no text: {v}");
    text
}

/// The real engine becomes Ready, runs exactly what the Pool declares, and answers
/// `/completion` at the endpoint the daemon reports, identically for the same seed.
fn real_engine_serves_the_real_model(rt: Runtime) {
    let model = require_fixtures(&rt);
    let d = Daemon::start(rt);
    d.write_manifest("smol.yaml", &real_stack(&model, GGUF_SHA256));
    let started = Instant::now();
    let s = d.wait_for("pool smol Ready 1/1 with the real engine", READY_WITHIN, |s| {
        pool_ready(s, "smol", 1)
    });
    eprintln!("{}: pool smol Ready after {:?}", d.runtime.name, started.elapsed());
    let model_status = status_of(&s, Kind::Model, "smollm2").expect("model status");
    assert!(model_status.is_ready(), "the digest verified: {model_status:?}");

    // The endpoint, as `orchctl` reports it, and the same in the snapshot.
    let out = d.orchctl(&["get", "replicas", "--pool", "smol", "-o", "json"]);
    assert!(
        out.status.success(),
        "orchctl get replicas failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("orchctl -o json is JSON");
    let replicas = listed.as_array().expect("a list of replicas");
    assert_eq!(replicas.len(), 1, "{listed}");
    let endpoint = replicas[0]["endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("no endpoint: {listed}"))
        .to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only: {endpoint}");
    assert_eq!(replicas[0]["phase"], "Ready", "{listed}");
    let snap = s
        .replicas
        .iter()
        .find(|r| r.pool == "smol")
        .expect("replica in the snapshot");
    assert_eq!(snap.endpoint.as_ref().map(|e| e.as_str()), Some(endpoint.as_str()));
    let id = snap.container_id.clone().expect("container id");

    // The container runs what the Engine and Pool declare, with the model read-only.
    let cmd = d.runtime.run(&["inspect", "--format", "{{json .Config.Cmd}}", &id]);
    let cmd: Vec<String> = serde_json::from_str(&cmd).unwrap_or_else(|e| panic!("Cmd {cmd}: {e}"));
    let in_container = format!("/models/{GGUF_FILE}");
    let ctx = CTX_SIZE.to_string();
    let slots = SLOTS.to_string();
    let expected = [
        "-m",
        in_container.as_str(),
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "-c",
        ctx.as_str(),
        "--parallel",
        slots.as_str(),
        "--metrics",
        "--slots",
    ];
    assert_eq!(cmd, expected, "the container's command");
    let mounts = d.runtime.run(&["inspect", "--format", "{{json .Mounts}}", &id]);
    let mounts: serde_json::Value = serde_json::from_str(&mounts).unwrap_or_else(|e| panic!("Mounts {mounts}: {e}"));
    let mount = mounts
        .as_array()
        .and_then(|m| m.iter().find(|m| m["Destination"] == in_container.as_str()))
        .unwrap_or_else(|| panic!("the model is not mounted at {in_container}: {mounts}"));
    assert_eq!(mount["RW"], false, "the model is mounted read-only: {mount}");

    // llama-server itself reports what it was given.
    let props = get_json(&format!("{endpoint}/props"));
    assert_eq!(props["total_slots"], SLOTS, "slots: {props}");
    assert_eq!(
        props["default_generation_settings"]["n_ctx"], CTX_SIZE,
        "context: {props}"
    );
    assert_eq!(props["model_path"], in_container.as_str(), "model: {props}");
    let slot_list = get_json(&format!("{endpoint}/slots"));
    assert_eq!(slot_list.as_array().map(Vec::len), Some(SLOTS as usize), "{slot_list}");

    // Real inference, deterministic for a fixed seed.
    let t = Instant::now();
    let first = complete(&endpoint);
    let second = complete(&endpoint);
    eprintln!("{}: two completions in {:?}: {first:?}", d.runtime.name, t.elapsed());
    assert_eq!(first, second, "the same seed gives the same text");
    let metrics = http()
        .get(format!("{endpoint}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(
        metrics.contains("llamacpp:tokens_predicted_total"),
        "--metrics reached the engine: {metrics}"
    );
    kv_usage_follows_the_real_engine(&d, &endpoint);
    assert_eq!(pool_status(&d.snapshot(), "smol").unwrap().restarts, 0);
}

/// `smol-0`'s `kvCacheUsageRatio` in the daemon's snapshot.
fn kv_ratio(d: &Daemon) -> Option<f64> {
    d.snapshot()
        .replicas
        .iter()
        .find(|r| r.pool == "smol")
        .and_then(|r| r.kv_cache_usage_ratio)
}

/// The daemon publishes the real engine's KV-cache usage: 0 once idle, above 0 while a long
/// generation runs (restarted until seen: the prober reads every 5 s).
fn kv_usage_follows_the_real_engine(d: &Daemon, endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while kv_ratio(d) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "no idle kvCacheUsageRatio: {:?}",
            kv_ratio(d)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("{endpoint}/completion");
    let body = serde_json::json!({"prompt": "Once upon a time", "n_predict": 1800, "ignore_eos": true, "seed": 1});
    loop {
        let generation = std::thread::spawn({
            let (url, body) = (url.clone(), body.clone());
            move || http().post(&url).json(&body).send().map(|r| r.status().as_u16())
        });
        while !generation.is_finished() {
            if let Some(ratio) = kv_ratio(d).filter(|r| *r > 0.0) {
                assert!(ratio <= 1.0, "kvCacheUsageRatio {ratio}");
                eprintln!("{}: kvCacheUsageRatio {ratio} while generating", d.runtime.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = generation.join().unwrap();
        assert_eq!(status.ok(), Some(200), "the long completion");
        assert!(
            Instant::now() < deadline,
            "kvCacheUsageRatio never rose above 0 while generating: {:?}",
            kv_ratio(d)
        );
    }
}

/// Container names of this daemon's instance that the runtime reported events for since
/// `since` (unix seconds): catches a container created and removed between two polls.
fn containers_seen_in_events(d: &Daemon, since: u64) -> Vec<String> {
    let until = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1;
    let format = if d.runtime.name == "podman" {
        "{{.Status}} {{.Name}}"
    } else {
        "{{.Action}} {{.Actor.Attributes.name}}"
    };
    let (since, until) = (since.to_string(), until.to_string());
    let events = d.runtime.run(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        format,
    ]);
    let ours = format!("llorch-{}-", d.instance);
    events
        .lines()
        .filter(|l| l.contains(&ours))
        .map(str::to_string)
        .collect()
}

/// A wrong digest on the real model blocks the Pool: no container is ever created. Fixing the
/// digest then brings the Pool up, so the digest was the only thing in the way.
fn wrong_digest_never_creates_a_container(rt: Runtime) {
    let model = require_fixtures(&rt);
    let d = Daemon::start(rt);
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let wrong = "0".repeat(64);
    d.write_manifest("smol.yaml", &real_stack(&model, &wrong));
    let s = d.wait_for(
        "model smollm2 DigestMismatch and pool smol Blocked",
        READY_WITHIN,
        |s| {
            let model_failed = status_of(s, Kind::Model, "smollm2").is_some_and(|st| {
                st.condition(ConditionType::Degraded)
                    .is_some_and(|c| c.status && c.reason == "DigestMismatch")
            });
            let pool_blocked = pool_status(s, "smol").is_some_and(|st| {
                st.condition(ConditionType::Degraded)
                    .is_some_and(|c| c.status && c.reason == "Blocked")
            });
            model_failed && pool_blocked
        },
    );
    let msg = &status_of(&s, Kind::Model, "smollm2")
        .unwrap()
        .condition(ConditionType::Degraded)
        .unwrap()
        .message;
    assert!(
        msg.contains("digest mismatch") && msg.contains(GGUF_SHA256),
        "the model's status names the mismatch and the file's real digest: {msg}"
    );
    let pool_msg = &pool_status(&s, "smol")
        .unwrap()
        .condition(ConditionType::Degraded)
        .unwrap()
        .message;
    assert!(pool_msg.contains("digest mismatch"), "{pool_msg}");
    // Several resync passes (every 2 s) later, still nothing.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        assert!(
            d.container_ids().is_empty(),
            "a container exists despite the wrong digest"
        );
        let s = d.snapshot();
        assert!(!pool_status(&s, "smol").unwrap().is_ready());
        assert!(s.replicas.iter().all(|r| r.container_id.is_none()), "{:?}", s.replicas);
        std::thread::sleep(Duration::from_millis(250));
    }
    let seen = containers_seen_in_events(&d, since);
    assert!(seen.is_empty(), "the runtime saw containers of this daemon: {seen:?}");

    // The right digest: the Pool comes up.
    d.write_manifest("smol.yaml", &real_stack(&model, GGUF_SHA256));
    d.wait_for("pool smol Ready after the digest is fixed", READY_WITHIN, |s| {
        pool_ready(s, "smol", 1)
    });
    assert_eq!(d.container_ids().len(), 1);
}

/// The data plane against the real engine, through both adapters: a Pool whose Engine says
/// `api: llamacpp` (native `/completion` streaming) and one whose Engine says `api: openai`
/// (llama-server's `/v1/completions` streaming). The determinism suite (64 fixed seeds, the
/// same request twice → byte-identical token streams) passes through each, and the streamed
/// text equals what the engine answers directly. `--parallel 1`, as the suite requires.
fn real_engine_streams_through_the_task_api_deterministically(rt: Runtime) {
    use llama_orch_e2e::sse::{TaskClient, tokens};
    let model = require_fixtures(&rt);
    let d = Daemon::start(rt);
    let openai_engine = real_stack(&model, GGUF_SHA256)
        .replace("name: llamacpp}", "name: llamacpp-oai}")
        .replace("api: llamacpp", "api: openai")
        .replace("name: smollm2}", "name: smollm2-oai}")
        .replace("name: smol}", "name: smol-oai}")
        .replace("engine: llamacpp\n", "engine: llamacpp-oai\n")
        .replace("model: smollm2\n", "model: smollm2-oai\n");
    d.write_manifest("smol.yaml", &real_stack(&model, GGUF_SHA256));
    d.write_manifest("smol-oai.yaml", &openai_engine);
    let s = d.wait_for("both real pools Ready", READY_WITHIN, |s| {
        pool_ready(s, "smol", 1) && pool_ready(s, "smol-oai", 1)
    });
    let c = TaskClient::new(&d.url);
    for pool in ["smol", "smol-oai"] {
        for seed in 0..64u64 {
            let body = serde_json::json!({"pool": pool, "prompt": "Once upon a time", "max_tokens": 8, "seed": seed, "temperature": 0.8});
            let run = || {
                let a = c.submit(&body);
                assert_eq!(a.status, 202, "{pool}: {:?}", a.body);
                let events = c.events(a.body["task_id"].as_str().unwrap());
                assert_eq!(events.last().unwrap().event, "end", "{pool} seed {seed}: {events:?}");
                tokens(&events)
            };
            let (first, second) = (run(), run());
            assert!(!first.is_empty(), "{pool} seed {seed}: no tokens");
            assert_eq!(
                first, second,
                "{pool} seed {seed}: the same request gave different tokens"
            );
        }
    }
    // Streamed through llama-orch == answered directly by the engine (native API, fixed seed).
    let endpoint = s
        .replicas
        .iter()
        .find(|r| r.pool == "smol")
        .unwrap()
        .endpoint
        .clone()
        .unwrap();
    let direct: serde_json::Value = http()
        .post(format!("{endpoint}/completion"))
        .json(&serde_json::json!({"prompt": "Once upon a time", "n_predict": 8, "seed": 42, "temperature": 0.8}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let a = c.submit(&serde_json::json!({"pool": "smol", "prompt": "Once upon a time", "max_tokens": 8, "seed": 42, "temperature": 0.8}));
    let streamed = tokens(&c.events(a.body["task_id"].as_str().unwrap())).concat();
    assert_eq!(
        streamed,
        direct["content"].as_str().unwrap(),
        "streamed text equals the engine's own answer"
    );

    // And through the OpenAI-compatible front door, on both pools: the same seed gives the
    // same text streamed and not.
    for pool in ["smol", "smol-oai"] {
        let body = |stream: bool| {
            serde_json::json!({"model": pool, "messages": [{"role": "user", "content": "Tell me a story."}],
                "max_tokens": 8, "seed": 3, "temperature": 0.8, "stream": stream})
        };
        let whole: serde_json::Value = http()
            .post(format!("{}/v1/chat/completions", d.url))
            .json(&body(false))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let text = whole["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            whole["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{pool}: {whole}"
        );
        let raw = http()
            .post(format!("{}/v1/chat/completions", d.url))
            .json(&body(true))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(raw.trim_end().ends_with("data: [DONE]"), "{pool}: {raw}");
        let streamed: String = raw
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|l| *l != "[DONE]")
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(String::from))
            .collect();
        assert_eq!(streamed, text, "{pool}: /v1 streamed and non-streamed text agree");
    }
}

#[test]
fn docker_real_engine_streams_through_the_task_api_deterministically() {
    real_engine_streams_through_the_task_api_deterministically(Runtime::docker());
}

llama_orch_e2e::on_both_runtimes!(
    real_engine_serves_the_real_model,
    wrong_digest_never_creates_a_container
);
