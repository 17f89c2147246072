//! Benchmark (not a test): what sleeping and swapping cost (issue 10).
//!
//! - **Wake.** One Pool of `minReplicas: 0` (mock engine, 300 ms load delay); each run waits
//!   until it sleeps with no container, then times a `/v1/completions` request of one token from
//!   sending to the answer. The baseline, measured in the same run: the engine's own start —
//!   create and start the same container through the runtime API, poll `/health` until 200. The
//!   difference is what a wake adds over loading the engine.
//! - **Round robin.** Three Pools whose Models need 7 GiB each on the simulated 12 GiB GPU, so
//!   each request swaps, against the same three Pools declared 2 GiB each and fixed at one
//!   replica, so all three stay resident: the same sequence of one-at-a-time requests (32
//!   tokens at 50 a second, round robin), tasks per minute each way.
//!
//! `cargo build --release --bins && LLORCH_BIN_DIR=target/release \
//!  target/release/bench-swap [--runtime docker|podman] [--runs 10] [--requests 30]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llama_orch_e2e::bench::engine_start;
use llama_orch_e2e::bench::stats::summary;
use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready};
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ConditionType;
use serde_json::json;

const LOAD_DELAY: &str = "300";
const GIB: u64 = 1 << 30;
const POOLS: [&str; 3] = ["alpha", "bravo", "charlie"];
/// The round robin's work: each request generates this many tokens at this rate (0.64 s).
const TOKENS: u32 = 32;
const TOKEN_RATE: u32 = 50;

/// The mock engine Engine: 300 ms to load, `token_rate` tokens a second (0: at once).
fn engine(token_rate: u32) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  image: {}\n  version: \"0.1.0\"\n  \
         extraArgs: [\"--load-delay-ms\", \"{LOAD_DELAY}\", \"--token-rate\", \"{token_rate}\"]\n  health: {{path: /health, intervalMs: 100}}\n",
        llama_orch_e2e::mock_image()
    )
}

/// A Model of `gib` and a Pool `name` on the 12 GiB GPU, sized by `sizing` (a YAML line).
fn pool(d: &Daemon, name: &str, gib: u64, sizing: &str) -> String {
    format!(
        "---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}-model}}\nspec:\n  ref: file:{}\n  \
         ctxMax: 4096\n  vramBytes: {}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\nspec:\n  engine: mock\n  model: {name}-model\n  \
         gpus: [1]\n  {sizing}\n",
        d.model_path().display(),
        gib * GIB
    )
}

fn asleep(s: &Snapshot, pool: &str) -> bool {
    s.objects.iter().any(|o| {
        o.object.name == pool
            && o.status
                .condition(ConditionType::Ready)
                .is_some_and(|c| c.status && c.reason == llorch_manifests::Reason::ScaledToZero)
    })
}

fn complete(http: &reqwest::blocking::Client, d: &Daemon, model: &str, max_tokens: u32) {
    let r = http
        .post(format!("{}/v1/completions", d.url))
        .json(&json!({"model": model, "prompt": "Once upon", "max_tokens": max_tokens}))
        .send()
        .unwrap();
    assert!(
        r.status().is_success(),
        "{model}: {} {}",
        r.status(),
        r.text().unwrap_or_default()
    );
}

/// Milliseconds per wake: asleep, then one request of one token.
fn wakes(d: &Daemon, http: &reqwest::blocking::Client, runs: usize) -> Vec<f64> {
    let mut text = engine(0);
    text.push_str(&pool(
        d,
        "sleepy",
        1,
        "scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 1s}",
    ));
    d.write_manifest("wake.yaml", &text);
    let mut out = Vec::new();
    for _ in 0..runs {
        d.wait_for("sleepy asleep", Duration::from_secs(60), |s| asleep(s, "sleepy"));
        while !d.container_ids().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let t0 = Instant::now();
        complete(http, d, "sleepy", 1);
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    d.delete_manifest("wake.yaml");
    d.wait_for("wake pool gone", Duration::from_secs(30), |s| s.replicas.is_empty());
    while !d.container_ids().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// Seconds for `requests` round-robin requests over the three Pools, declared with `gib` and
/// `sizing`; `ready` says when the setup is in place.
fn round_robin(
    d: &Daemon,
    http: &reqwest::blocking::Client,
    requests: usize,
    gib: u64,
    sizing: &str,
    ready: impl Fn(&Snapshot) -> bool,
) -> f64 {
    let mut text = engine(TOKEN_RATE);
    for p in POOLS {
        text.push_str(&pool(d, p, gib, sizing));
    }
    d.write_manifest("rr.yaml", &text);
    d.wait_for("round-robin pools in place", Duration::from_secs(60), ready);
    let t0 = Instant::now();
    for i in 0..requests {
        complete(http, d, POOLS[i % POOLS.len()], TOKENS);
    }
    let took = t0.elapsed().as_secs_f64();
    d.delete_manifest("rr.yaml");
    d.wait_for("round-robin pools gone", Duration::from_secs(30), |s| {
        s.replicas.is_empty()
    });
    while !d.container_ids().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    took
}

fn main() {
    let flag = llama_orch_e2e::bench::flag;
    let runs: usize = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(10);
    let requests: usize = flag("--requests").and_then(|r| r.parse().ok()).unwrap_or(30);
    let rt = match flag("--runtime").as_deref() {
        Some("podman") => Runtime::podman(),
        _ => Runtime::docker(),
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut d = Daemon::start(rt.clone());
    let model = d.model_path();

    eprintln!(
        "baseline: the engine's own start ({LOAD_DELAY} ms load delay), {runs} runs on {}",
        rt.name
    );
    let base = engine_start::measure(&rt, &model, runs, &["--load-delay-ms", LOAD_DELAY]);
    eprintln!("wake: asleep → a one-token answer, {runs} runs");
    let woke = wakes(&d, &http, runs);

    eprintln!("round robin, {requests} requests: three 7 GiB Pools on 12 GiB (every request swaps)");
    let swapping = round_robin(
        &d,
        &http,
        requests,
        7,
        "scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 10m}",
        |s| POOLS.iter().all(|p| asleep(s, p)),
    );
    eprintln!("round robin, {requests} requests: three 2 GiB Pools, one replica each (all resident)");
    let resident = round_robin(&d, &http, requests, 2, "replicas: 1", |s| {
        POOLS.iter().all(|p| pool_ready(s, p, 1))
    });
    d.kill();

    let (b, b50) = summary("engine start alone (baseline)", base);
    let (w, w50) = summary("asleep → one-token answer (wake)", woke);
    println!(
        "runtime: {} ({runs} runs; times in ms; mock engine load delay {LOAD_DELAY} ms)\n",
        rt.name
    );
    println!("| measurement | runs | p50 | p90 | min | max |\n|---|---|---|---|---|---|\n{b}\n{w}");
    println!(
        "\nadded by a wake at p50: {:+.0} ms over the engine's own start",
        w50 - b50
    );
    let per_min = |secs: f64| requests as f64 * 60.0 / secs;
    println!(
        "\n| round robin, {requests} requests of {TOKENS} tokens at {TOKEN_RATE}/s, one at a time | seconds | tasks/min |\n|---|---|---|\n\
         | all three resident (baseline) | {resident:.1} | {:.1} |\n| each request swaps (7 GiB × 3 on 12 GiB) | {swapping:.1} | {:.1} |",
        per_min(resident),
        per_min(swapping)
    );
    println!(
        "\nswapping runs at {:.0} % of the resident rate ({:.0} ms more per request)",
        100.0 * resident / swapping,
        (swapping - resident) * 1e3 / requests as f64
    );
}
