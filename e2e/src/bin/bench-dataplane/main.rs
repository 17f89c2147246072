//! Benchmark (not a test): what llama-orch's data plane adds on top of the engine, each number
//! against a baseline measured in the same run, on a real daemon on Docker with mock-engine
//! Pools (and one real-engine Pool).
//!
//! Every section also runs a third way beside direct and through: the direct request sent to
//! the reference proxy (`bench-proxy`, the smallest reverse proxy on the same stack: one HTTP
//! hop, nothing else). It tells what any proxy costs on this machine from what llama-orch adds.
//!
//! 1. Time to first token (TTFT), concurrency 1 and 64, pool 2 replicas × 32 slots:
//!    - direct: `POST <replica endpoint>/completion` (`stream: true`), clock from the send to
//!      the first token event of the body;
//!    - through: `POST /v2/tasks` then `GET /v2/tasks/{id}/events`, clock from the submit to
//!      the first `token` event.
//!
//!    At concurrency 1 it also gives the CPU per request of the daemon and of the reference
//!    proxy.
//! 2. Token relay throughput, 1 and 256 concurrent streams of 512 tokens, pools of 4 replicas ×
//!    64 slots, mock at unlimited token rate: tokens per second received by the clients,
//!    direct vs through, in two variants measured in turn in the same run: the engines in
//!    Docker containers (every loopback connection to them goes through Docker's userland
//!    proxy, `docker-proxy`) and the engines as plain processes (`provisioning: binary`, the
//!    `mock-engine` binary next to `llama-orchd`, no proxy). A second table puts the daemon's
//!    CPU per relayed token next to the proxy's and the engines'.
//! 3. Admission decisions per second at overload: one replica with one slot, a slow engine and
//!    a queue of 16 (`reject`), hammered by 64 clients in a closed loop; 202s + 429s per
//!    second, against `GET /healthz` (the HTTP stack alone) hammered the same way.
//! 4. A real engine: the `llama-orch/llama-server:dev` fixture (llama.cpp) serving SmolLM2-135M
//!    on the CPU, 1 replica × 16 slots; 4 and 16 concurrent streams of 64-token replies (fixed
//!    seed, temperature 0), direct vs through: tokens per second, and the CPU per relayed
//!    token of the daemon, the docker-proxy and the engine. Needs the fixtures
//!    `scripts/build-llama-server-image.sh` builds (`LLORCH_SMOLLM2_GGUF`, else its cache).
//!
//! Direct, through and reference runs take turns (request by request at concurrency 1, in
//! blocks above) so all see the same machine load; after each block the engines' `/slots` are polled until
//! the streams cut at the deadline have left them. All clients share one async `reqwest`
//! client with keep-alive (as the daemon's own engine client has), except the real engine's
//! direct requests, which open a connection each (llama-server closes it after a streamed
//! reply); bodies are read as they stream. CPU time of the client, the engines, the proxies
//! and the daemon comes from `/proc`: every thread's `task/*/schedstat` (nanoseconds) in the
//! relay and real-engine sections, `/proc/<pid>/stat` (10 ms ticks) in the admission section.
//! The admission benchmark runs first on the fresh daemon and again at the end, when the
//! daemon still holds every task the other sections ran (finished tasks are kept 5 minutes).
//!
//! `cargo build --release -p llama-orchd -p orchctl -p mock-engine -p llama-orch-e2e && \
//!  LLORCH_BIN_DIR=target/release target/release/bench-dataplane [--runs 400] [--reps 3] \
//!  [--secs 5] [--only ttft,relay,real,admission | ttft1 | ttft64 | relay-docker | relay-process] \
//!  [--reference http | tcp]`
//!
//! `--only` takes a comma-separated list; the default is `ttft,relay,real,admission`. `relay`
//! runs both relay variants, `relay-docker` and `relay-process` one each. `--otlp URL` starts
//! the daemon with trace export on (`telemetry.otlpEndpoint: URL`): two runs, one with it and
//! one without, give the cost of traces, each against its own direct baseline. `--records off`
//! starts it with job records off (`records.enabled: false`): the same comparison gives the cost
//! of writing a record per finished task. `--reference tcp` makes the third way a byte pump
//! (`bench-proxy --tcp`: no HTTP, bytes copied both ways per connection) in place of the HTTP
//! hop: the floor under any relay in user space on this machine.
//!
//! Layout: `ttft`, `relay`, `real` and `admission` hold one measurement each; `window` the
//! counted streaming window the relay and real sections share; `paths` the direct, through and
//! reference ways to a token; `reference` the reference proxy; `pools` the Pools they run on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
mod paths;
mod pools;
mod real;
mod reference;
mod relay;
mod ttft;
mod window;

use std::time::Duration;

use llama_orch_e2e::bench::cpu::daemon_pid;
use llama_orch_e2e::bench::stats::loadavg;
use llama_orch_e2e::daemon::{Daemon, Runtime, bin};
use reqwest::Client;

struct Opts {
    runs: usize,
    reps: usize,
    secs: f64,
    only: Vec<String>,
    /// What the third way goes through.
    hop: reference::Hop,
}

impl Opts {
    fn wants(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }

    fn wants_any(&self, what: &[&str]) -> bool {
        what.iter().any(|w| self.wants(w))
    }
}

fn main() {
    let flag = llama_orch_e2e::bench::flag;
    let opts = Opts {
        runs: flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(400),
        reps: flag("--reps").and_then(|r| r.parse().ok()).unwrap_or(3),
        secs: flag("--secs").and_then(|r| r.parse().ok()).unwrap_or(5.0),
        only: flag("--only")
            .unwrap_or_else(|| "ttft,relay,real,admission".into())
            .split(',')
            .map(str::to_string)
            .collect(),
        hop: match flag("--reference") {
            None => reference::Hop::Http,
            Some(h) => reference::Hop::parse(&h).unwrap_or_else(|| panic!("--reference takes http or tcp, not `{h}`")),
        },
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
    if opts.wants_any(&["relay", "relay-process"]) {
        // The plain-process variant runs the mock engine next to llama-orchd.
        bin("mock-engine");
    }
    let load_before = loadavg();
    // The process variant's engines are the mock-engine binary, which config must allow.
    let mut allow = format!(
        "provisioning:\n  allowedExecutables: [{}]\n",
        bin("mock-engine").display()
    );
    if let Some(url) = flag("--otlp") {
        allow += &format!("telemetry:\n  otlpEndpoint: {url}\n");
        println!("trace export on: {url}");
    }
    if flag("--records").as_deref() == Some("off") {
        allow += "records:\n  enabled: false\n";
        println!("job records off");
    }
    println!("reference: {}", opts.hop.describe());
    let d = Daemon::start_with(Runtime::docker(), &allow);
    if wants("real") {
        real::require_fixtures(&d);
    }
    let daemon = daemon_pid();
    let mut report = String::new();
    let mut admission = String::new();

    // Admission first on a fresh daemon, and again at the end with every task the other
    // sections ran still held (finished tasks are kept 5 minutes).
    if wants("admission") {
        admission += &admission::fresh(&tokio, &http, &d, daemon, &opts);
    }

    if wants("ttft") || wants("ttft1") || wants("ttft64") {
        report += &ttft::section(&tokio, &http, &d, daemon, &opts);
    }

    if !relay::variants(&opts).is_empty() {
        report += &relay::section(&tokio, &http, &d, daemon, &opts);
    }

    if wants("real") {
        report += &real::section(&tokio, &http, &d, daemon, &opts);
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
