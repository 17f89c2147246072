//! Drain: the drain in force, the pool's load as `orchctl drain` reports it, and ending what
//! still runs once the drain's deadline passes. Admission's refusal while draining lives in
//! `admission`.

use std::sync::Arc;
use std::time::Instant;

use llorch_manifests::task::ErrorCode;

use super::{PoolLoad, PoolWorker};
use crate::error::ApiError;
use crate::tasks::lifecycle::Step;
use crate::tasks::task::TaskState;

/// A drain in force.
#[derive(Clone, Copy, Debug)]
pub(super) struct Drain {
    pub(super) deadline: Instant,
    /// The deadline passed and what ran was stopped.
    pub(super) enforced: bool,
}

impl PoolWorker {
    /// Starts this worker drained, with `left` until the deadline (a drain asked for before the
    /// worker existed, or before the daemon restarted). Nothing runs yet, so a deadline that
    /// already passed has nothing to end.
    pub fn drained(mut self, left: std::time::Duration) -> Self {
        self.drain = Some(Drain {
            deadline: Instant::now() + left,
            enforced: left.is_zero(),
        });
        self
    }

    /// What the pool has in flight.
    pub(super) fn load(&self) -> PoolLoad {
        let now = Instant::now();
        let queued = self.queue.as_ref().map_or(0, |q| q.depth()) + self.held.len() as u32;
        let mut running: Vec<String> = self.running.keys().cloned().collect();
        running.sort();
        let (queued_interactive, queued_batch) = self.queue.as_ref().map_or((0, 0), |q| q.depth_by_priority());
        // What is left of a wake under way (or all of it, before the first task asks), without
        // starting the wake's timer: this is a read.
        let wake_left_ms = self
            .view
            .as_ref()
            .filter(|v| v.scales_to_zero && self.slots.slots_total() == 0)
            .map(|v| {
                let expected = v.cold_start_ms.unwrap_or(0);
                let waited = self
                    .waking_since
                    .map_or(0, |since| now.saturating_duration_since(since).as_millis() as u64);
                expected.saturating_sub(waited)
            });
        PoolLoad {
            queued_interactive,
            queued_batch,
            slots_total: self.slots.slots_total(),
            slots_busy: self.slots.busy_slots(),
            predicted_wait_ms: Some(self.predict(queued, wake_left_ms).start_ms),
            draining: self.drain.is_some(),
            deadline_in_ms: self
                .drain
                .map(|d| d.deadline.saturating_duration_since(now).as_millis() as u64),
            in_flight: running.len() as u32,
            queued,
            running,
        }
    }

    /// The drain's deadline passed: every task still queued or running ends with an error.
    pub(super) fn enforce_drain(&mut self) {
        let Some(drain) = self.drain.as_mut() else { return };
        drain.enforced = true;
        let err = ApiError::new(
            ErrorCode::PoolDraining,
            format!(
                "pool `{}` was drained and the drain's deadline passed before the task finished; \
                 resubmit once the drain is lifted (DELETE /v2/pools/{}/drain)",
                self.pool, self.pool
            ),
        )
        .retriable();
        let mut stopped: Vec<Arc<TaskState>> = self.running.values().cloned().collect();
        stopped.extend(self.held.drain(..).map(|(_, t)| t));
        if let Some(q) = self.queue.as_mut() {
            stopped.extend(q.drain(Instant::now()).into_iter().map(|(_, t)| t));
        }
        self.waiting.clear();
        for task in stopped {
            task.step(Step::Aborted(err.clone()));
        }
    }
}
