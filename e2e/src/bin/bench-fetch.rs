//! Benchmark (not a test): what the model catalog's fetcher costs over a plain download of the
//! same bytes from the same loopback HTTP server, measured in the same run.
//!
//! - the file: `--size-mib` (512) MiB of deterministic pseudo-random bytes, written into a temp
//!   folder and served from memory by a minimal HTTP/1.1 server inside this process (one
//!   request per connection, `Range: bytes=N-`, and a switch that cuts the next response after
//!   `--cut-at` (0.5) of its bytes);
//! - baselines: sha256 of the bytes in memory and of the file from disk; a plain reqwest
//!   download into a file, alone, with sha256 inline, and with sha256 inline + fsync;
//! - measured: [`Fetcher::download`], the entry point the ModelManager uses for http(s) refs,
//!   with the digest declared, into a temp cache (stream, sha256, fsync, rename into `blobs/`);
//!   and the same with the connection cut once, so the fetcher resumes (total time, its 300 ms
//!   pause before the resume included).
//! - with `LLORCH_SMOLLM2_GGUF` set: `llorch_gguf::read_summary` on that file against reading
//!   its first 2 MiB with std, `--gguf-runs` (50) times each.
//!
//! Runs interleave (one of each per round) so all see the same machine.
//! `cargo run --release -p llama-orch-e2e --bin bench-fetch -- [--size-mib 512] [--runs 5]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use llama_orch_e2e::bench::stats::{loadavg, percentile, sorted};
use llorch_controller::catalog::cache::{self, Cache};
use llorch_controller::catalog::fetch::Fetcher;
use llorch_controller::catalog::policy::Policy;
use llorch_controller::catalog::progress::Progress;
use llorch_manifests::config::ModelsConfig;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1 << 20;

/// The served file and the cut switch.
struct Server {
    body: Arc<Vec<u8>>,
    cut_at: f64,
    cut_next: AtomicBool,
}

impl Server {
    async fn start(body: Arc<Vec<u8>>, cut_at: f64) -> (Arc<Server>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/model.gguf", listener.local_addr().unwrap());
        let server = Arc::new(Server {
            body,
            cut_at,
            cut_next: AtomicBool::new(false),
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(s.clone().serve(conn));
            }
        });
        (server, url)
    }

    async fn serve(self: Arc<Self>, mut conn: TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let from = text
            .lines()
            .find_map(|l| l.strip_prefix("range: bytes="))
            .and_then(|r| r.trim().strip_suffix('-')?.parse::<usize>().ok())
            .filter(|&n| n < self.body.len());
        let len = self.body.len();
        let (start, head) = match from {
            Some(n) => (
                n,
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{len}\r\n",
                    len - 1
                ),
            ),
            None => (0, "HTTP/1.1 200 OK\r\n".to_string()),
        };
        let head = format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n", len - start);
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let end = if self.cut_next.swap(false, Ordering::SeqCst) {
            start + ((len - start) as f64 * self.cut_at) as usize
        } else {
            len
        };
        for chunk in self.body[start..end].chunks(MIB) {
            if conn.write_all(chunk).await.is_err() {
                return;
            }
        }
        let _ = conn.shutdown().await;
    }
}

/// `n` deterministic pseudo-random bytes (xorshift64*).
fn generate(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A plain download into `path`: reqwest, std writes, optionally sha256 inline and an fsync.
async fn plain_download(client: &reqwest::Client, url: &str, path: &Path, hash: bool, fsync: bool) -> Option<String> {
    let mut resp = client.get(url).send().await.unwrap().error_for_status().unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    let mut hasher = hash.then(Sha256::new);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
        file.write_all(&chunk).unwrap();
    }
    if fsync {
        file.sync_all().unwrap();
    }
    hasher.map(|h| cache::hex(&h.finalize()))
}

/// sha256 of the file at `path`, read 1 MiB at a time.
fn hash_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let (mut h, mut buf) = (Sha256::new(), vec![0u8; MIB]);
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return cache::hex(&h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Times `f` and returns MB/s (10^6 bytes) for `bytes`.
async fn rate<F: std::future::Future<Output = ()>>(bytes: usize, f: F) -> f64 {
    let t = Instant::now();
    f.await;
    bytes as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn row(name: &str, v: &[f64]) -> (String, f64) {
    let s = sorted(v.to_vec());
    let p50 = percentile(&s, 0.5);
    let line = format!(
        "| {name} | {} | {p50:.0} | {:.0} | {:.0} |",
        s.len(),
        s[0],
        s[s.len() - 1]
    );
    (line, p50)
}

/// `read_summary` on a real GGUF against reading its first 2 MiB with std: p50/min/max in µs.
fn gguf(path: &Path, runs: usize) {
    let (mut header, mut read2) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 2 * MIB];
    for _ in 0..runs {
        let t = Instant::now();
        let mut f = std::fs::File::open(path).unwrap();
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        read2.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let summary = llorch_gguf::read_summary(path).unwrap();
        header.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(summary);
    }
    println!("\nGGUF header ({}), µs, page cache warm", path.display());
    println!("| measurement | runs | p50 | min | max |\n|---|---|---|---|---|");
    let (b, base) = row("read first 2 MiB with std (baseline)", &read2);
    let (m, meas) = row("`llorch_gguf::read_summary`", &header);
    println!("{b}\n{m}\nread_summary / 2 MiB read at p50: {:.2}×", meas / base);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("{name} takes a number")))
            .unwrap_or(default)
    };
    let size = (flag("--size-mib", 512.0) * MIB as f64) as usize;
    let runs = flag("--runs", 5.0) as usize;
    let cut_at = flag("--cut-at", 0.5);
    let gguf_runs = flag("--gguf-runs", 50.0) as usize;

    let dir = tempfile::tempdir().unwrap();
    let body = Arc::new(generate(size));
    let source = dir.path().join("source.bin");
    std::fs::write(&source, &*body).unwrap();
    let hex = cache::sha256_hex(&body);
    let (server, url) = Server::start(body.clone(), cut_at).await;
    let client = reqwest::Client::new();
    let config = ModelsConfig {
        cache_dir: None,
        downloads: true,
        allow_hosts: vec!["127.0.0.1".into()],
        ..ModelsConfig::default()
    };
    let cache_dir = dir.path().join("cache");
    let fetcher = Fetcher::new(
        Cache::new(&cache_dir),
        Policy::from_config(&config),
        None,
        "https://huggingface.co",
    )
    .unwrap();
    let target = fetcher.check(&url).unwrap();
    let progress = Progress::new(Arc::new(tokio::sync::Notify::new()));
    let plain: PathBuf = dir.path().join("plain.bin");
    println!(
        "{} MiB from {url}, temp dir {}, {runs} runs, cut at {:.0} %, load {}",
        size / MIB,
        dir.path().display(),
        cut_at * 100.0,
        loadavg()
    );

    let names = [
        "sha256 in memory (baseline)",
        "sha256 of the file from disk (baseline)",
        "plain download → file (baseline)",
        "plain download → file + sha256 (baseline)",
        "plain download → file + sha256 + fsync (baseline)",
        "catalog `Fetcher::download`, digest declared",
        "catalog `Fetcher::download`, cut once + resume",
    ];
    let mut v: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        v[0].push(rate(size, async { assert_eq!(cache::sha256_hex(&body), hex) }).await);
        v[1].push(rate(size, async { assert_eq!(hash_file(&source), hex) }).await);
        for (i, (hash, fsync)) in [(false, false), (true, false), (true, true)].into_iter().enumerate() {
            v[2 + i].push(
                rate(size, async {
                    let got = plain_download(&client, &url, &plain, hash, fsync).await;
                    assert!(got.is_none_or(|h| h == hex));
                })
                .await,
            );
            std::fs::remove_file(&plain).unwrap();
        }
        for (i, cut) in [false, true].into_iter().enumerate() {
            server.cut_next.store(cut, Ordering::SeqCst);
            let t = Instant::now();
            let got = fetcher.download(&target, Some(&hex), &progress).await.unwrap();
            v[5 + i].push(size as f64 / t.elapsed().as_secs_f64() / 1e6);
            assert_eq!((got.hex.as_str(), got.size), (hex.as_str(), size as u64));
            // Outside the clock, like the plain downloads' files.
            std::fs::remove_file(&got.path).unwrap();
        }
    }

    println!("\n| measurement | runs | p50 MB/s | min | max |\n|---|---|---|---|---|");
    let p50: Vec<f64> = names
        .iter()
        .zip(&v)
        .map(|(name, v)| {
            let (line, p50) = row(name, v);
            println!("{line}");
            p50
        })
        .collect();
    let pct = |a: usize, b: usize| 100.0 * p50[a] / p50[b];
    println!("\nat p50: fetcher / plain download            {:.0} %", pct(5, 2));
    println!("        fetcher / download + sha256         {:.0} %", pct(5, 3));
    println!("        fetcher / download + sha256 + fsync {:.0} %", pct(5, 4));
    println!("        cut + resume / uncut fetcher        {:.0} %", pct(6, 5));
    println!("load at the end: {}", loadavg());

    if let Some(path) = std::env::var_os("LLORCH_SMOLLM2_GGUF") {
        gguf(Path::new(&path), gguf_runs);
    }
}
