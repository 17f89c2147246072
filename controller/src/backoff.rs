//! Restart policy of one replica slot: exponential backoff between attempts and a circuit
//! breaker that pauses a crash-looping engine (OC-POOL-3010/3011). Pure state machine over
//! `Instant`s handed in, so it is tested without sleeping.
//! It only decides when a slot may try again; it never starts or removes anything.

use std::time::{Duration, Instant};

use llorch_manifests::RestartSpec;
use llorch_manifests::status::CircuitState;

/// A replica that stayed Ready this long has recovered: its failure count resets.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Backoff and circuit state of one slot.
#[derive(Clone, Debug, Default)]
pub struct SlotBackoff {
    /// Failures since the slot was last stable.
    pub consecutive_failures: u32,
    /// No attempt before this instant.
    pub not_before: Option<Instant>,
    /// The breaker.
    pub circuit: CircuitState,
}

impl SlotBackoff {
    /// The delay before the attempt that follows failure number `n` (1-based): the first
    /// retry is immediate (a one-off crash costs no extra downtime), then `initial`,
    /// doubling up to `max`.
    pub fn delay_after(policy: &RestartSpec, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let exp = (n - 2).min(30);
        let ms = policy
            .backoff_initial_ms
            .saturating_mul(1u64 << exp)
            .min(policy.backoff_max_ms);
        Duration::from_millis(ms)
    }

    /// Records a failure at `now` and schedules the next attempt.
    pub fn record_failure(&mut self, policy: &RestartSpec, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.circuit == CircuitState::HalfOpen || self.consecutive_failures >= policy.circuit_breaker_failures {
            self.circuit = CircuitState::Open;
            self.not_before = Some(now + Duration::from_millis(policy.backoff_max_ms));
        } else {
            self.not_before = Some(now + Self::delay_after(policy, self.consecutive_failures));
        }
    }

    /// May an attempt start at `now`? Moves an open circuit to half-open when its pause ends.
    pub fn may_attempt(&mut self, now: Instant) -> bool {
        let due = self.not_before.is_none_or(|t| now >= t);
        if due && self.circuit == CircuitState::Open {
            self.circuit = CircuitState::HalfOpen;
        }
        due
    }

    /// Time left before the next attempt, if one is pending.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.not_before
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// The replica has been Ready since `since`: once that lasts [`STABLE_AFTER`], forget
    /// past failures and close the circuit.
    pub fn observe_ready(&mut self, since: Instant, now: Instant) {
        if self.consecutive_failures > 0 && now.duration_since(since) >= STABLE_AFTER {
            *self = SlotBackoff::default();
        } else if self.circuit == CircuitState::HalfOpen {
            self.circuit = CircuitState::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartSpec {
        RestartSpec {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            circuit_breaker_failures: 5,
        }
    }

    #[test]
    fn backoff_is_immediate_then_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<u64> = (1..=7)
            .map(|n| SlotBackoff::delay_after(&p, n).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![0, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn circuit_opens_after_the_threshold_and_half_opens_after_the_pause() {
        let p = policy();
        let t0 = Instant::now();
        let mut b = SlotBackoff::default();
        for _ in 0..4 {
            b.record_failure(&p, t0);
        }
        assert_eq!(b.circuit, CircuitState::Closed);
        b.record_failure(&p, t0);
        assert_eq!(b.circuit, CircuitState::Open);
        assert!(!b.may_attempt(t0 + Duration::from_millis(999)));
        assert!(b.may_attempt(t0 + Duration::from_millis(1_000)));
        assert_eq!(b.circuit, CircuitState::HalfOpen);
        // The trial fails: open again straight away.
        b.record_failure(&p, t0 + Duration::from_millis(1_000));
        assert_eq!(b.circuit, CircuitState::Open);
    }

    #[test]
    fn a_stable_replica_resets_the_failure_count() {
        let p = policy();
        let t0 = Instant::now();
        let mut b = SlotBackoff::default();
        b.record_failure(&p, t0);
        b.record_failure(&p, t0);
        b.observe_ready(t0, t0 + Duration::from_secs(1));
        assert_eq!(b.consecutive_failures, 2);
        b.observe_ready(t0, t0 + STABLE_AFTER);
        assert_eq!(b.consecutive_failures, 0);
        assert_eq!(b.circuit, CircuitState::Closed);
    }
}
