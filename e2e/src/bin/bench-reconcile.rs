//! Benchmark (not a test): how long llama-orch takes to bring an engine to Ready, against the
//! engine's own start time measured in the same run.
//!
//! - baseline: create + start the mock engine container through the same runtime API the
//!   daemon uses, then poll its `/health` every 2 ms until 200;
//! - manifest write → Ready: a Pool manifest (1 replica) is written into the watched directory;
//!   the clock stops when `/v2/pools/<name>` reports Ready for that manifest;
//! - killed container → Ready: `kill` on a Ready replica's container; the clock stops when the
//!   Pool is Ready again on a new container.
//!
//! `cargo build --release --bins && LLORCH_BIN_DIR=target/release \
//!  target/release/bench-reconcile [--runtime docker|podman] [--runs 20]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llama_orch_e2e::bench::engine_start;
use llama_orch_e2e::bench::stats::summary;
use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, replica_containers};

fn main() {
    let flag = llama_orch_e2e::bench::flag;
    let runs: usize = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(20);
    let rt = match flag("--runtime").as_deref() {
        Some("podman") => Runtime::podman(),
        _ => Runtime::docker(),
    };
    let http = reqwest::blocking::Client::new();
    let mut d = Daemon::start(rt.clone());
    let model = d.model_path();
    eprintln!("baseline: starting the engine directly, {runs} runs on {}", rt.name);
    let base = engine_start::measure(&rt, &model, runs, &[]);

    eprintln!("manifest write → Ready, {runs} runs");
    let mut write_to_ready = Vec::new();
    for i in 0..runs {
        let pool = format!("w{i}");
        let t0 = Instant::now();
        d.write_manifest("bench.yaml", &mock_stack("mock", &pool, 1, &model, &[]));
        loop {
            let r = http.get(format!("{}/v2/pools/{pool}", d.url)).send();
            if let Ok(r) = r
                && let Ok(v) = r.json::<llorch_manifests::api::ObjectView>()
                && v.status.is_ready()
                && v.status.observed_generation == v.status.generation
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        write_to_ready.push(t0.elapsed().as_secs_f64() * 1e3);
        d.delete_manifest("bench.yaml");
        d.wait_for("bench pool gone", Duration::from_secs(30), |s| s.replicas.is_empty());
        while !d.container_ids().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    eprintln!("killed container → Ready, {runs} runs");
    d.write_manifest("bench.yaml", &mock_stack("mock", "k", 1, &model, &[]));
    d.wait_for("pool k Ready", Duration::from_secs(30), |s| pool_ready(s, "k", 1));
    let mut kill_to_ready = Vec::new();
    for _ in 0..runs {
        let victim = replica_containers(&d.snapshot(), "k")[0].clone().unwrap();
        rt.run(&["kill", &victim]);
        let t0 = Instant::now();
        d.wait_for("replacement Ready", Duration::from_secs(60), |s| {
            pool_ready(s, "k", 1) && replica_containers(s, "k")[0].as_deref().is_some_and(|id| id != victim)
        });
        kill_to_ready.push(t0.elapsed().as_secs_f64() * 1e3);
        // Let the slot count as stable again so every run sees the immediate first restart.
        std::thread::sleep(Duration::from_millis(10_500));
    }
    d.kill();

    let (b, b50) = summary("engine start alone (baseline)", base);
    let (w, w50) = summary("manifest write → Pool Ready", write_to_ready);
    let (k, k50) = summary("container killed → Pool Ready", kill_to_ready);
    println!("runtime: {} ({} runs each; times in ms)\n", rt.name, runs);
    println!("| measurement | runs | p50 | p90 | min | max |\n|---|---|---|---|---|---|\n{b}\n{w}\n{k}");
    println!(
        "\nadded by llama-orch at p50: write → Ready {:+.0} ms, kill → Ready {:+.0} ms over the engine's own start",
        w50 - b50,
        k50 - b50
    );
}
