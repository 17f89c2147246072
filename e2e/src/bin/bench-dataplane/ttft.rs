//! Measurement 1, time to first token: direct vs through, at concurrency 1 and 64, and its table.

use std::sync::Arc;
use std::time::Instant;

use llama_orch_e2e::bench::stats::{median, percentile, sorted};
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;

use crate::Opts;
use crate::paths::{Paths, Stages, ms};
use crate::pools::{bring_up, pool, tear_down};

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

/// The TTFT section of the report, on its own pool.
pub(crate) fn section(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, opts: &Opts) -> String {
    let mut report = String::new();
    eprintln!("TTFT: pool 2 replicas × 32 slots, --token-rate 0");
    let endpoints = bring_up(
        d,
        "ttft",
        &pool(d, "ttft", 2, 32, 4096, "{capacity: 256}", &["--token-rate", "0"]),
        2,
    );
    let p = Paths {
        http: http.clone(),
        engine_http: http.clone(),
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
    if opts.wants("ttft") || opts.wants("ttft1") {
        eprintln!("  concurrency 1, {} requests each way", opts.runs);
        results.push(tokio.block_on(ttft_c1(&p, opts.runs)));
    }
    if opts.wants("ttft") || opts.wants("ttft64") {
        eprintln!("  concurrency 64, {} reps of 64 × 10 requests each way", opts.reps);
        results.push(tokio.block_on(ttft_concurrent(&p, 64, 10, opts.reps)));
    }
    report += "### Added time to first token (ms)\n\n";
    report += &ttft_table(&results);
    report += &format!(
        "\nA bare `GET /healthz` round trip to the daemon (concurrency 1): p50 {:.3} ms.\n\n",
        median(&healthz)
    );
    tear_down(d, "ttft");
    report
}
