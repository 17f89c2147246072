//! Streaming throughput over a counted window, shared by the relay and real-engine sections:
//! clients stream replies back to back one [`Way`] (direct, through llama-orch, or through the
//! reference proxy), tokens received in the window are counted and the CPU of every process on
//! the path is read over the same window. [`order`] takes the ways in turns so all see the
//! same machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::cpu::{CpuUse, Procs};
use llama_orch_e2e::bench::sse_count::Kind;
use llama_orch_e2e::bench::stats::median;

use crate::paths::{Paths, Stages};

/// The request bodies of one measurement: the engine's `/completion` (direct, and through the
/// reference proxy) and the daemon's `/v2/tasks`, asking for the same reply.
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

/// A way to a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// Straight to a replica.
    Direct,
    /// Through llama-orch's task API.
    Through,
    /// Through the reference proxy (one plain HTTP hop; a byte pump with `--reference tcp`).
    Reference,
}

impl Way {
    /// As progress lines name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Through => "through",
            Way::Reference => "reference proxy",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Tokens received per second by `concurrency` clients, each streaming replies back to back,
/// counted over `secs` after a 1 s warm-up; then waits until the engines' slots are idle again
/// (the streams cut at the deadline are canceled).
pub(crate) async fn window(p: &Paths, procs: &Procs, way: Way, concurrency: usize, b: &Bodies, secs: f64) -> Window {
    let start = Instant::now() + Duration::from_secs(1);
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|w| {
            let (p, b) = (p.clone(), b.clone());
            tokio::spawn(async move {
                let mut counted = 0u64;
                let work = async {
                    loop {
                        let mut ev = match way {
                            Way::Through => p.open_through(&b.through, Instant::now(), &mut Stages::default()).await,
                            Way::Direct => p.open_direct(w, &b.direct).await,
                            Way::Reference => p.open_reference(&b.direct).await,
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

/// The three ways at one concurrency, `reps` windows each, in turns.
#[derive(Default)]
pub(crate) struct Compared {
    rates: [Vec<f64>; 3],
    cpu: [CpuUse; 3],
    tokens: [u64; 3],
}

impl Compared {
    /// Adds one window.
    pub(crate) fn add(&mut self, way: Way, w: Window) {
        let i = way.index();
        self.rates[i].push(w.rate);
        self.cpu[i] += w.cpu;
        self.tokens[i] += w.tokens;
    }

    /// Median tokens/s of `way`.
    pub(crate) fn median(&self, way: Way) -> f64 {
        median(&self.rates[way.index()])
    }

    /// Tokens counted over `way`'s windows.
    pub(crate) fn tokens(&self, way: Way) -> u64 {
        self.tokens[way.index()]
    }

    /// CPU seconds over `way`'s windows.
    pub(crate) fn cpu(&self, way: Way) -> CpuUse {
        self.cpu[way.index()]
    }

    /// CPU µs per token of `way`; through, the daemon's less what it used in the direct windows
    /// (its idle background: the direct windows are as many and as long).
    pub(crate) fn per_token(&self, way: Way) -> CpuUse {
        let us = |s: f64, n: u64| 1e6 * s / n.max(1) as f64;
        let mut c = self.cpu(way);
        if way == Way::Through {
            c.daemon -= self.cpu(Way::Direct).daemon;
        }
        let n = self.tokens(way);
        CpuUse {
            client: us(c.client, n),
            engines: us(c.engines, n),
            proxies: us(c.proxies, n),
            daemon: us(c.daemon, n),
            reference: us(c.reference, n),
        }
    }
}

/// The window order of repetition `rep`: each way goes first in turn.
pub(crate) fn order(rep: usize) -> [Way; 3] {
    let mut ways = [Way::Direct, Way::Through, Way::Reference];
    ways.rotate_left(rep % 3);
    ways
}
