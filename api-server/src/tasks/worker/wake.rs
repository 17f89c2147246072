//! Predictions for a waking Pool: while a Pool that may sleep (`scaling.minReplicas: 0`) has no
//! replica, a queued task waits for the wake first — what is left of the Pool's expected cold
//! start (`ServingPool::cold_start_ms`, timed from the first task that found it asleep) — and
//! then for its place in line, as if one replica had come up idle. With replicas, the
//! estimator's usual prediction. The worker's `metrics` frames carry the updated figure while
//! the engine loads.

use std::time::Instant;

use llorch_manifests::task::ErrorCode;

use super::PoolWorker;
use crate::error::ApiError;
use crate::tasks::lifecycle::Step;

/// How many of the engine's last log lines a failed wake's error carries.
const WAKE_LOG_LINES: usize = 3;

/// A prediction for one queued task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Prediction {
    /// Milliseconds until it is expected to start.
    pub start_ms: u64,
    /// The chance that it starts within `start_ms`.
    pub on_time: f64,
}

impl PoolWorker {
    /// Milliseconds left of the Pool's expected wake; `None` when it has replicas (or cannot
    /// sleep). The wake is timed from the first call that finds it without any.
    pub(super) fn wake_left_ms(&mut self, now: Instant) -> Option<u64> {
        let view = self
            .view
            .as_ref()
            .filter(|v| v.scales_to_zero && self.slots.slots_total() == 0);
        let Some(view) = view else {
            self.waking_since = None;
            return None;
        };
        let expected = view.cold_start_ms.unwrap_or(0);
        let since = *self.waking_since.get_or_insert(now);
        Some(expected.saturating_sub(now.saturating_duration_since(since).as_millis() as u64))
    }

    /// The prediction for the task at queue `position`, given what is left of a wake.
    pub(super) fn predict(&self, position: u32, wake_left_ms: Option<u64>) -> Prediction {
        let (slots_total, busy) = match wake_left_ms {
            // One replica expected, idle, once the wake is over.
            Some(_) => (self.view.as_ref().map_or(1, |v| v.slots_per_replica.max(1)), 0),
            None => (self.slots.slots_total(), self.slots.busy_slots()),
        };
        let wait = self.estimate.predicted_start_ms(position, slots_total, busy);
        let on_time = self
            .estimate
            .on_time_probability(position, slots_total, busy, wait.max(1));
        Prediction {
            start_ms: wait.saturating_add(wake_left_ms.unwrap_or(0)),
            on_time,
        }
    }

    /// Ends the waiting tasks once per wake failure the controller publishes, while the Pool
    /// still has no replica.
    pub(super) fn end_failed_wake(&mut self) {
        let Some(error) = self.view.as_ref().and_then(|v| v.wake_error.clone()) else {
            return;
        };
        if self.slots.slots_total() > 0 || self.wake_failed_at.as_deref() == Some(error.at.as_str()) {
            return;
        }
        self.wake_failed_at = Some(error.at.clone());
        let Some(queue) = self.queue.as_mut() else { return };
        let ended = queue.drain(Instant::now());
        if ended.is_empty() {
            return;
        }
        let tail = &error.log_tail[error.log_tail.len().saturating_sub(WAKE_LOG_LINES)..];
        let last_log = if tail.is_empty() {
            String::new()
        } else {
            format!("; its last log lines: {}", tail.join(" | "))
        };
        let err = ApiError::new(
            ErrorCode::PoolUnready,
            format!(
                "pool `{}` could not wake: {}{last_log}; retry later (the next task tries again), \
                 or see `orchctl describe pool/{}`",
                self.pool, error.message, self.pool
            ),
        )
        .retriable();
        for (id, task) in ended {
            self.waiting.remove(&id);
            task.step(Step::Failed(err.clone()));
        }
    }
}
