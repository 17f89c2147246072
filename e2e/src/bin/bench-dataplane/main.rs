//! Benchmark (not a test): what llama-orch's data plane adds on top of the engine, each number
//! against a baseline measured in the same run, on a real daemon with mock-engine Pools on
//! Docker.
//!
//! 1. Time to first token (TTFT), concurrency 1 and 64, pool 2 replicas × 32 slots:
//!    - direct: `POST <replica endpoint>/completion` (`stream: true`), clock from the send to
//!      the first token event of the body;
//!    - through: `POST /v2/tasks` then `GET /v2/tasks/{id}/events`, clock from the submit to
//!      the first `token` event.
//! 2. Token relay throughput, 1 and 256 concurrent streams of 512 tokens, pool 4 replicas ×
//!    64 slots, mock at unlimited token rate: tokens per second received by the clients,
//!    direct vs through.
//! 3. Admission decisions per second at overload: one replica with one slot, a slow engine and
//!    a queue of 16 (`reject`), hammered by 64 clients in a closed loop; 202s + 429s per
//!    second, against `GET /healthz` (the HTTP stack alone) hammered the same way.
//!
//! Direct and through runs alternate (request by request at concurrency 1, in blocks above)
//! so both see the same machine load. All clients share one async `reqwest` client with
//! keep-alive (as the daemon's own engine client has); bodies are read as they stream. CPU time
//! of the client, the engine containers and the daemon comes from `/proc/<pid>/stat`. The
//! admission benchmark runs first on the fresh daemon and again at the end, when the daemon
//! still holds every task the other sections ran (finished tasks are kept 5 minutes).
//!
//! `cargo build --release -p llama-orchd -p orchctl -p llama-orch-e2e && \
//!  LLORCH_BIN_DIR=target/release target/release/bench-dataplane [--runs 400] [--reps 3] \
//!  [--secs 5] [--only ttft,relay,admission | ttft1 | ttft64]`
//!
//! Layout: `ttft`, `relay` and `admission` hold one measurement each; `paths` the direct and
//! through ways to a token; `pools` the Pools they run on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
mod paths;
mod pools;
mod relay;
mod ttft;

use std::time::Duration;

use llama_orch_e2e::bench::cpu::daemon_pid;
use llama_orch_e2e::bench::stats::loadavg;
use llama_orch_e2e::daemon::{Daemon, Runtime};
use reqwest::Client;

struct Opts {
    runs: usize,
    reps: usize,
    secs: f64,
    only: Vec<String>,
}

impl Opts {
    fn wants(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let opts = Opts {
        runs: flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(400),
        reps: flag("--reps").and_then(|r| r.parse().ok()).unwrap_or(3),
        secs: flag("--secs").and_then(|r| r.parse().ok()).unwrap_or(5.0),
        only: flag("--only")
            .unwrap_or_else(|| "ttft,relay,admission".into())
            .split(',')
            .map(str::to_string)
            .collect(),
    };
    let wants = |what: &str| opts.wants(what);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let load_before = loadavg();
    let d = Daemon::start(Runtime::docker());
    let daemon = daemon_pid();
    let mut report = String::new();
    let mut admission = String::new();

    // Admission first on a fresh daemon, and again at the end with every task the other
    // sections ran still held (finished tasks are kept 5 minutes).
    if wants("admission") {
        admission += &admission::fresh(&tokio, &http, &d, daemon, &opts);
    }

    if wants("ttft") || wants("ttft1") || wants("ttft64") {
        report += &ttft::section(&tokio, &http, &d, &opts);
    }

    if wants("relay") {
        report += &relay::section(&tokio, &http, &d, daemon, &opts);
    }

    if wants("admission") {
        report += &admission::section(&tokio, &http, &d, daemon, &opts, &admission);
    }

    drop(d);
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}\n\n{report}",
        loadavg()
    );
}
