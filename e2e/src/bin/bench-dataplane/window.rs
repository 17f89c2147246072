//! Streaming throughput over a counted window, shared by the relay and real-engine sections:
//! clients stream replies back to back, direct or through, tokens received in the window are
//! counted and the CPU of every process on the path is read over the same window. `compare`
//! alternates direct and through runs so both see the same machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::{CpuUse, Procs};
use llama_orch_e2e::bench::sse_count::Kind;
use llama_orch_e2e::bench::stats::median;

use crate::paths::{Paths, Stages};

/// The request bodies of one measurement: the engine's `/completion` and the daemon's
/// `/v2/tasks`, asking for the same reply.
#[derive(Clone)]
pub(crate) struct Bodies {
    pub(crate) direct: Arc<Vec<u8>>,
    pub(crate) through: Arc<Vec<u8>>,
}

/// One window: tokens per second, tokens counted, CPU used by each process group.
pub(crate) struct Window {
    pub(crate) rate: f64,
    pub(crate) tokens: u64,
    pub(crate) cpu: CpuUse,
}

/// Tokens received per second by `concurrency` clients, each streaming replies back to back,
/// counted over `secs` after a 1 s warm-up; then waits until the engines' slots are idle again
/// (the streams cut at the deadline are canceled).
pub(crate) async fn window(
    p: &Paths,
    procs: &Procs,
    through: bool,
    concurrency: usize,
    b: &Bodies,
    secs: f64,
) -> Window {
    let start = Instant::now() + Duration::from_secs(1);
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|w| {
            let (p, b) = (p.clone(), b.clone());
            tokio::spawn(async move {
                let mut counted = 0u64;
                let work = async {
                    loop {
                        let mut ev = if through {
                            p.open_through(&b.through, Instant::now(), &mut Stages::default()).await
                        } else {
                            p.open_direct(w, &b.direct).await
                        };
                        loop {
                            match ev.next().await {
                                Some(Kind::Token) => {
                                    if Instant::now() >= start {
                                        counted += 1;
                                    }
                                }
                                Some(Kind::End) | None => break,
                                Some(Kind::Error) => panic!("stream failed"),
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
        let before = procs.sample();
        tokio::time::sleep_until(deadline.into()).await;
        procs.sample().since(&before)
    });
    let mut tokens = 0;
    for h in handles {
        tokens += h.await.unwrap();
    }
    let cpu = cpu.await.unwrap();
    p.wait_idle().await;
    Window {
        rate: tokens as f64 / secs,
        tokens,
        cpu,
    }
}

/// Direct and through at one concurrency, `reps` windows each way, alternating which goes
/// first.
#[derive(Default)]
pub(crate) struct Compared {
    pub(crate) direct: Vec<f64>,
    pub(crate) through: Vec<f64>,
    pub(crate) direct_cpu: CpuUse,
    pub(crate) through_cpu: CpuUse,
    pub(crate) direct_tokens: u64,
    pub(crate) through_tokens: u64,
}

impl Compared {
    /// Adds one window.
    pub(crate) fn add(&mut self, through: bool, w: Window) {
        if through {
            self.through.push(w.rate);
            self.through_cpu += w.cpu;
            self.through_tokens += w.tokens;
        } else {
            self.direct.push(w.rate);
            self.direct_cpu += w.cpu;
            self.direct_tokens += w.tokens;
        }
    }

    /// Median tokens/s direct and through.
    pub(crate) fn medians(&self) -> (f64, f64) {
        (median(&self.direct), median(&self.through))
    }

    /// CPU µs per token direct and through, the daemon's through less what it used in the
    /// direct windows (its idle background: the direct windows are as many and as long).
    pub(crate) fn per_token(&self) -> (CpuUse, CpuUse) {
        let us = |s: f64, n: u64| 1e6 * s / n.max(1) as f64;
        let per = |c: CpuUse, n: u64| CpuUse {
            client: us(c.client, n),
            engines: us(c.engines, n),
            proxies: us(c.proxies, n),
            daemon: us(c.daemon, n),
        };
        let mut through = self.through_cpu;
        through.daemon -= self.direct_cpu.daemon;
        (
            per(self.direct_cpu, self.direct_tokens),
            per(through, self.through_tokens),
        )
    }
}

/// The window order of repetition `rep`: direct first on even ones.
pub(crate) fn order(rep: usize) -> [bool; 2] {
    if rep.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// `direct` or `through`, for progress lines.
pub(crate) fn way(through: bool) -> &'static str {
    if through { "through" } else { "direct" }
}
