//! Measurement 1, time to first token: direct vs through (the task API, and the OpenAI front
//! door) vs the reference proxy, at concurrency 1 and 64, and its table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::Procs;
use llama_orch_e2e::bench::stats::{median, percentile, sorted};
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;

use crate::Opts;
use crate::paths::{Paths, Stages, ms};
use crate::pools::{bring_up, pool, tear_down};
use crate::reference::{Hop, Reference};

struct TtftResult {
    concurrency: usize,
    direct: Vec<f64>,
    through: Vec<Stages>,
    /// Through the OpenAI-compatible front door: one request instead of submit + stream.
    openai: Vec<f64>,
    /// The direct request through the reference proxy.
    reference: Vec<f64>,
}

/// How many ways [`ttft_one`] takes.
const WAYS: usize = 4;

/// One request the way `way` (mod [`WAYS`]) names: direct, through, OpenAI, reference proxy.
async fn ttft_one(p: &Paths, bodies: &Bodies, worker: usize, way: usize, r: &mut TtftResult) {
    match way % WAYS {
        0 => r.direct.push(p.ttft_direct(worker, &bodies.direct).await),
        1 => r.through.push(p.ttft_through(&bodies.through).await),
        2 => r.openai.push(p.ttft_openai(&bodies.openai).await),
        _ => r.reference.push(p.ttft_reference(&bodies.direct).await),
    }
}

/// One request each way, starting with `turn`'s (so no way always follows another).
async fn ttft_round(p: &Paths, bodies: &Bodies, worker: usize, turn: usize, r: &mut TtftResult) {
    for k in 0..WAYS {
        ttft_one(p, bodies, worker, turn + k, r).await;
    }
}

/// The request bodies of the three ways, 4-token replies.
struct Bodies {
    direct: Vec<u8>,
    through: Vec<u8>,
    openai: Vec<u8>,
}

impl Bodies {
    fn new(p: &Paths) -> Self {
        Self {
            direct: Paths::completion_body(4),
            through: p.task_body(4),
            openai: p.openai_body(4),
        }
    }
}

impl TtftResult {
    fn new(concurrency: usize) -> Self {
        Self {
            concurrency,
            direct: Vec::new(),
            through: Vec::new(),
            openai: Vec::new(),
            reference: Vec::new(),
        }
    }

    fn extend(&mut self, other: TtftResult) {
        self.direct.extend(other.direct);
        self.through.extend(other.through);
        self.openai.extend(other.openai);
        self.reference.extend(other.reference);
    }
}

/// CPU per request at concurrency 1, µs.
struct PerRequest {
    /// The daemon, over its task API and OpenAI requests together, less its idle use.
    daemon: f64,
    /// The reference proxy, over its requests.
    reference: f64,
}

async fn ttft_c1(p: &Paths, procs: &Procs, runs: usize) -> (TtftResult, PerRequest) {
    let bodies = Bodies::new(p);
    // Warm the connections on all paths (the daemon's to the engine too).
    let mut warm = TtftResult::new(1);
    for i in 0..20 {
        ttft_round(p, &bodies, i, i, &mut warm).await;
    }
    // The daemon's background use, to take out of what the requests cost.
    let (idle_from, idle_start) = (procs.sample(), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procs.sample().since(&idle_from).daemon / idle_start.elapsed().as_secs_f64();
    let (before, start) = (procs.sample(), Instant::now());
    let mut r = TtftResult::new(1);
    for i in 0..runs {
        ttft_round(p, &bodies, i, i, &mut r).await;
    }
    let used = procs.sample().since(&before);
    let per = |secs: f64, n: usize| 1e6 * secs / n.max(1) as f64;
    let cpu = PerRequest {
        daemon: per(used.daemon - idle * start.elapsed().as_secs_f64(), 2 * runs),
        reference: per(used.reference, runs),
    };
    (r, cpu)
}

async fn ttft_concurrent(p: &Paths, concurrency: usize, per_worker: usize, reps: usize) -> TtftResult {
    let bodies = Arc::new(Bodies::new(p));
    let mut all = TtftResult::new(concurrency);
    // Rep 0 is a warm-up (opens the connections on every side), not counted. In each block
    // all clients take one way; the ways take turns block by block.
    for rep in 0..=reps {
        for way in 0..WAYS {
            let handles: Vec<_> = (0..concurrency)
                .map(|w| {
                    let (p, bodies) = (p.clone(), bodies.clone());
                    tokio::spawn(async move {
                        let mut r = TtftResult::new(concurrency);
                        for _ in 0..per_worker {
                            ttft_one(&p, &bodies, w, rep + way, &mut r).await;
                        }
                        r
                    })
                })
                .collect();
            for h in handles {
                let r = h.await.unwrap();
                if rep > 0 {
                    all.extend(r);
                }
            }
        }
    }
    all
}

/// The added-TTFT row of one way against direct: p50s and p99s, ms.
fn added_row(concurrency: usize, direct: &[f64], via: &[f64], healthz: f64) -> String {
    let (d, t) = (sorted(direct.to_vec()), sorted(via.to_vec()));
    let (d50, t50, d99, t99) = (
        percentile(&d, 0.5),
        percentile(&t, 0.5),
        percentile(&d, 0.99),
        percentile(&t, 0.99),
    );
    let slow = |v: &[f64]| 100.0 * v.iter().filter(|&&x| x >= 30.0).count() as f64 / v.len() as f64;
    format!(
        "| {concurrency} | {}+{} | {d50:.3} | {t50:.3} | **{:+.3}** | {:.1} | {d99:.3} | {t99:.3} | **{:+.3}** | {:.0} % / {:.0} % |\n",
        d.len(),
        t.len(),
        t50 - d50,
        (t50 - d50) / healthz,
        t99 - d99,
        slow(&d),
        slow(&t)
    )
}

fn ttft_table(results: &[TtftResult], healthz: f64, hop: Hop) -> String {
    const HEAD: &str = "| concurrency | samples | direct p50 | through p50 | **added p50** | added p50 in `/healthz` round trips | direct p99 | through p99 | **added p99** | ≥ 30 ms direct / through |\n|---|---|---|---|---|---|---|---|---|---|\n";
    let mut out = format!("Through the task API (`POST /v2/tasks`, then `GET /v2/tasks/{{id}}/events`):\n\n{HEAD}");
    for r in results {
        let through: Vec<f64> = r.through.iter().map(|s| s.first_token).collect();
        out += &added_row(r.concurrency, &r.direct, &through, healthz);
    }
    out += &format!(
        "\nThrough the OpenAI-compatible front door (one request: `POST /v1/completions`, streamed):\n\n{HEAD}"
    );
    for r in results {
        out += &added_row(r.concurrency, &r.direct, &r.openai, healthz);
    }
    out += &format!(
        "\nThrough the reference proxy (the direct request over {}, what any proxy adds here):\n\n{HEAD}",
        hop.describe()
    );
    for r in results {
        out += &added_row(r.concurrency, &r.direct, &r.reference, healthz);
    }
    out += "\nThrough the task API, p50 of each stage (ms from the submit):\n\n| concurrency | 202 received | events head received | first token |\n|---|---|---|---|\n";
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

/// The TTFT section of the report, on its own pool.
pub(crate) fn section(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, daemon: u32, opts: &Opts) -> String {
    let mut report = String::new();
    eprintln!("TTFT: pool 2 replicas × 32 slots, --token-rate 0");
    let endpoints = bring_up(
        d,
        "ttft",
        &pool(d, "ttft", 2, 32, 4096, "{capacity: 256}", &["--token-rate", "0"]),
        2,
    );
    let reference = Reference::start(&endpoints, false, opts.hop);
    let p = Paths {
        http: http.clone(),
        engine_http: http.clone(),
        base: d.url.clone(),
        endpoints: Arc::new(endpoints),
        reference: reference.url.clone(),
        reference_http: http.clone(),
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
    let procs = Procs {
        daemon,
        engines: Vec::new(),
        proxies: Vec::new(),
        reference: vec![reference.pid()],
    };
    let mut results = Vec::new();
    let mut per_request = None;
    if opts.wants("ttft") || opts.wants("ttft1") {
        eprintln!("  concurrency 1, {} requests each way", opts.runs);
        let (r, cpu) = tokio.block_on(ttft_c1(&p, &procs, opts.runs));
        results.push(r);
        per_request = Some(cpu);
    }
    if opts.wants("ttft") || opts.wants("ttft64") {
        eprintln!("  concurrency 64, {} reps of 64 × 10 requests each way", opts.reps);
        results.push(tokio.block_on(ttft_concurrent(&p, 64, 10, opts.reps)));
    }
    let healthz = median(&healthz);
    report += "### Added time to first token (ms)\n\n";
    report += &ttft_table(&results, healthz, opts.hop);
    report += &format!("\nA bare `GET /healthz` round trip to the daemon (concurrency 1): p50 {healthz:.3} ms.\n");
    if let Some(cpu) = per_request {
        report += &format!(
            "\nCPU per request at concurrency 1 (4-token replies; `/proc/<pid>/task/*/schedstat` over the {} rounds): \
             the daemon {:.0} µs (its task API and OpenAI requests together, less its idle use), the reference proxy {:.0} µs.\n",
            opts.runs, cpu.daemon, cpu.reference
        );
    }
    report += "\n";
    tear_down(d, "ttft");
    report
}
