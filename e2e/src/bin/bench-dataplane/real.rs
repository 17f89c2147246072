//! Measurement 4, a real engine: llama.cpp's `llama-server` (the fixture image
//! `llama-orch/llama-server:dev`) serving the real SmolLM2-135M on the CPU, in a Pool of one
//! replica × 16 slots on Docker. 4 and 16 concurrent streams of 64-token replies (fixed seed,
//! temperature 0), direct (`POST <endpoint>/completion`, streamed) vs through (`/v2/tasks`) vs
//! the reference proxy (the direct request over one plain HTTP hop), interleaved: tokens per
//! second each way, and the CPU per relayed token of the daemon next to the reference proxy's,
//! the docker-proxy's and the engine's. The fixtures are the ones e2e/tests/real_engine.rs
//! uses; `scripts/build-llama-server-image.sh` builds and caches both.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use llama_orch_e2e::bench::cpu::{Procs, engine_pids, proxy_pids};
use llama_orch_e2e::daemon::Daemon;
use reqwest::Client;
use serde_json::json;

use crate::Opts;
use crate::paths::{PROMPT, Paths, no_reuse};
use crate::pools::{bring_up, tear_down};
use crate::reference::{Hop, Reference};
use crate::window::{Bodies, Compared, Way, order, window};

const IMAGE: &str = "llama-orch/llama-server:dev";
/// Set by `scripts/test.sh` to the cached model file.
const GGUF_ENV: &str = "LLORCH_SMOLLM2_GGUF";
const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const POOL: &str = "real";
/// One replica × 16 slots of 256 tokens each (llama-server splits `-c` over `--parallel`).
const SLOTS: u32 = 16;
const CTX: u32 = SLOTS * 256;
const REPLY_TOKENS: u32 = 64;
const SEED: u32 = 7;

/// `LLORCH_SMOLLM2_GGUF`, else where the build script caches the model.
fn gguf_path() -> PathBuf {
    if let Some(p) = std::env::var_os(GGUF_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("LLORCH_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/llama-orch-ci"));
    cache.join("models").join(GGUF_FILE)
}

/// The model file and the image, before any Pool is declared; fails with the command that
/// provides them.
pub(crate) fn require_fixtures(d: &Daemon) -> PathBuf {
    let fix = format!("bash scripts/build-llama-server-image.sh --docker {}", d.runtime.socket);
    let path = gguf_path();
    assert!(
        path.is_file(),
        "the SmolLM2-135M model is missing at {} (set {GGUF_ENV}).\nRun: {fix}",
        path.display()
    );
    let image = d
        .runtime
        .cli()
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        image,
        "the image {IMAGE} is missing on {}.\nRun: {fix}",
        d.runtime.socket
    );
    path
}

/// The real engine, the real model (digest-verified) and Pool `real`, as real_engine.rs
/// declares them, with 16 slots.
fn stack(model: &Path) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: llamacpp}}\nspec:\n  image: {IMAGE}\n  \
         version: \"llama-cpp-python-0.3.36\"\n  api: llamacpp\n  port: 8080\n  \
         args: [\"-m\", \"{{model_path}}\", \"--host\", \"{{host}}\", \"--port\", \"{{port}}\", \"-c\", \"{{ctx_size}}\", \
         \"--parallel\", \"{{slots}}\", \"--metrics\", \"--slots\"]\n  health: {{path: /health, intervalMs: 200}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: smollm2}}\nspec:\n  ref: file:{}\n  \
         digest: sha256:{GGUF_SHA256}\n  ctxMax: 8192\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {POOL}}}\nspec:\n  engine: llamacpp\n  \
         model: smollm2\n  replicas: 1\n  slotsPerReplica: {SLOTS}\n  ctxSize: {CTX}\n  queue: {{capacity: 64}}\n  \
         restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n",
        model.display()
    )
}

fn bodies() -> Bodies {
    let direct = json!({"prompt": PROMPT, "n_predict": REPLY_TOKENS, "stream": true, "seed": SEED, "temperature": 0});
    let through = json!({"pool": POOL, "prompt": PROMPT, "max_tokens": REPLY_TOKENS, "seed": SEED, "temperature": 0});
    Bodies {
        direct: Arc::new(serde_json::to_vec(&direct).unwrap()),
        through: Arc::new(serde_json::to_vec(&through).unwrap()),
    }
}

/// The real-engine section of the report, on its own Pool.
pub(crate) fn section(tokio: &tokio::runtime::Runtime, http: &Client, d: &Daemon, daemon: u32, opts: &Opts) -> String {
    let model = require_fixtures(d);
    eprintln!("real: {IMAGE} serving SmolLM2-135M, 1 replica × {SLOTS} slots, ctx {CTX}, {REPLY_TOKENS}-token replies");
    let endpoints = bring_up(d, POOL, &stack(&model), 1);
    // A fresh upstream connection per request, as the direct client opens (see `no_reuse`).
    let reference = Reference::start(&endpoints, true, opts.hop);
    let procs = Procs {
        daemon,
        engines: engine_pids(d, POOL),
        proxies: proxy_pids(&endpoints),
        reference: vec![reference.pid()],
    };
    eprintln!("  {} docker-proxy processes in the path", procs.proxies.len());
    let engine_http = no_reuse(Duration::from_secs(120));
    let p = Paths {
        http: http.clone(),
        reference_http: match opts.hop {
            Hop::Http => http.clone(),
            Hop::Tcp => engine_http.clone(),
        },
        engine_http,
        base: d.url.clone(),
        endpoints: Arc::new(endpoints),
        reference: reference.url.clone(),
        pool: POOL.into(),
    };
    let b = bodies();
    let mut rows = Vec::new();
    for concurrency in [4usize, 16] {
        let mut c = Compared::default();
        for rep in 0..opts.reps {
            for way in order(rep) {
                eprintln!("  {concurrency} streams, rep {rep}, {}", way.label());
                let w = tokio.block_on(window(&p, &procs, way, concurrency, &b, opts.secs));
                eprintln!("    {:.1} tokens/s, CPU s: {:?}", w.rate, w.cpu);
                c.add(way, w);
            }
        }
        rows.push((concurrency, c));
    }
    tear_down(d, POOL);
    table(&rows, opts)
}

fn table(rows: &[(usize, Compared)], opts: &Opts) -> String {
    let mut out = format!(
        "### A real engine: llama-server + SmolLM2-135M on the CPU (1 replica × {SLOTS} slots, {REPLY_TOKENS}-token replies)\n\n\
         | streams | direct tokens/s | through tokens/s | **through / direct** | reference proxy tokens/s | **daemon CPU µs per relayed token** (less its idle use) | reference proxy µs per token | docker-proxy µs per token: direct / through / reference | llama-server µs per token: direct / through | client µs per token: direct / through |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (concurrency, c) in rows {
        let (dm, tm, rm) = (c.median(Way::Direct), c.median(Way::Through), c.median(Way::Reference));
        let (dc, tc, rc) = (
            c.per_token(Way::Direct),
            c.per_token(Way::Through),
            c.per_token(Way::Reference),
        );
        out += &format!(
            "| {concurrency} | {dm:.1} | {tm:.1} | **{:.1} %** | {rm:.1} | **{:.1}** | {:.1} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} | {:.1} / {:.1} |\n",
            100.0 * tm / dm,
            tc.daemon,
            rc.reference,
            dc.proxies,
            tc.proxies,
            rc.proxies,
            dc.engines,
            tc.engines,
            dc.client,
            tc.client,
        );
    }
    let tokens: u64 = rows.iter().map(|(_, c)| c.tokens(Way::Through)).sum();
    out += &format!(
        "\n(aim: the daemon ≤ 80 µs per relayed token; median of {} runs of {} s each way, the ways in turns; \
         CPU of every thread from /proc/<pid>/task/*/schedstat over the counted windows, {tokens} tokens relayed in all)\n\n",
        opts.reps, opts.secs,
    );
    out
}
