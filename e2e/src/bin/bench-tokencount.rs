//! Benchmark (not a test): what counting prompt tokens with the engine's tokenizer adds to time
//! to first token (issue 11), on the real engine fixture: llama.cpp's `llama-server`
//! (`llama-orch/llama-server:dev`) serving SmolLM2-135M on the CPU.
//!
//! Two daemons on Docker, each with a Pool of that engine (1 replica × 1 slot, context 8192):
//! one with `LLORCH_TOKEN_COUNT=always` (every prompt is counted: the worst case of the default
//! `near-limit`, which counts only prompts that might not fit), one with `off` (the baseline).
//! For prompts of ~100, ~500 and ~2000 tokens, requests alternate between the two (which one
//! goes first alternates too), each `POST /v2/tasks` (`max_tokens: 1`) then
//! `GET /v2/tasks/{id}/events` to the first `token` event; clock from the submit.
//! - **cold**: every request's prompt ends in a unique suffix, so the daemon's count cache
//!   misses and the daemon asks the engine (`POST /tokenize`); the engine's KV cache still
//!   holds the shared prefix, so its own work stays a few tokens on both sides.
//! - **warm**: the same prompt every time: the count comes from the daemon's cache.
//!
//! Also measured: the 202 alone (admission, where the count happens), and a client's own
//! `POST /tokenize` round trip to the engine (what one uncached count costs at least).
//!
//! `cargo build --release -p llama-orchd -p llama-orch-e2e && LLORCH_BIN_DIR=target/release \
//!  target/release/bench-tokencount [--runs 60]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::flag;
use llama_orch_e2e::bench::stats::{loadavg, median, sorted};
use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready};
use llama_orch_e2e::llama_server::{GGUF_SHA256, IMAGE, require_fixtures};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const POOL: &str = "real";
const SIZES: [u32; 3] = [100, 500, 2000];
const SENTENCE: &str = "The quick brown fox jumps over the lazy dog while the orchestra tunes its instruments. ";

/// The real engine and model (digest-verified), in Pool `real` of 1 replica × 1 slot.
fn stack(model: &Path) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: llamacpp}}\nspec:\n  image: {IMAGE}\n  \
         version: \"llama-cpp-python-0.3.36\"\n  api: llamacpp\n  port: 8080\n  \
         args: [\"-m\", \"{{model_path}}\", \"--host\", \"{{host}}\", \"--port\", \"{{port}}\", \"-c\", \"{{ctx_size}}\", \
         \"--parallel\", \"{{slots}}\"]\n  health: {{path: /health, intervalMs: 200}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: smollm2}}\nspec:\n  ref: file:{}\n  \
         digest: sha256:{GGUF_SHA256}\n  ctxMax: 8192\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {POOL}}}\nspec:\n  engine: llamacpp\n  \
         model: smollm2\n  replicas: 1\n  slotsPerReplica: 1\n  ctxSize: 8192\n  queue: {{capacity: 8}}\n",
        model.display()
    )
}

/// A daemon counting in `mode`, its Pool Ready, and the replica's endpoint.
fn up(mode: &str, model: &Path) -> (Daemon, String) {
    let d = Daemon::start_with_env(Runtime::docker(), "", &[("LLORCH_TOKEN_COUNT", mode)]);
    d.write_manifest("real.yaml", &stack(model));
    let s = d.wait_for("pool real Ready", Duration::from_secs(180), |s| pool_ready(s, POOL, 1));
    let endpoint = s
        .replicas
        .iter()
        .find(|r| r.pool == POOL)
        .and_then(|r| r.endpoint.as_ref())
        .map(|e| e.as_str().to_string())
        .unwrap();
    (d, endpoint)
}

fn tokens(http: &Client, endpoint: &str, text: &str) -> usize {
    let r: Value = http
        .post(format!("{endpoint}/tokenize"))
        .json(&json!({"content": text, "add_special": true}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["tokens"].as_array().unwrap().len()
}

/// A text of about `n` tokens (by the engine's count).
fn text_of(http: &Client, endpoint: &str, n: u32) -> String {
    let per = tokens(http, endpoint, &SENTENCE.repeat(10)) as f64 / 10.0;
    SENTENCE.repeat(((f64::from(n) - 12.0) / per).round().max(1.0) as usize)
}

/// (202 ms, first token ms), both from the submit.
fn ttft(http: &Client, base: &str, prompt: &str) -> (f64, f64) {
    let t0 = Instant::now();
    let r = http
        .post(format!("{base}/v2/tasks"))
        .json(&json!({"pool": POOL, "prompt": prompt, "max_tokens": 1, "seed": 7, "temperature": 0}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text());
    let id = r.json::<Value>().unwrap()["task_id"].as_str().unwrap().to_string();
    let admitted = ms(t0.elapsed());
    let mut events = http.get(format!("{base}/v2/tasks/{id}/events")).send().unwrap();
    let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        let n = events.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended without a token: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        assert!(!text.contains("event: error"), "{text}");
        if text.contains("event: token") {
            let first = ms(t0.elapsed());
            let _ = std::io::copy(&mut events, &mut std::io::sink());
            return (admitted, first);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default)]
struct Series {
    off: Vec<(f64, f64)>,
    on: Vec<(f64, f64)>,
    tokenize: Vec<f64>,
}

impl Series {
    fn row(&self, size: usize, variant: &str) -> String {
        let col = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(&sorted(v.iter().map(f).collect()));
        let (off, on) = (col(&self.off, |s| s.1), col(&self.on, |s| s.1));
        let (off_202, on_202) = (col(&self.off, |s| s.0), col(&self.on, |s| s.0));
        let paired: Vec<f64> = self.on.iter().zip(&self.off).map(|(a, b)| a.1 - b.1).collect();
        let tokenize = if self.tokenize.is_empty() {
            "–".to_string()
        } else {
            format!("{:.3}", median(&sorted(self.tokenize.clone())))
        };
        format!(
            "| ~{size} | {variant} | {} | {off:.3} | {on:.3} | **{:+.3}** | **{:+.3}** | {:.3} | {off_202:.3} | {on_202:.3} | {:+.3} | {tokenize} |\n",
            self.on.len(),
            on - off,
            median(&sorted(paired)),
            on / off,
            on_202 - off_202,
        )
    }
}

fn main() {
    let runs: usize = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(60);
    let model = require_fixtures(&Runtime::docker());
    let http = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let load_before = loadavg();
    let (off, off_endpoint) = up("off", &model);
    let (on, on_endpoint) = up("always", &model);
    let mut report = String::from(
        "| prompt tokens | cache | samples each | TTFT p50 off (ms) | TTFT p50 on (ms) | **added p50** | **added, median of pairs** | on / off | 202 p50 off | 202 p50 on | added to the 202 | client `/tokenize` round trip p50 |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for size in SIZES {
        let base = text_of(&http, &off_endpoint, size);
        let counted = tokens(&http, &off_endpoint, &base);
        eprintln!("~{size}: {counted} tokens, {} bytes", base.len());
        for _ in 0..3 {
            ttft(&http, &off.url, &base);
            ttft(&http, &on.url, &base);
        }
        for warm in [false, true] {
            let mut s = Series::default();
            for i in 0..runs {
                let prompt = match warm {
                    true => base.clone(),
                    false => format!("{base}Request {size}-{i}."),
                };
                if !warm {
                    // The same cost for a client, on a prompt neither engine has seen.
                    let t0 = Instant::now();
                    tokens(&http, &on_endpoint, &format!("{base}Probe {size}-{i}."));
                    s.tokenize.push(ms(t0.elapsed()));
                }
                let order = if i % 2 == 0 { [false, true] } else { [true, false] };
                for counting in order {
                    let d = if counting { &on } else { &off };
                    let t = ttft(&http, &d.url, &prompt);
                    if counting { s.on.push(t) } else { s.off.push(t) }
                }
            }
            let variant = if warm { "warm (cached)" } else { "cold (uncached)" };
            eprint!("{}", s.row(counted, variant));
            report += &s.row(counted, variant);
        }
    }
    drop(on);
    drop(off);
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}\n\n{report}",
        loadavg()
    );
}
