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
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::{CpuUse, Procs, cpu_secs, daemon_pid, engine_pids, proxy_pids};
use llama_orch_e2e::bench::sse_count::{self, Events, Kind};
use llama_orch_e2e::bench::stats::{loadavg, median, percentile, sorted};
use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use reqwest::Client;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const PROMPT: &str = "Once upon a time";

/// A Pool manifest of the mock engine: `replicas` × `slots`, context `ctx` (split over the
/// slots by the engine, as llama-server does), a `queue`, and extra engine flags.
fn pool(d: &Daemon, name: &str, replicas: u32, slots: u32, ctx: u32, queue: &str, args: &[&str]) -> String {
    mock_stack(&format!("{name}-engine"), name, replicas, &d.model_path(), args)
        .replace(
            "slotsPerReplica: 2",
            &format!("slotsPerReplica: {slots}\n  queue: {queue}"),
        )
        .replace("ctxMax: 4096", &format!("ctxMax: {ctx}"))
}

/// Applies a Pool, waits for it, and returns its replica endpoints.
fn bring_up(d: &Daemon, name: &str, manifest: &str, replicas: u32) -> Vec<String> {
    d.write_manifest(&format!("{name}.yaml"), manifest);
    let s = d.wait_for(&format!("pool {name} Ready"), READY, |s| pool_ready(s, name, replicas));
    let endpoints: Vec<String> = s
        .replicas
        .iter()
        .filter(|r| r.pool == name)
        .filter_map(|r| r.endpoint.clone())
        .collect();
    assert_eq!(endpoints.len(), replicas as usize, "endpoints of {name}");
    endpoints
}

fn tear_down(d: &Daemon, name: &str) {
    d.delete_manifest(&format!("{name}.yaml"));
    d.wait_for(&format!("pool {name} gone"), READY, |s| {
        s.replicas.iter().all(|r| r.pool != name)
    });
    let (instance, pool) = (
        format!("label=dev.llama-orch.instance={}", d.instance),
        format!("label=dev.llama-orch.pool={name}"),
    );
    let deadline = Instant::now() + READY;
    while !d
        .runtime
        .run(&["ps", "-a", "-q", "--filter", &instance, "--filter", &pool])
        .is_empty()
    {
        assert!(Instant::now() < deadline, "pool {name}'s containers are still there");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The two ways to a token.
#[derive(Clone)]
struct Paths {
    http: Client,
    /// The daemon, `http://127.0.0.1:port`.
    base: String,
    /// The pool's replica endpoints.
    endpoints: Arc<Vec<String>>,
    /// Pool name.
    pool: String,
}

/// Per-request timings through llama-orch, in ms from the submit.
#[derive(Clone, Copy, Default)]
struct Stages {
    /// 202 received and parsed.
    submitted: f64,
    /// Events response head received.
    opened: f64,
    /// First token event.
    first_token: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Paths {
    fn completion_body(max_tokens: u32) -> Vec<u8> {
        serde_json::to_vec(&json!({"prompt": PROMPT, "n_predict": max_tokens, "stream": true, "seed": 7})).unwrap()
    }

    fn task_body(&self, max_tokens: u32) -> Vec<u8> {
        serde_json::to_vec(&json!({"pool": self.pool, "prompt": PROMPT, "max_tokens": max_tokens, "seed": 7})).unwrap()
    }

    async fn open_direct(&self, worker: usize, body: &[u8]) -> Events {
        let url = format!("{}/completion", self.endpoints[worker % self.endpoints.len()]);
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "direct /completion");
        Events::new(r, sse_count::direct)
    }

    /// Submit + open the stream; `t0` is the submit.
    async fn open_through(&self, body: &[u8], t0: Instant, stages: &mut Stages) -> Events {
        let r = self
            .http
            .post(format!("{}/v2/tasks", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let admitted: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "submit: {admitted}");
        stages.submitted = ms(t0.elapsed());
        let id = admitted["task_id"].as_str().unwrap();
        let r = self
            .http
            .get(format!("{}/v2/tasks/{id}/events", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "events of {id}");
        stages.opened = ms(t0.elapsed());
        Events::new(r, sse_count::through)
    }

    /// TTFT direct, ms.
    async fn ttft_direct(&self, worker: usize, body: &[u8]) -> f64 {
        let t0 = Instant::now();
        let mut ev = self.open_direct(worker, body).await;
        let ttft = loop {
            match ev.next().await {
                Some(Kind::Token) => break ms(t0.elapsed()),
                Some(Kind::Other) => {}
                other => panic!("direct stream ended before a token: {other:?}"),
            }
        };
        finish(ev).await;
        ttft
    }

    /// TTFT through llama-orch, with its stages.
    async fn ttft_through(&self, body: &[u8]) -> Stages {
        let t0 = Instant::now();
        let mut stages = Stages::default();
        let mut ev = self.open_through(body, t0, &mut stages).await;
        loop {
            match ev.next().await {
                Some(Kind::Token) => {
                    stages.first_token = ms(t0.elapsed());
                    break;
                }
                Some(Kind::Other) => {}
                other => panic!("task stream ended before a token: {other:?}"),
            }
        }
        finish(ev).await;
        stages
    }
}

/// Reads a stream to its final event and then to the end of the body.
async fn finish(mut ev: Events) {
    loop {
        match ev.next().await {
            Some(Kind::End) | None => break,
            Some(Kind::Error) => panic!("stream ended with an error"),
            Some(_) => {}
        }
    }
    ev.drain().await;
}

struct Opts {
    runs: usize,
    reps: usize,
    secs: f64,
    only: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// 1. TTFT

struct TtftResult {
    concurrency: usize,
    direct: Vec<f64>,
    through: Vec<Stages>,
}

async fn ttft_c1(p: &Paths, runs: usize) -> TtftResult {
    let (cbody, tbody) = (Paths::completion_body(4), p.task_body(4));
    // Warm the connections on both paths (the daemon's to the engine too).
    for i in 0..20 {
        p.ttft_direct(i, &cbody).await;
        p.ttft_through(&tbody).await;
    }
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first so neither always follows the other.
        if i % 2 == 0 {
            direct.push(p.ttft_direct(i, &cbody).await);
            through.push(p.ttft_through(&tbody).await);
        } else {
            through.push(p.ttft_through(&tbody).await);
            direct.push(p.ttft_direct(i, &cbody).await);
        }
    }
    TtftResult {
        concurrency: 1,
        direct,
        through,
    }
}

async fn ttft_concurrent(p: &Paths, concurrency: usize, per_worker: usize, reps: usize) -> TtftResult {
    let (cbody, tbody) = (Arc::new(Paths::completion_body(4)), Arc::new(p.task_body(4)));
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    // Rep 0 is a warm-up (opens the connections on both sides), not counted.
    for rep in 0..=reps {
        for via_orch in [rep % 2 == 1, rep % 2 == 0] {
            let handles: Vec<_> = (0..concurrency)
                .map(|w| {
                    let (p, cbody, tbody) = (p.clone(), cbody.clone(), tbody.clone());
                    tokio::spawn(async move {
                        let (mut d, mut t) = (Vec::new(), Vec::new());
                        for _ in 0..per_worker {
                            if via_orch {
                                t.push(p.ttft_through(&tbody).await);
                            } else {
                                d.push(p.ttft_direct(w, &cbody).await);
                            }
                        }
                        (d, t)
                    })
                })
                .collect();
            for h in handles {
                let (d, t) = h.await.unwrap();
                if rep > 0 {
                    direct.extend(d);
                    through.extend(t);
                }
            }
        }
    }
    TtftResult {
        concurrency,
        direct,
        through,
    }
}

fn ttft_table(results: &[TtftResult]) -> String {
    let mut out = String::from(
        "| concurrency | samples | direct p50 | through p50 | **added p50** | direct p99 | through p99 | **added p99** | ≥ 30 ms direct / through |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let d = sorted(r.direct.clone());
        let t = sorted(r.through.iter().map(|s| s.first_token).collect());
        let (d50, t50, d99, t99) = (
            percentile(&d, 0.5),
            percentile(&t, 0.5),
            percentile(&d, 0.99),
            percentile(&t, 0.99),
        );
        let slow = |v: &[f64]| 100.0 * v.iter().filter(|&&x| x >= 30.0).count() as f64 / v.len() as f64;
        out += &format!(
            "| {} | {}+{} | {d50:.3} | {t50:.3} | **{:+.3}** | {d99:.3} | {t99:.3} | **{:+.3}** | {:.0} % / {:.0} % |\n",
            r.concurrency,
            d.len(),
            t.len(),
            t50 - d50,
            t99 - d99,
            slow(&d),
            slow(&t)
        );
    }
    out += "\nThrough llama-orch, p50 of each stage (ms from the submit):\n\n| concurrency | 202 received | events head received | first token |\n|---|---|---|---|\n";
    for r in results {
        let st = |f: fn(&Stages) -> f64| median(&r.through.iter().map(f).collect::<Vec<_>>());
        out += &format!(
            "| {} | {:.3} | {:.3} | {:.3} |\n",
            r.concurrency,
            st(|s| s.submitted),
            st(|s| s.opened),
            st(|s| s.first_token)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 2. Relay throughput

/// Tokens received per second by `concurrency` clients, each streaming `max_tokens`-token
/// replies back to back, counted over `secs` after a 1 s warm-up.
async fn relay(
    p: &Paths,
    procs: &Procs,
    through: bool,
    concurrency: usize,
    max_tokens: u32,
    secs: f64,
) -> (f64, u64, CpuUse) {
    let (cbody, tbody) = (
        Arc::new(Paths::completion_body(max_tokens)),
        Arc::new(p.task_body(max_tokens)),
    );
    let start = Instant::now() + Duration::from_secs(1);
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|w| {
            let (p, cbody, tbody) = (p.clone(), cbody.clone(), tbody.clone());
            tokio::spawn(async move {
                let mut counted = 0u64;
                let work = async {
                    loop {
                        let mut ev = if through {
                            p.open_through(&tbody, Instant::now(), &mut Stages::default()).await
                        } else {
                            p.open_direct(w, &cbody).await
                        };
                        loop {
                            match ev.next().await {
                                Some(Kind::Token) => {
                                    if Instant::now() >= start {
                                        counted += 1;
                                    }
                                }
                                Some(Kind::End) | None => break,
                                Some(Kind::Error) => panic!("relay stream failed"),
                                Some(Kind::Other) => {}
                            }
                        }
                        ev.drain().await;
                    }
                };
                let _ = tokio::time::timeout_at(deadline.into(), work).await;
                counted
            })
        })
        .collect();
    // CPU used over the counted window.
    let procs = procs.clone();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = procs.now();
        tokio::time::sleep_until(deadline.into()).await;
        procs.now() - before
    });
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    let cpu = cpu.await.unwrap();
    // Let the streams cut at the deadline be canceled and their slots freed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (total as f64 / secs, total, cpu)
}

// ---------------------------------------------------------------------------------------------
// 3. Admission decisions per second

/// One closed-loop hammering: decisions (2xx + 429) per second, their counts, other answers,
/// and the daemon's CPU seconds.
#[derive(Clone, Copy, Default)]
struct Hammered {
    rate: f64,
    ok: u64,
    busy: u64,
    other: u64,
    daemon_cpu: f64,
}

/// `concurrency` clients hammering `url` in a closed loop for `secs`.
async fn hammer(
    http: &Client,
    daemon: u32,
    url: &str,
    body: Option<Arc<Vec<u8>>>,
    concurrency: usize,
    secs: f64,
) -> Hammered {
    let cpu_before = cpu_secs(daemon);
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.to_string(), body.clone());
            tokio::spawn(async move {
                let (mut ok, mut busy, mut other) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    let req = match &body {
                        Some(b) => http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(b.to_vec()),
                        None => http.get(&url),
                    };
                    match req.send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            match status {
                                200 | 202 => ok += 1,
                                429 => busy += 1,
                                _ => other += 1,
                            }
                        }
                        Err(_) => other += 1,
                    }
                }
                (ok, busy, other)
            })
        })
        .collect();
    let mut h = Hammered::default();
    for handle in handles {
        let (a, b, c) = handle.await.unwrap();
        h.ok += a;
        h.busy += b;
        h.other += c;
    }
    // Until the last client's last answer (each stops after the deadline).
    let elapsed = began.elapsed().as_secs_f64();
    h.daemon_cpu = cpu_secs(daemon) - cpu_before;
    h.rate = (h.ok + h.busy) as f64 / elapsed;
    h
}

/// Hammers `/healthz` and `POST /v2/tasks` alternately, `reps` times each; one table row pair.
fn admission_rows(
    tokio: &tokio::runtime::Runtime,
    http: &Client,
    d: &Daemon,
    daemon: u32,
    opts: &Opts,
    label: &str,
) -> String {
    let body = Arc::new(serde_json::to_vec(&json!({"pool": "adm", "prompt": PROMPT, "max_tokens": 1000})).unwrap());
    let tasks_url = format!("{}/v2/tasks", d.url);
    let health_url = format!("{}/healthz", d.url);
    let secs = opts.secs.min(3.0);
    // Warm-up: opens the connections (and, the first time, fills the queue).
    tokio.block_on(hammer(
        http,
        daemon,
        &tasks_url,
        Some(body.clone()),
        ADMISSION_CLIENTS,
        0.5,
    ));
    let held = tokio
        .block_on(async { http.get(&tasks_url).send().await?.json::<Vec<Value>>().await })
        .map(|v| v.len())
        .unwrap_or(0);
    let (mut hz, mut tk) = (Vec::new(), Vec::new());
    let (mut hz_cpu, mut hz_n, mut tk_cpu, mut tk_n) = (0.0, 0u64, 0.0, 0u64);
    let (mut admitted, mut refused, mut other) = (0, 0, 0);
    for rep in 0..opts.reps {
        eprintln!("  {label}: rep {rep}");
        let order = if rep % 2 == 0 { [false, true] } else { [true, false] };
        for tasks in order {
            if tasks {
                let h = tokio.block_on(hammer(
                    http,
                    daemon,
                    &tasks_url,
                    Some(body.clone()),
                    ADMISSION_CLIENTS,
                    secs,
                ));
                eprintln!(
                    "    POST /v2/tasks: {:.0}/s ({} × 202, {} × 429, {} other)",
                    h.rate, h.ok, h.busy, h.other
                );
                tk.push(h.rate);
                (tk_cpu, tk_n) = (tk_cpu + h.daemon_cpu, tk_n + h.ok + h.busy);
                (admitted, refused, other) = (admitted + h.ok, refused + h.busy, other + h.other);
            } else {
                let h = tokio.block_on(hammer(http, daemon, &health_url, None, ADMISSION_CLIENTS, secs));
                eprintln!("    GET /healthz: {:.0}/s", h.rate);
                hz.push(h.rate);
                (hz_cpu, hz_n) = (hz_cpu + h.daemon_cpu, hz_n + h.ok);
            }
        }
    }
    let (hm, tm) = (median(&hz), median(&tk));
    let us = |cpu: f64, n: u64| 1e6 * cpu / n.max(1) as f64;
    format!(
        "| {label} ({held} tasks held) | `GET /healthz` | {hm:.0} | 100 % | {:.1} |\n\
         | | `POST /v2/tasks` (202 + 429) | {tm:.0} | **{:.1} %** | {:.1} |\n\
         | | | | ({admitted} × 202, {refused} × 429, {other} other) | |\n",
        us(hz_cpu, hz_n),
        100.0 * tm / hm,
        us(tk_cpu, tk_n),
    )
}

/// Clients hammering in the admission benchmark.
const ADMISSION_CLIENTS: usize = 64;

// ---------------------------------------------------------------------------------------------

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
    let wants = |what: &str| opts.only.iter().any(|o| o == what);
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
        eprintln!("admission: pool 1 replica × 1 slot, queue 16 (reject), --token-rate 2, {ADMISSION_CLIENTS} clients");
        bring_up(
            &d,
            "adm",
            &pool(
                &d,
                "adm",
                1,
                1,
                4096,
                "{capacity: 16, fullPolicy: reject}",
                &["--token-rate", "2"],
            ),
            1,
        );
        admission += &admission_rows(&tokio, &http, &d, daemon, &opts, "fresh daemon");
    }

    if wants("ttft") || wants("ttft1") || wants("ttft64") {
        eprintln!("TTFT: pool 2 replicas × 32 slots, --token-rate 0");
        let endpoints = bring_up(
            &d,
            "ttft",
            &pool(&d, "ttft", 2, 32, 4096, "{capacity: 256}", &["--token-rate", "0"]),
            2,
        );
        let p = Paths {
            http: http.clone(),
            base: d.url.clone(),
            endpoints: Arc::new(endpoints),
            pool: "ttft".into(),
        };
        // A bare HTTP round trip to the daemon, for reading the stages.
        let healthz: Vec<f64> = tokio.block_on(async {
            let mut v = Vec::new();
            for i in 0..(opts.runs + 20) {
                let t0 = Instant::now();
                let r = http.get(format!("{}/healthz", d.url)).send().await.unwrap();
                let _ = r.bytes().await;
                if i >= 20 {
                    v.push(ms(t0.elapsed()));
                }
            }
            v
        });
        let mut results = Vec::new();
        if wants("ttft") || wants("ttft1") {
            eprintln!("  concurrency 1, {} requests each way", opts.runs);
            results.push(tokio.block_on(ttft_c1(&p, opts.runs)));
        }
        if wants("ttft") || wants("ttft64") {
            eprintln!("  concurrency 64, {} reps of 64 × 10 requests each way", opts.reps);
            results.push(tokio.block_on(ttft_concurrent(&p, 64, 10, opts.reps)));
        }
        report += "### Added time to first token (ms)\n\n";
        report += &ttft_table(&results);
        report += &format!(
            "\nA bare `GET /healthz` round trip to the daemon (concurrency 1): p50 {:.3} ms.\n\n",
            median(&healthz)
        );
        tear_down(&d, "ttft");
    }

    if wants("relay") {
        eprintln!("relay: pool 4 replicas × 64 slots, --token-rate 0, 512-token replies");
        let endpoints = bring_up(
            &d,
            "relay",
            &pool(&d, "relay", 4, 64, 131_072, "{capacity: 512}", &["--token-rate", "0"]),
            4,
        );
        let procs = Procs {
            daemon,
            engines: engine_pids(&d, "relay"),
            proxies: proxy_pids(&endpoints),
        };
        eprintln!("  {} docker-proxy processes in the path", procs.proxies.len());
        let p = Paths {
            http: http.clone(),
            base: d.url.clone(),
            endpoints: Arc::new(endpoints),
            pool: "relay".into(),
        };
        report += "### Token relay throughput (tokens/s received by the clients)\n\n\
                   | streams | direct | through | **through / direct** | CPU µs per token, direct: client + docker-proxy + engines | through: client + docker-proxy + engines + daemon (less its idle use) |\n\
                   |---|---|---|---|---|---|\n";
        let (mut idle_daemon, mut idle_secs) = (0.0, 0.0);
        for concurrency in [1usize, 256] {
            let (mut dr, mut tr) = (Vec::new(), Vec::new());
            let (mut dcpu, mut tcpu, mut dn, mut tn) = (CpuUse::default(), CpuUse::default(), 0u64, 0u64);
            for rep in 0..opts.reps {
                eprintln!("  {concurrency} streams, rep {rep}");
                let order = if rep % 2 == 0 { [false, true] } else { [true, false] };
                for through in order {
                    let (rate, n, cpu) = tokio.block_on(relay(&p, &procs, through, concurrency, 512, opts.secs));
                    eprintln!(
                        "    {}: {rate:.0} tokens/s, CPU s: {cpu:?}",
                        if through { "through" } else { "direct" }
                    );
                    if through {
                        tr.push(rate);
                        tcpu += cpu;
                        tn += n;
                    } else {
                        dr.push(rate);
                        idle_daemon += cpu.daemon;
                        idle_secs += opts.secs;
                        dcpu += cpu;
                        dn += n;
                    }
                }
            }
            let (dm, tm) = (median(&dr), median(&tr));
            let us = |s: f64, n: u64| 1e6 * s / n.max(1) as f64;
            // The daemon's own background (its controller) during the direct runs, taken out of
            // what it used while relaying.
            let relaying = tcpu.daemon - dcpu.daemon;
            report += &format!(
                "| {concurrency} | {dm:.0} | {tm:.0} | **{:.1} %** | {:.1} + {:.1} + {:.1} = {:.1} | {:.1} + {:.1} + {:.1} + {:.1} = {:.1} |\n",
                100.0 * tm / dm,
                us(dcpu.client, dn),
                us(dcpu.proxies, dn),
                us(dcpu.engines, dn),
                us(dcpu.client + dcpu.proxies + dcpu.engines, dn),
                us(tcpu.client, tn),
                us(tcpu.proxies, tn),
                us(tcpu.engines, tn),
                us(relaying, tn),
                us(tcpu.client + tcpu.proxies + tcpu.engines + relaying, tn),
            );
        }
        report += &format!(
            "\n(median of {} runs of {} s each way, interleaved; CPU from /proc, 10 ms ticks, over the counted windows; \
             the daemon used {:.1} % of a core during the direct runs, when its data plane was idle)\n\n",
            opts.reps,
            opts.secs,
            100.0 * idle_daemon / idle_secs.max(1e-9)
        );
        tear_down(&d, "relay");
    }

    if wants("admission") {
        admission += &admission_rows(&tokio, &http, &d, daemon, &opts, "after the other sections");
        report += &format!(
            "### Admission decisions per second at overload ({ADMISSION_CLIENTS} clients, closed loop, 1 × 1 slot, queue 16)\n\n\
             | daemon state | endpoint | per second | vs `/healthz` | daemon CPU µs per request |\n|---|---|---|---|---|\n{admission}\n\
             (median of {} runs of {} s each way, interleaved)\n\n",
            opts.reps,
            opts.secs.min(3.0)
        );
        tear_down(&d, "adm");
    }

    drop(d);
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}\n\n{report}",
        loadavg()
    );
}
