//! Helpers for the benchmark binaries (`src/bin/bench-*.rs`): a fast SSE event counter for
//! streamed bodies, CPU time of the processes on a request's path (read from `/proc`), the
//! engine's own start as a baseline, and percentiles. Linux only, like the benchmarks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::daemon::Daemon;

/// The value after `name` on the command line (`--runs 20`), if given.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Percentiles and machine load.
pub mod stats {
    /// The `p` quantile (0–1) of sorted samples, nearest rank.
    pub fn percentile(sorted: &[f64], p: f64) -> f64 {
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }

    /// `v`, sorted ascending.
    pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }

    /// The median of `v`.
    pub fn median(v: &[f64]) -> f64 {
        percentile(&sorted(v.to_vec()), 0.5)
    }

    /// One Markdown row `| name | runs | p50 | p90 | min | max |` of `ms`, and its p50.
    pub fn summary(name: &str, ms: Vec<f64>) -> (String, f64) {
        let ms = sorted(ms);
        let (p50, p90) = (percentile(&ms, 0.5), percentile(&ms, 0.9));
        (
            format!(
                "| {name} | {} | {p50:.0} | {p90:.0} | {:.0} | {:.0} |",
                ms.len(),
                ms[0],
                ms[ms.len() - 1]
            ),
            p50,
        )
    }

    /// The 1, 5 and 15-minute load averages, as `/proc/loadavg` shows them.
    pub fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    }
}

/// The baseline the reconcile and swap benchmarks subtract: the mock engine's own start,
/// without llama-orch.
pub mod engine_start {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use llorch_controller::runtime::docker::DockerRuntime;
    use llorch_controller::runtime::{ContainerRuntime, ContainerSpec, GpuAttachment, Mount};

    use crate::daemon::Runtime;

    /// Milliseconds, per run, to create and start the mock engine container (with `extra_args`)
    /// through the runtime API the daemon uses, then poll its `/health` every 2 ms until 200.
    pub fn measure(rt: &Runtime, model: &std::path::Path, runs: usize, extra_args: &[&str]) -> Vec<f64> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let kind = if rt.name == "podman" {
            llorch_manifests::config::RuntimeKind::Podman
        } else {
            llorch_manifests::config::RuntimeKind::Docker
        };
        let runtime = tokio.block_on(DockerRuntime::connect(kind, Some(&rt.socket))).unwrap();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let instance = crate::unique("bench");
        let mut out = Vec::new();
        for i in 0..runs {
            let mut args: Vec<String> = ["--model", "/models/tiny.gguf", "--host", "0.0.0.0", "--port", "8080"]
                .map(String::from)
                .to_vec();
            args.extend(extra_args.iter().map(|a| a.to_string()));
            let spec = ContainerSpec {
                name: format!("{instance}-{i}"),
                image: crate::mock_image(),
                launch: llorch_controller::runtime::Launch::Image,
                args,
                env: Vec::new(),
                labels: BTreeMap::from([("dev.llama-orch.bench".to_string(), instance.clone())]),
                container_port: 8080,
                mounts: vec![Mount {
                    host_path: model.display().to_string(),
                    container_path: "/models/tiny.gguf".into(),
                    read_only: true,
                }],
                gpus: GpuAttachment::None,
            };
            let t0 = Instant::now();
            let c = tokio.block_on(runtime.create_and_start(&spec)).unwrap();
            let url = format!("http://127.0.0.1:{}/health", c.host_port.unwrap());
            while !http.get(&url).send().is_ok_and(|r| r.status().is_success()) {
                std::thread::sleep(Duration::from_millis(2));
            }
            out.push(t0.elapsed().as_secs_f64() * 1e3);
            tokio.block_on(runtime.remove(&c.id)).unwrap();
        }
        out
    }
}

/// CPU time of the processes on a request's path.
pub mod cpu {
    use std::collections::HashMap;

    use super::Daemon;

    /// CPU time (user + system, seconds) of a process, from `/proc/<pid>/stat`.
    pub fn cpu_secs(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15, in USER_HZ ticks
        // (100 a second on Linux).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// The `llama-orchd` this process started.
    pub fn daemon_pid() -> u32 {
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).unwrap_or("");
            if head.ends_with("(llama-orchd") && ppid == me {
                return pid;
            }
        }
        panic!("cannot find the llama-orchd started by this bench");
    }

    /// Host pids of pool `name`'s engines: a container's main process (from the runtime), or a
    /// `binary` Engine's process (its replica id is `proc-<pid>-<start>`).
    pub fn engine_pids(d: &Daemon, name: &str) -> Vec<u32> {
        d.snapshot()
            .replicas
            .iter()
            .filter(|r| r.pool == name)
            .filter_map(|r| r.container_id.clone())
            .map(|id| match id.strip_prefix("proc-") {
                Some(rest) => rest.split('-').next().unwrap().parse().unwrap(),
                None => d
                    .runtime
                    .run(&["inspect", "-f", "{{.State.Pid}}", &id])
                    .parse()
                    .unwrap(),
            })
            .collect()
    }

    /// Pids of Docker's userland proxies (`docker-proxy`) for the host ports of `endpoints`: with
    /// Docker's default `userland-proxy`, loopback connections to a published port go through one.
    pub fn proxy_pids(endpoints: &[String]) -> Vec<u32> {
        let ports: Vec<String> = endpoints
            .iter()
            .filter_map(|e| e.rsplit(':').next().map(|p| p.trim_end_matches('/').to_string()))
            .collect();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if !args.first().is_some_and(|a| a.ends_with(b"docker-proxy")) {
                continue;
            }
            if args
                .windows(2)
                .any(|w| w[0] == b"-host-port" && ports.iter().any(|p| p.as_bytes() == w[1]))
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// CPU seconds used by the bench client, the engines, Docker's port proxies, the daemon and the
    /// reference proxy.
    #[derive(Clone, Copy, Default, Debug)]
    pub struct CpuUse {
        /// This process (the benchmark's clients).
        pub client: f64,
        /// The engine containers.
        pub engines: f64,
        /// Docker's port proxies.
        pub proxies: f64,
        /// The daemon.
        pub daemon: f64,
        /// The reference proxy (`bench-proxy`), where a benchmark runs one.
        pub reference: f64,
    }

    /// The processes whose CPU time a benchmark reads.
    #[derive(Clone, Debug)]
    pub struct Procs {
        /// The daemon.
        pub daemon: u32,
        /// Engine containers (host pids).
        pub engines: Vec<u32>,
        /// `docker-proxy` processes.
        pub proxies: Vec<u32>,
        /// The reference proxy (`bench-proxy`), where a benchmark runs one.
        pub reference: Vec<u32>,
    }

    impl Procs {
        /// CPU seconds used so far by each group, in 10 ms ticks (`/proc/<pid>/stat`).
        pub fn now(&self) -> CpuUse {
            CpuUse {
                client: cpu_secs(std::process::id()),
                engines: self.engines.iter().map(|&p| cpu_secs(p)).sum(),
                proxies: self.proxies.iter().map(|&p| cpu_secs(p)).sum(),
                daemon: cpu_secs(self.daemon),
                reference: self.reference.iter().map(|&p| cpu_secs(p)).sum(),
            }
        }

        /// The CPU time of every thread of each group, in nanoseconds: see [`Sample`].
        pub fn sample(&self) -> Sample {
            let group = |pids: &[u32]| pids.iter().flat_map(|&p| thread_ns(p)).collect();
            Sample {
                client: thread_ns(std::process::id()),
                engines: group(&self.engines),
                proxies: group(&self.proxies),
                daemon: thread_ns(self.daemon),
                reference: group(&self.reference),
            }
        }
    }

    /// CPU time of each thread of `pid` (ns, by thread id) from `/proc/<pid>/task/*/schedstat`,
    /// whose first field is the thread's time on a CPU. Finer than `/proc/<pid>/stat`'s 10 ms
    /// ticks; the kernel updates a running thread's count at least every scheduler tick.
    fn thread_ns(pid: u32) -> HashMap<u32, u64> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return HashMap::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let tid = t.file_name().to_string_lossy().parse().ok()?;
                let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
                Some((tid, stat.split_whitespace().next()?.parse().ok()?))
            })
            .collect()
    }

    /// Per-thread CPU times of the processes a benchmark watches, taken at one moment.
    /// [`Sample::since`] counts, per group, what each thread used since an earlier sample (all
    /// of it for a thread started since). A thread that exits in between loses its share of
    /// the interval: rare for these long-lived thread pools.
    #[derive(Clone, Debug, Default)]
    pub struct Sample {
        client: HashMap<u32, u64>,
        engines: HashMap<u32, u64>,
        proxies: HashMap<u32, u64>,
        daemon: HashMap<u32, u64>,
        reference: HashMap<u32, u64>,
    }

    impl Sample {
        /// CPU seconds each group used between `before` and this sample.
        pub fn since(&self, before: &Sample) -> CpuUse {
            let delta = |now: &HashMap<u32, u64>, then: &HashMap<u32, u64>| {
                let ns: u64 = now
                    .iter()
                    .map(|(tid, ns)| ns.saturating_sub(then.get(tid).copied().unwrap_or(0)))
                    .sum();
                ns as f64 / 1e9
            };
            CpuUse {
                client: delta(&self.client, &before.client),
                engines: delta(&self.engines, &before.engines),
                proxies: delta(&self.proxies, &before.proxies),
                daemon: delta(&self.daemon, &before.daemon),
                reference: delta(&self.reference, &before.reference),
            }
        }
    }

    impl std::ops::Sub for CpuUse {
        type Output = CpuUse;
        fn sub(self, o: CpuUse) -> CpuUse {
            CpuUse {
                client: self.client - o.client,
                engines: self.engines - o.engines,
                proxies: self.proxies - o.proxies,
                daemon: self.daemon - o.daemon,
                reference: self.reference - o.reference,
            }
        }
    }

    impl std::ops::AddAssign for CpuUse {
        fn add_assign(&mut self, o: CpuUse) {
            self.client += o.client;
            self.engines += o.engines;
            self.proxies += o.proxies;
            self.daemon += o.daemon;
            self.reference += o.reference;
        }
    }
}

/// A tiny incremental SSE splitter: enough for counting events fast and alike on both sides.
pub mod sse_count {
    /// What one SSE event was.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        /// A token.
        Token,
        /// The final event.
        End,
        /// An error event.
        Error,
        /// Anything else (`started`, `metrics`, comments).
        Other,
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// llama-server's native stream: `data: {…"stop":false…}` per token, one `"stop":true`.
    pub fn direct(ev: &[u8]) -> Kind {
        if ev.starts_with(b"error:") || find(ev, b"\"error\"").is_some() {
            Kind::Error
        } else if find(ev, b"\"stop\":false").is_some() {
            Kind::Token
        } else if find(ev, b"\"stop\":true").is_some() {
            Kind::End
        } else {
            Kind::Other
        }
    }

    /// llama-orch's task stream: `event: token|end|error|started|metrics`.
    pub fn through(ev: &[u8]) -> Kind {
        if ev.starts_with(b"event: token") || ev.starts_with(b"event:token") {
            Kind::Token
        } else if ev.starts_with(b"event: end") || ev.starts_with(b"event:end") {
            Kind::End
        } else if ev.starts_with(b"event: error") || ev.starts_with(b"event:error") {
            Kind::Error
        } else {
            Kind::Other
        }
    }

    /// An OpenAI-compatible stream (`/v1/completions`): `data: {…"text":"…"…}` per token,
    /// `data: [DONE]` at the end.
    pub fn openai(ev: &[u8]) -> Kind {
        const TEXT: &[u8] = b"\"text\":\"";
        if find(ev, b"[DONE]").is_some() {
            Kind::End
        } else if find(ev, b"\"error\"").is_some() {
            Kind::Error
        } else if let Some(at) = find(ev, TEXT) {
            // An empty text (the final chunk with its finish reason) is not a token.
            if ev.get(at + TEXT.len()) == Some(&b'"') {
                Kind::Other
            } else {
                Kind::Token
            }
        } else {
            Kind::Other
        }
    }

    /// Events off a streaming response body.
    pub struct Events {
        resp: reqwest::Response,
        buf: Vec<u8>,
        start: usize,
        scanned: usize,
        classify: fn(&[u8]) -> Kind,
    }

    impl Events {
        pub fn new(resp: reqwest::Response, classify: fn(&[u8]) -> Kind) -> Self {
            Self {
                resp,
                buf: Vec::with_capacity(4096),
                start: 0,
                scanned: 0,
                classify,
            }
        }

        /// The next event; `None` at the end of the body.
        pub async fn next(&mut self) -> Option<Kind> {
            loop {
                let from = self.scanned.max(self.start);
                if let Some(at) = find(&self.buf[from..], b"\n\n") {
                    let end = from + at;
                    let kind = (self.classify)(&self.buf[self.start..end]);
                    self.start = end + 2;
                    self.scanned = self.start;
                    return Some(kind);
                }
                // Keep a possible half of "\n\n" for the next scan.
                self.scanned = self.buf.len().saturating_sub(1).max(self.start);
                if self.start > 0 {
                    self.buf.drain(..self.start);
                    self.scanned -= self.start;
                    self.start = 0;
                }
                match self.resp.chunk().await {
                    Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        }

        /// Reads to the end of the body (so the connection goes back to the pool).
        pub async fn drain(mut self) {
            while self.resp.chunk().await.ok().flatten().is_some() {}
        }
    }
}
