//! Measurement 2, token relay throughput: tokens per second received by the clients, direct
//! vs through (and through the reference proxy), with the CPU each process on the path used. Two variants of the same Pool,
//! measured in the same run, window by window in turn: mock engines in Docker containers
//! (reached through Docker's userland proxy, `docker-proxy`, on both paths) and mock engines
//! as plain processes (`provisioning: binary`, reached on loopback with no proxy).

use std::sync::Arc;

use llama_orch_e2e::bench::cpu::{CpuUse, Procs, engine_pids, proxy_pids};
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;

use crate::Opts;
use crate::paths::Paths;
use crate::pools::{ProcessGuard, bring_up, pool, process_pool, tear_down};
use crate::reference::{Hop, Reference};
use crate::window::{Bodies, Compared, Way, order, window};

/// One way of running the relay Pool's engines.
pub(crate) struct Variant {
    /// The Pool's name.
    pool: &'static str,
    /// How the report names it.
    label: &'static str,
    /// Containers on Docker (else plain processes).
    docker: bool,
}

const DOCKER: Variant = Variant {
    pool: "relay",
    label: "Docker (docker-proxy)",
    docker: true,
};
const PROCESS: Variant = Variant {
    pool: "relay-proc",
    label: "processes (no proxy)",
    docker: false,
};

const REPLICAS: u32 = 4;
const SLOTS: u32 = 64;
/// 512 tokens fit each of the 64 slots.
const CTX: u32 = 131_072;
const REPLY_TOKENS: u32 = 512;

/// The variants `--only` asks for: `relay` both, `relay-docker` or `relay-process` one.
pub(crate) fn variants(opts: &Opts) -> Vec<&'static Variant> {
    let both = opts.wants("relay");
    let mut v = Vec::new();
    if both || opts.wants("relay-docker") {
        v.push(&DOCKER);
    }
    if both || opts.wants("relay-process") {
        v.push(&PROCESS);
    }
    v
}

/// A variant's Pool, up, with the processes on its paths.
struct Up {
    variant: &'static Variant,
    paths: Paths,
    procs: Procs,
    bodies: Bodies,
    /// Kept running while the variant is measured.
    _reference: Reference,
}

fn bring_up_variant(http: &Client, d: &Daemon, daemon: u32, v: &'static Variant, hop: Hop) -> Up {
    let (queue, args) = ("{capacity: 512}", ["--token-rate", "0"]);
    let manifest = if v.docker {
        pool(d, v.pool, REPLICAS, SLOTS, CTX, queue, &args)
    } else {
        process_pool(d, v.pool, REPLICAS, SLOTS, CTX, queue, &args)
    };
    let endpoints = bring_up(d, v.pool, &manifest, REPLICAS);
    let reference = Reference::start(&endpoints, false, hop);
    let procs = Procs {
        daemon,
        engines: engine_pids(d, v.pool),
        proxies: if v.docker { proxy_pids(&endpoints) } else { Vec::new() },
        reference: vec![reference.pid()],
    };
    eprintln!(
        "  {}: {} engine processes, {} docker-proxy processes in the path",
        v.label,
        procs.engines.len(),
        procs.proxies.len()
    );
    let paths = Paths {
        http: http.clone(),
        engine_http: http.clone(),
        base: d.url.clone(),
        endpoints: Arc::new(endpoints),
        reference: reference.url.clone(),
        reference_http: http.clone(),
        pool: v.pool.into(),
    };
    let bodies = Bodies {
        direct: Arc::new(Paths::completion_body(REPLY_TOKENS)),
        through: Arc::new(paths.task_body(REPLY_TOKENS)),
    };
    Up {
        variant: v,
        paths,
        procs,
        bodies,
        _reference: reference,
    }
}

/// One table row: a variant at one concurrency.
struct Row {
    variant: &'static Variant,
    concurrency: usize,
    compared: Compared,
}

/// The relay section of the report, on its own Pools (one per variant, up together).
pub(crate) fn section(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, daemon: u32, opts: &Opts) -> String {
    let _processes = ProcessGuard(d.home.path().join("state/processes"));
    eprintln!("relay: pools of {REPLICAS} replicas × {SLOTS} slots, --token-rate 0, {REPLY_TOKENS}-token replies");
    let up: Vec<Up> = variants(opts)
        .into_iter()
        .map(|v| bring_up_variant(http, d, daemon, v, opts.hop))
        .collect();
    let mut rows = Vec::new();
    for concurrency in [1usize, 256] {
        let mut compared: Vec<Compared> = up.iter().map(|_| Compared::default()).collect();
        for rep in 0..opts.reps {
            // Variants take turns too: the first one changes every repetition.
            let mut turn: Vec<usize> = (0..up.len()).collect();
            if rep % 2 == 1 {
                turn.reverse();
            }
            for i in turn {
                let u = &up[i];
                for way in order(rep) {
                    eprintln!(
                        "  {}, {concurrency} streams, rep {rep}, {}",
                        u.variant.label,
                        way.label()
                    );
                    let w = tokio.block_on(window(&u.paths, &u.procs, way, concurrency, &u.bodies, opts.secs));
                    eprintln!("    {:.0} tokens/s, CPU s: {:?}", w.rate, w.cpu);
                    compared[i].add(way, w);
                }
            }
        }
        rows.extend(up.iter().zip(compared).map(|(u, compared)| Row {
            variant: u.variant,
            concurrency,
            compared,
        }));
    }
    for u in &up {
        tear_down(d, u.variant.pool);
    }
    tables(&rows, opts)
}

/// `a + b + c = sum`, with `—` for a process group that is not on the path.
fn split(parts: &[Option<f64>]) -> String {
    let sum: f64 = parts.iter().flatten().sum();
    let terms: Vec<String> = parts
        .iter()
        .map(|p| p.map_or("—".into(), |v| format!("{v:.1}")))
        .collect();
    format!("{} = {sum:.1}", terms.join(" + "))
}

fn tables(rows: &[Row], opts: &Opts) -> String {
    let mut out = String::from(
        "### Token relay throughput (tokens/s received by the clients)\n\n\
         | engines reached | streams | direct | through | **through / direct** | reference proxy | reference / direct | CPU µs per token, direct: client + docker-proxy + engines | through: client + docker-proxy + engines + daemon (less its idle use) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let c = &r.compared;
        let (dm, tm, rm) = (c.median(Way::Direct), c.median(Way::Through), c.median(Way::Reference));
        let (dc, tc) = (c.per_token(Way::Direct), c.per_token(Way::Through));
        let proxy = |c: &CpuUse| r.variant.docker.then_some(c.proxies);
        out += &format!(
            "| {} | {} | {dm:.0} | {tm:.0} | **{:.1} %** | {rm:.0} | {:.1} % | {} | {} |\n",
            r.variant.label,
            r.concurrency,
            100.0 * tm / dm,
            100.0 * rm / dm,
            split(&[Some(dc.client), proxy(&dc), Some(dc.engines)]),
            split(&[Some(tc.client), proxy(&tc), Some(tc.engines), Some(tc.daemon)]),
        );
    }
    out += &format!(
        "\n**Daemon CPU per relayed token** (µs; aim ≤ 3 at 256 streams), next to the reference \
         proxy's ({}) and what the other processes on the path spend per token:\n\n",
        opts.hop.describe()
    );
    out += "| engines reached | streams | **daemon** (through, less its idle use) | reference proxy | docker-proxy: direct / through / reference | engines: direct / through | client: direct / through / reference |\n\
            |---|---|---|---|---|---|---|\n";
    for r in rows {
        let c = &r.compared;
        let (dc, tc, rc) = (
            c.per_token(Way::Direct),
            c.per_token(Way::Through),
            c.per_token(Way::Reference),
        );
        let proxies = if r.variant.docker {
            format!("{:.1} / {:.1} / {:.1}", dc.proxies, tc.proxies, rc.proxies)
        } else {
            "— (none)".into()
        };
        out += &format!(
            "| {} | {} | **{:.1}** | {:.1} | {proxies} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} |\n",
            r.variant.label,
            r.concurrency,
            tc.daemon,
            rc.reference,
            dc.engines,
            tc.engines,
            dc.client,
            tc.client,
            rc.client,
        );
    }
    let idle: f64 = rows.iter().map(|r| r.compared.cpu(Way::Direct).daemon).sum();
    let idle_secs = rows.len() as f64 * opts.reps as f64 * opts.secs;
    out += &format!(
        "\n(median of {} runs of {} s each way, the ways and the variants in turns; CPU of every thread from \
         /proc/<pid>/task/*/schedstat over the counted windows; the daemon used {:.1} % of a core during \
         the direct runs, when its data plane was idle)\n\n",
        opts.reps,
        opts.secs,
        100.0 * idle / idle_secs.max(1e-9)
    );
    out
}
