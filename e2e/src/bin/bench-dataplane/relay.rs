//! Measurement 2, token relay throughput: tokens per second received by the clients, direct
//! vs through, with the CPU each side used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::{CpuUse, Procs, engine_pids, proxy_pids};
use llama_orch_e2e::bench::sse_count::Kind;
use llama_orch_e2e::bench::stats::median;
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;

use crate::Opts;
use crate::paths::{Paths, Stages};
use crate::pools::{bring_up, pool, tear_down};

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

/// The relay section of the report, on its own pool.
pub(crate) fn section(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, daemon: u32, opts: &Opts) -> String {
    let mut report = String::new();
    eprintln!("relay: pool 4 replicas × 64 slots, --token-rate 0, 512-token replies");
    let endpoints = bring_up(
        d,
        "relay",
        &pool(d, "relay", 4, 64, 131_072, "{capacity: 512}", &["--token-rate", "0"]),
        4,
    );
    let procs = Procs {
        daemon,
        engines: engine_pids(d, "relay"),
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
    tear_down(d, "relay");
    report
}
