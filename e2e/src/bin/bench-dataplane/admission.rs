//! Measurement 3, admission decisions per second at overload, against `GET /healthz`: on the
//! fresh daemon and again after the other sections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::cpu_secs;
use llama_orch_e2e::bench::stats::median;
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;
use serde_json::{Value, json};

use crate::Opts;
use crate::paths::PROMPT;
use crate::pools::{bring_up, pool, tear_down};

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

/// Brings up the pool `adm` and measures it on the fresh daemon: its table rows.
pub(crate) fn fresh(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, daemon: u32, opts: &Opts) -> String {
    let mut admission = String::new();
    eprintln!("admission: pool 1 replica × 1 slot, queue 16 (reject), --token-rate 2, {ADMISSION_CLIENTS} clients");
    bring_up(
        d,
        "adm",
        &pool(
            d,
            "adm",
            1,
            1,
            4096,
            "{capacity: 16, fullPolicy: reject}",
            &["--token-rate", "2"],
        ),
        1,
    );
    admission += &admission_rows(tokio, http, d, daemon, opts, "fresh daemon");
    admission
}

/// Measures again after the other sections; the admission section of the report.
pub(crate) fn section(
    tokio: &tokio::runtime::Runtime,
    http: &Client,
    d: &Daemon,
    daemon: u32,
    opts: &Opts,
    fresh: &str,
) -> String {
    let (mut admission, mut report) = (fresh.to_string(), String::new());
    admission += &admission_rows(tokio, http, d, daemon, opts, "after the other sections");
    report += &format!(
        "### Admission decisions per second at overload ({ADMISSION_CLIENTS} clients, closed loop, 1 × 1 slot, queue 16)\n\n\
         | daemon state | endpoint | per second | vs `/healthz` | daemon CPU µs per request |\n|---|---|---|---|---|\n{admission}\n\
         (median of {} runs of {} s each way, interleaved)\n\n",
        opts.reps,
        opts.secs.min(3.0)
    );
    tear_down(d, "adm");
    report
}
