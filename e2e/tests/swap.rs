//! More models than VRAM (issue 10, item 3) on real Docker and real Podman with the mock engine
//! (300 ms load delay): three Pools of `minReplicas: 0`, each pinned to the simulated 12 GiB GPU
//! (`gpus: [1]`) with a Model that needs 7 GiB (`vramBytes`), so only one fits at a time. The
//! official OpenAI Python SDK round-robins 60 completions across the three models through `/v1`,
//! one at a time, with its retries off: every request completes, a sampler of the runtime's
//! running containers never sees two of these Pools at once, and the test prints the swap count
//! and each request's latency. Then a long task keeps its Pool resident through a competing
//! activation (it finishes; the other waits, then answers), and after `idleTimeout` no engine
//! container is left. A chaos variant kills an engine container 1.5 s after each recovery
//! from the last kill during the round robin: every request still completes, some after the
//! client's retry of a retriable error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime};
use llama_orch_e2e::llama_server::{CTX_MAX, GGUF_SHA256, engine_manifest, require_fixtures};
use llorch_manifests::status::ConditionType;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);
const POOLS: [&str; 3] = ["alpha", "bravo", "charlie"];
const GIB: u64 = 1 << 30;

fn stack(d: &Daemon) -> String {
    let mut text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\nspec:\n  \
                    image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n  extraArgs: [\"--load-delay-ms\", \"300\", \"--token-rate\", \"50\"]\n  \
                    health: {path: /health, intervalMs: 100}\n"
        .to_string();
    for pool in POOLS {
        text.push_str(&format!(
            "---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {pool}-model}}\nspec:\n  ref: file:{}\n  \
             ctxMax: 4096\n  vramBytes: {}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec:\n  engine: mock\n  model: {pool}-model\n  \
             gpus: [1]\n  scaling: {{minReplicas: 0, maxReplicas: 1, idleTimeout: 3s}}\n",
            d.model_path().display(),
            7 * GIB
        ));
    }
    text
}

/// Whether the daemon at `url` has a Ready replica now.
fn any_ready(url: &str) -> bool {
    reqwest::blocking::get(format!("{url}/v2/snapshot"))
        .and_then(|r| r.json::<llorch_manifests::api::Snapshot>())
        .is_ok_and(|s| {
            s.replicas
                .iter()
                .any(|r| r.phase == llorch_manifests::status::ReplicaPhase::Ready)
        })
}

fn asleep(s: &llorch_manifests::api::Snapshot, pool: &str) -> bool {
    s.objects.iter().any(|o| {
        o.object.name == pool
            && o.status
                .condition(ConditionType::Ready)
                .is_some_and(|c| c.status && c.reason == llorch_manifests::Reason::ScaledToZero)
    })
}

/// Samples the runtime's running containers of `d` (by Pool label) until stopped; keeps the
/// most Pools seen running at once, and what they were.
struct Sampler {
    stop: Arc<AtomicBool>,
    most: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    worst: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(d: &Daemon, pools: &[&str]) -> Sampler {
        let pools: Vec<String> = pools.iter().map(|p| p.to_string()).collect();
        let (stop, most, samples) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let worst = Arc::new(std::sync::Mutex::new(Vec::new()));
        let filter = format!("label=dev.llama-orch.instance={}", d.instance);
        let runtime = d.runtime.clone();
        let thread = {
            let (stop, most, samples, worst) = (stop.clone(), most.clone(), samples.clone(), worst.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // One query per Pool: Docker's and Podman's `--format` templates differ, their
                    // label filters do not.
                    let running: BTreeSet<String> = pools
                        .iter()
                        .filter(|pool| {
                            let out = runtime
                                .cli()
                                .args(["ps", "-q", "--filter", &filter])
                                .args(["--filter", &format!("label=dev.llama-orch.pool={pool}")])
                                .output()
                                .unwrap();
                            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
                        })
                        .cloned()
                        .collect();
                    samples.fetch_add(1, Ordering::Relaxed);
                    if running.len() > most.fetch_max(running.len(), Ordering::Relaxed) {
                        *worst.lock().unwrap() = running.into_iter().collect();
                    }
                }
            })
        };
        Sampler {
            stop,
            most,
            samples,
            worst,
            thread: Some(thread),
        }
    }

    /// Stops sampling: (the most Pools running at once, what they were, samples taken).
    fn finish(mut self) -> (usize, Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (
            self.most.load(Ordering::Relaxed),
            self.worst.lock().unwrap().clone(),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

fn events(d: &Daemon, reason: &str) -> Vec<Value> {
    let list: Value = reqwest::blocking::get(format!("{}/v2/events?limit=1000", d.url))
        .unwrap()
        .json()
        .unwrap();
    list["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == reason)
        .cloned()
        .collect()
}

fn round_robin(python: &Path, d: &Daemon, requests: u32, retries: u32) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/swap_round_robin.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--base-url", &format!("{}/v1", d.url)])
        .args(["--models", &POOLS.join(",")])
        .args(["--requests", &requests.to_string()])
        .args(["--retries", &retries.to_string()])
        .output()
        .expect("run the round-robin script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `POST /v1/completions` for `model`; returns (status, body, when it ended).
fn complete(url: &str, model: &str, max_tokens: u32) -> (u16, Value, Instant) {
    let response = reqwest::blocking::Client::builder()
        .timeout(SETTLE)
        .build()
        .unwrap()
        .post(format!("{url}/v1/completions"))
        .json(&json!({"model": model, "prompt": "Once upon", "max_tokens": max_tokens}))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap(), Instant::now())
}

fn three_models_on_one_gpu_swap_without_a_failure(runtime: Runtime) {
    let python = llama_orch_e2e::python::with_openai();
    let d = Daemon::start(runtime);
    d.write_manifest("swap.yaml", &stack(&d));
    d.wait_for("every pool asleep", SETTLE, |s| POOLS.iter().all(|p| asleep(s, p)));
    assert!(d.container_ids().is_empty(), "sleeping pools run no container");

    // 60 completions, round robin, one at a time: each one may wake its Pool and evict another.
    let sampler = Sampler::start(&d, &POOLS);
    let report = round_robin(&python, &d, 60, 0);
    let (most, worst, samples) = sampler.finish();
    assert_eq!(report["failures"], json!([]), "{report:#}");
    let requests = report["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 60, "{report:#}");
    for r in requests {
        assert_eq!(
            (r["tokens"].as_u64(), r["finish_reason"].as_str()),
            (Some(4), Some("length")),
            "{r}"
        );
    }
    assert_eq!(
        most, 1,
        "{most} of the Pools were running at once ({worst:?}) in {samples} samples (0: the sampler saw none)"
    );
    assert!(samples > 10, "the sampler saw too little: {samples} samples");
    let evictions = events(&d, "Evicted");
    let activations = events(&d, "Activated");
    let ms: Vec<u64> = requests.iter().map(|r| r["ms"].as_u64().unwrap()).collect();
    let mut sorted = ms.clone();
    sorted.sort_unstable();
    println!(
        "{}: 60 requests round robin over 3 models in {} ms; {} activations, {} evictions (swaps); \
         request latency min {} / median {} / max {} ms; each request in order (ms): {ms:?}; \
         {samples} samples of the running containers, at most {most} pool at once",
        d.runtime.name,
        report["total_ms"],
        activations.len(),
        evictions.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
    );
    assert!(
        evictions.len() >= 55,
        "every request after the first few needs a swap: {} evictions",
        evictions.len()
    );
    let message = evictions[0]["message"].as_str().unwrap();
    assert!(
        message.contains("priority 0) to fit pool/") && message.contains("7.0 GiB per replica"),
        "{message}"
    );

    // A long task keeps its Pool resident: the competing activation waits, then answers.
    let sampler = Sampler::start(&d, &POOLS);
    let url = d.url.clone();
    let long = std::thread::spawn(move || complete(&url, "alpha", 100));
    d.wait_for("alpha running the long task", SETTLE, |s| {
        s.replicas
            .iter()
            .any(|r| r.pool == "alpha" && r.phase == llorch_manifests::status::ReplicaPhase::Ready)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, body, bravo_done) = complete(&d.url, "bravo", 4);
    assert_eq!(status, 200, "{body}");
    let (status, body, alpha_done) = long.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"]["completion_tokens"], 100,
        "the long task was not cut: {body}"
    );
    assert!(
        bravo_done > alpha_done,
        "bravo answered before alpha's long task ended: alpha was evicted while busy"
    );
    let (most, worst, _) = sampler.finish();
    assert_eq!(most, 1, "{worst:?} were running at once (0: the sampler saw none)");

    // After idleTimeout (3 s) without a task nothing is left.
    let deadline = Instant::now() + SETTLE;
    while !d.container_ids().is_empty() {
        assert!(Instant::now() < deadline, "containers left after the idle timeout");
        std::thread::sleep(Duration::from_millis(200));
    }

    // `orchctl wake` does what a task would: charlie starts; then bravo evicts it.
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let before = events(&d, "Evicted").len();
    let woke = d.orchctl(&["wake", "pool/charlie", "--wait", "--timeout", "60s"]);
    assert!(woke.status.success(), "{}", text(&woke));
    assert!(text(&woke).contains("pool/charlie is awake"), "{}", text(&woke));
    assert_eq!(d.container_ids().len(), 1);
    let table = d.orchctl(&["get", "pools"]);
    let shown = text(&table);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("alpha") && l.contains("0–1") && l.contains("asleep")),
        "{shown}"
    );
    let woke = d.orchctl(&["wake", "pool/bravo", "--wait", "--timeout", "60s"]);
    assert!(woke.status.success(), "{}", text(&woke));
    let evictions = events(&d, "Evicted");
    assert_eq!(evictions.len(), before + 1, "{evictions:?}");
    assert!(
        evictions
            .iter()
            .any(|e| e["object"]["name"] == "charlie" && e["message"].as_str().unwrap().contains("to fit pool/bravo")),
        "{evictions:?}"
    );
}

/// The chaos variant: the same round robin (30 requests) while an engine container is killed
/// 1.5 s after the last kill was recovered from. No accepted task is lost: each ends with its
/// tokens, or with a retriable error (429, 5xx, a dropped connection) that the client's retry
/// (at most 3) then completes.
fn killed_engines_lose_no_accepted_task(runtime: Runtime) {
    let python = llama_orch_e2e::python::with_openai();
    let d = Daemon::start(runtime);
    d.write_manifest("swap.yaml", &stack(&d));
    d.wait_for("every pool asleep", SETTLE, |s| POOLS.iter().all(|p| asleep(s, p)));

    let stop = Arc::new(AtomicBool::new(false));
    // After each kill the killer waits until some replica is Ready again (60 s at most), so the
    // chaos keeps pace with how fast engines load on this machine: a busy host stretches a
    // wake past 1.5 s, and a killer on a fixed clock would then kill every wake, which no
    // client's retries can outlast and which no real fault looks like.
    let killer = {
        let (stop, runtime, filter, url) = (
            stop.clone(),
            d.runtime.clone(),
            format!("label=dev.llama-orch.instance={}", d.instance),
            d.url.clone(),
        );
        std::thread::spawn(move || {
            let mut killed = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1_500));
                let out = runtime.cli().args(["ps", "-q", "--filter", &filter]).output().unwrap();
                let ids = String::from_utf8_lossy(&out.stdout).to_string();
                if let Some(id) = ids.lines().next()
                    && runtime
                        .cli()
                        .args(["kill", id])
                        .output()
                        .is_ok_and(|o| o.status.success())
                {
                    killed += 1;
                    let recovered = Instant::now() + SETTLE;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < recovered && !any_ready(&url) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            killed
        })
    };
    let report = round_robin(&python, &d, 30, 3);
    stop.store(true, Ordering::Relaxed);
    let killed = killer.join().unwrap();
    let requests = report["requests"].as_array().unwrap();
    println!(
        "{}: 30 requests round robin with an engine killed 1.5 s after each recovery: {killed} kills, {} retried attempts, {} failures, {} ms",
        d.runtime.name,
        report["retried"].as_array().unwrap().len(),
        report["failures"].as_array().unwrap().len(),
        report["total_ms"]
    );
    assert_eq!(report["failures"], json!([]), "{report:#}");
    assert_eq!(requests.len(), 30, "{report:#}");
    for r in requests {
        assert_eq!(r["tokens"].as_u64(), Some(4), "{r}");
    }
    assert!(killed >= 3, "the chaos was too mild: {killed} kills");
}

/// The same swap on the real engine fixture: llama.cpp's `llama-server` with the SmolLM2-135M
/// model (inference on the CPU, in this test only), two Pools each declared at 7 GiB on the
/// 12 GiB GPU; six completions round robin through `/v1`.
fn the_real_engine_swaps_too(runtime: Runtime) {
    let model = require_fixtures(&runtime);
    let d = Daemon::start(runtime);
    let pools = ["smol-a", "smol-b"];
    let mut text = engine_manifest();
    for pool in pools {
        text.push_str(&format!(
            "---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {pool}-model}}\nspec:\n  ref: file:{}\n  \
             digest: sha256:{GGUF_SHA256}\n  ctxMax: {CTX_MAX}\n  vramBytes: {}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec:\n  engine: llamacpp\n  model: {pool}-model\n  \
             gpus: [1]\n  ctxSize: 2048\n  slotsPerReplica: 1\n  scaling: {{minReplicas: 0, maxReplicas: 1, idleTimeout: 3s}}\n",
            model.display(),
            7 * GIB
        ));
    }
    d.write_manifest("smol.yaml", &text);
    d.wait_for("both pools asleep", SETTLE, |s| pools.iter().all(|p| asleep(s, p)));

    let sampler = Sampler::start(&d, &pools);
    let mut ms = Vec::new();
    for i in 0..6 {
        let t0 = Instant::now();
        let (status, body, _) = complete(&d.url, pools[i % 2], 4);
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(body["usage"]["completion_tokens"].as_u64() > Some(0), "{body}");
        ms.push(t0.elapsed().as_millis() as u64);
    }
    let (most, worst, samples) = sampler.finish();
    let evictions = events(&d, "Evicted").len();
    println!(
        "{}: real llama-server, 6 requests round robin over 2 pools: {evictions} evictions; latency per request (ms): {ms:?}; \
         at most {most} pool running at once in {samples} samples",
        d.runtime.name
    );
    assert_eq!(most, 1, "{worst:?} were running at once (0: the sampler saw none)");
    assert!(
        evictions >= 5,
        "each request after the first swaps: {evictions} evictions"
    );
}

llama_orch_e2e::on_both_runtimes!(
    three_models_on_one_gpu_swap_without_a_failure,
    killed_engines_lose_no_accepted_task,
    the_real_engine_swaps_too
);
