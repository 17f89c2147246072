//! How long a sleeping Pool takes to wake: from the pass that places its first replica (the
//! VRAM is there, the container is about to be created) to the pass that sees that replica
//! Ready. Measured per Pool as an exponentially weighted moving average; before the first
//! measurement, a prior from the VRAM it needs (what the engine loads): [`PRIOR_BASE_MS`] plus
//! one second per [`PRIOR_BYTES_PER_SEC`]. The data plane adds what is left of it to a waking
//! Pool's `predicted_start_ms` (carried as `ServingPool::cold_start_ms`). Time spent waiting for
//! VRAM (a busy Pool holding it) is not part of it: that wait is not known in advance.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use llorch_manifests::status::{LastError, WakeTimes};

/// The prior's fixed part: creating a container and starting an engine.
pub const PRIOR_BASE_MS: u64 = 2_000;

/// The prior's load rate: bytes of VRAM need loaded per second.
pub const PRIOR_BYTES_PER_SEC: u64 = 1 << 30;

/// Weight of a new measurement in the average.
pub const ALPHA: f64 = 0.3;

/// The prior for a Pool needing `need_bytes` per replica.
pub fn prior_ms(need_bytes: u64) -> u64 {
    PRIOR_BASE_MS.saturating_add(need_bytes.saturating_mul(1_000) / PRIOR_BYTES_PER_SEC)
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Measured {
    mean_ms: f64,
    samples: u64,
}

/// Every Pool's cold-start record.
#[derive(Debug, Default)]
pub struct ColdStarts {
    prior: HashMap<String, u64>,
    measured: HashMap<String, Measured>,
    began: HashMap<String, SystemTime>,
    failed: HashMap<String, LastError>,
    times: HashMap<String, WakeTimes>,
}

impl ColdStarts {
    /// `pool` (which may sleep) needs `need_bytes` per replica: its prior.
    pub fn declare(&mut self, pool: &str, need_bytes: u64) {
        self.prior.insert(pool.to_string(), prior_ms(need_bytes));
    }

    /// `pool`'s first replica was placed with none running: a wake starts now (unless one is
    /// already being timed).
    pub fn began(&mut self, pool: &str, now: SystemTime) {
        self.began.entry(pool.to_string()).or_insert(now);
    }

    /// `pool` has a Ready replica: the wake being timed, if any, ends; returns how long it took.
    pub fn ready(&mut self, pool: &str, now: SystemTime) -> Option<Duration> {
        self.failed.remove(pool);
        let took = now.duration_since(self.began.remove(pool)?).unwrap_or_default();
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.times.entry(pool.to_string()).or_default().observe(ms);
        let sample = ms as f64;
        self.measured
            .entry(pool.to_string())
            .and_modify(|m| {
                m.mean_ms += ALPHA * (sample - m.mean_ms);
                m.samples += 1;
            })
            .or_insert(Measured {
                mean_ms: sample,
                samples: 1,
            });
        Some(took)
    }

    /// A wake of `pool` stopped before it was Ready (it was put to sleep again, or its replica
    /// failed): nothing is measured.
    pub fn abandoned(&mut self, pool: &str) {
        self.began.remove(pool);
        self.failed.remove(pool);
    }

    /// A replica of `pool` failed with `error`: when that happened during the wake being timed,
    /// the wake failed (the timing stops; the error stands until a replica is Ready or the Pool
    /// sleeps). Returns true when it ended a wake.
    pub fn failure(&mut self, pool: &str, error: &LastError) -> bool {
        let Some(began) = self.began.get(pool) else {
            return false;
        };
        let at = error
            .at
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok());
        if at.is_none_or(|at| at < *began) {
            return false;
        }
        self.began.remove(pool);
        self.failed.insert(pool.to_string(), error.clone());
        true
    }

    /// The failure that ended `pool`'s last wake, while it stands.
    pub fn wake_error(&self, pool: &str) -> Option<&LastError> {
        self.failed.get(pool)
    }

    /// What a wake of `pool` is expected to take: its measured average, else its prior.
    pub fn expected_ms(&self, pool: &str) -> Option<u64> {
        match self.measured.get(pool) {
            Some(m) => Some(m.mean_ms.round() as u64),
            None => self.prior.get(pool).copied(),
        }
    }

    /// Every measured wake of `pool` since the daemon started.
    pub fn wake_times(&self, pool: &str) -> WakeTimes {
        self.times.get(pool).cloned().unwrap_or_default()
    }

    /// Forgets Pools for which `keep` is false.
    pub fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.prior.retain(|k, _| keep(k));
        self.measured.retain(|k, _| keep(k));
        self.began.retain(|k, _| keep(k));
        self.failed.retain(|k, _| keep(k));
        self.times.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_prior_comes_from_the_need_then_measurements_take_over() {
        let mut c = ColdStarts::default();
        assert_eq!(c.expected_ms("p"), None);
        c.declare("p", 7 << 30);
        assert_eq!(c.expected_ms("p"), Some(9_000), "2 s + 7 GiB at 1 GiB/s");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        c.began("p", t0);
        c.began("p", t0 + Duration::from_secs(1));
        assert_eq!(
            c.ready("p", t0 + Duration::from_millis(1_500)),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            c.expected_ms("p"),
            Some(1_500),
            "the first measurement replaces the prior"
        );
        assert_eq!(
            c.ready("p", t0 + Duration::from_secs(9)),
            None,
            "no wake was being timed"
        );
        c.began("p", t0);
        c.ready("p", t0 + Duration::from_millis(2_500));
        assert_eq!(c.expected_ms("p"), Some(1_800), "1500 + 0.3 × (2500 − 1500)");
        let times = c.wake_times("p");
        assert_eq!((times.count, times.sum_ms), (2, 4_000));
        assert_eq!(&times.buckets[..4], &[0, 0, 1, 1], "1.5 s in (1, 2], 2.5 s in (2, 5]");
        c.began("p", t0);
        c.abandoned("p");
        assert_eq!(c.ready("p", t0 + Duration::from_secs(60)), None);

        let error = |at: &str| LastError {
            message: "engine exited with code 1".into(),
            log_tail: Vec::new(),
            at: at.into(),
        };
        c.began("p", SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_756_000));
        assert!(
            !c.failure("p", &error("2025-12-03T09:59:59Z")),
            "an older failure is not this wake's"
        );
        assert!(c.failure("p", &error("2025-12-03T10:00:01Z")));
        assert_eq!(c.wake_error("p").unwrap().message, "engine exited with code 1");
        c.ready("p", t0);
        assert!(c.wake_error("p").is_none(), "a Ready replica clears it");
    }
}
