//! A pool's service-time estimator: an exponentially weighted moving average (EWMA) of how long
//! a task holds a replica slot, and the predictions admission derives from it —
//! `predicted_start_ms`, the 429 `Retry-After` and `on_time_probability` (requirements §4,
//! ORCH-2007, ORCH-3100). Pure arithmetic on numbers the caller passes in; it reads no clock
//! and knows nothing of queues or replicas.
//!
//! The model behind all three: a pool has `slots_total` slots; each busy slot finishes after an
//! exponentially distributed time with the EWMA as its mean, so slots free up as a Poisson
//! process with rate `slots_total / mean`. A task that must wait for `k` slots to free up starts
//! after an Erlang(`k`, `slots_total / mean`) time: its mean is `k · mean / slots_total`.
//! Exponential service times overstate the spread of real decode times, which makes the
//! probabilities cautious rather than flattering.

/// What the estimate is before the first measured task: a short chat turn on a small model.
pub const PRIOR_SERVICE_MS: f64 = 2_000.0;

/// Weight of a new sample in the average: about the last ten tasks dominate.
pub const EWMA_ALPHA: f64 = 0.2;

/// Shortest `Retry-After` advised: sooner is a busy loop.
pub const MIN_RETRY_AFTER_MS: u64 = 100;

/// Longest `Retry-After` advised: longer and clients give up or forget.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// The service-time estimate of one pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceTimeEstimator {
    mean_ms: f64,
    samples: u64,
}

impl Default for ServiceTimeEstimator {
    fn default() -> Self {
        Self::with_prior_ms(PRIOR_SERVICE_MS)
    }
}

impl ServiceTimeEstimator {
    /// An estimator that assumes [`PRIOR_SERVICE_MS`] until the first sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// An estimator that assumes `prior_ms` until the first sample (at least 1 ms).
    pub fn with_prior_ms(prior_ms: f64) -> Self {
        Self {
            mean_ms: floor_mean(prior_ms),
            samples: 0,
        }
    }

    /// Records how long a finished task held its slot. The first sample replaces the prior;
    /// later ones move the average by [`EWMA_ALPHA`].
    pub fn record_ms(&mut self, service_ms: u64) {
        let sample = service_ms as f64;
        self.mean_ms = if self.samples == 0 {
            floor_mean(sample)
        } else {
            floor_mean(self.mean_ms + EWMA_ALPHA * (sample - self.mean_ms))
        };
        self.samples = self.samples.saturating_add(1);
    }

    /// The current mean service time in milliseconds (the prior until a sample arrives).
    pub fn mean_ms(&self) -> f64 {
        self.mean_ms
    }

    /// How many samples have been recorded.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Expected milliseconds until the task at queue `position` (0-based) starts, given the
    /// pool's slots. 0 when a free slot awaits it. A pool with no slots is treated as one
    /// slot: a replica is expected back, and the estimate says so rather than "never".
    pub fn predicted_start_ms(&self, position: u32, slots_total: u32, busy_slots: u32) -> u64 {
        let waits_for = slots_to_free(position, slots_total, busy_slots);
        round_ms(f64::from(waits_for) * self.mean_ms / f64::from(slots_total.max(1)))
    }

    /// The `Retry-After` for a task refused by a full queue: the expected time for enough
    /// tasks to leave that one more fits (`depth - capacity + 1` slot completions), clamped
    /// to [[`MIN_RETRY_AFTER_MS`], [`MAX_RETRY_AFTER_MS`]].
    pub fn retry_after_ms(&self, depth: u32, capacity: u32, slots_total: u32) -> u64 {
        let completions = f64::from(depth.saturating_sub(capacity).saturating_add(1));
        round_ms(completions * self.mean_ms / f64::from(slots_total.max(1)))
            .clamp(MIN_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS)
    }

    /// The probability, under the module's model, that the task at queue `position` starts
    /// within `within_ms` from now. For the SSE `metrics` frame, pass what is left of the
    /// `predicted_start_ms` promised at admission (0 once it is overdue).
    pub fn on_time_probability(&self, position: u32, slots_total: u32, busy_slots: u32, within_ms: u64) -> f64 {
        let waits_for = slots_to_free(position, slots_total, busy_slots);
        let rate_per_ms = f64::from(slots_total.max(1)) / self.mean_ms;
        erlang_cdf(waits_for, rate_per_ms * within_ms as f64)
    }
}

/// How many slots must free up before the task at `position` can start: none if enough slots
/// are free already.
fn slots_to_free(position: u32, slots_total: u32, busy_slots: u32) -> u32 {
    let free = slots_total.saturating_sub(busy_slots);
    position.saturating_add(1).saturating_sub(free)
}

/// P(Erlang(k, λ) ≤ t) with `x = λ·t`: `1 − Σ_{n<k} e^{−x} xⁿ/n!`, summed in log space so
/// neither `e^{−x}` nor `xⁿ` over- or underflows for long queues.
fn erlang_cdf(k: u32, x: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if x <= 0.0 || x.is_nan() {
        return 0.0;
    }
    let ln_x = x.ln();
    let mut ln_term = -x;
    let mut below = 0.0;
    for n in 0..k {
        below += ln_term.exp();
        ln_term += ln_x - f64::from(n + 1).ln();
    }
    (1.0 - below).clamp(0.0, 1.0)
}

/// A mean of at least 1 ms, so rates stay finite.
fn floor_mean(ms: f64) -> f64 {
    if ms.is_finite() { ms.max(1.0) } else { PRIOR_SERVICE_MS }
}

/// Milliseconds as a whole number; the inputs are finite and non-negative.
fn round_ms(ms: f64) -> u64 {
    // `as` saturates for out-of-range floats, which is what a clamp would do.
    ms.round() as u64
}

#[cfg(test)]
#[path = "estimate_tests.rs"]
mod tests;
