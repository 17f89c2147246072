//! Admission: a task is refused while the pool drains, when it exceeds its session's token
//! budget, or when the queue is full (per the Pool's full policy); otherwise it is enqueued,
//! its session reserves its `max_tokens`, and its `started` frame is sent. It must not place
//! tasks on replicas.

use std::sync::Arc;
use std::time::Instant;

use llorch_manifests::task::{ErrorCode, Started, TaskAdmitted, TaskError};

use super::PoolWorker;
use crate::dataplane::{Admission, ServiceTimeEstimator};
use crate::tasks::log;
use crate::tasks::task::{TaskEvent, TaskState};
use crate::tasks::{Refusal, policy_label};

impl PoolWorker {
    pub(super) fn admit(&mut self, task: Arc<TaskState>) -> Result<TaskAdmitted, Refusal> {
        let now = Instant::now();
        if let Some(drain) = self.drain {
            let left = drain.deadline.saturating_duration_since(now).as_millis() as u64;
            let mut refusal = Refusal::new(
                503,
                ErrorCode::PoolDraining,
                format!(
                    "pool `{}` is draining and admits no new task; retry once the drain is lifted                      (`orchctl drain pool/{} --resume`) or on another pool",
                    self.pool, self.pool
                ),
                true,
            );
            refusal.error.retry_after_ms = Some(left.max(1_000));
            task.finish(Some(refusal.error.clone()));
            return Err(refusal);
        }
        if let Some(refusal) = self.over_budget(&task, now) {
            task.finish(Some(refusal.error.clone()));
            return Err(refusal);
        }
        let (slots_total, busy) = (self.slots.slots_total(), self.slots.busy_slots());
        let Some(queue) = self.queue.as_mut() else {
            return Err(Refusal::new(
                503,
                ErrorCode::PoolUnavailable,
                "the pool is not available",
                true,
            ));
        };
        let id = task.id.clone();
        let telemetry = &self.telemetry;
        let admitted = |position: u32, estimate: &ServiceTimeEstimator| {
            let predicted = estimate.predicted_start_ms(position, slots_total, busy);
            telemetry.enqueued(&task.pool, task.request.priority);
            log::admitted(&task, position, predicted);
            task.send(TaskEvent::Started(Started {
                queue_position: position,
                predicted_start_ms: predicted,
            }));
            TaskAdmitted {
                task_id: id.clone(),
                pool: task.pool.clone(),
                queue_position: position,
                predicted_start_ms: predicted,
                events_url: format!("/v2/tasks/{id}/events"),
            }
        };
        match queue.enqueue(id.clone(), task.request.priority, task.clone(), now) {
            Admission::Enqueued { position } => {
                self.waiting.insert(id.clone(), task.clone());
                if let Some(session) = task.request.session_id.as_deref() {
                    self.sessions
                        .reserve(session, u64::from(task.request.generate.max_tokens), now);
                }
                Ok(admitted(position, &self.estimate))
            }
            Admission::EnqueuedDroppingOldest {
                position,
                dropped: (dropped_id, dropped),
            } => {
                self.waiting.remove(&dropped_id);
                self.waiting.insert(id.clone(), task.clone());
                if let Some(session) = dropped.request.session_id.as_deref() {
                    self.sessions
                        .refund(session, u64::from(dropped.request.generate.max_tokens));
                }
                if let Some(session) = task.request.session_id.as_deref() {
                    self.sessions
                        .reserve(session, u64::from(task.request.generate.max_tokens), now);
                }
                let retry = self
                    .estimate
                    .retry_after_ms(queue.depth(), queue.capacity(), slots_total);
                let err = TaskError {
                    code: ErrorCode::QueueFullDropLru,
                    message: format!(
                        "dropped from pool `{}`'s full queue to make room for a newer task (policy drop-lru)",
                        self.pool
                    ),
                    retriable: true,
                    retry_after_ms: Some(retry),
                    policy_label: Some("drop-lru".into()),
                    engine: None,
                };
                self.telemetry.rejected(err.code);
                self.telemetry.backpressure(&self.pool, "drop-lru");
                log::rejected(
                    Some(&dropped.id),
                    Some(&self.pool),
                    &dropped.meta.correlation_id,
                    dropped.request.session_id.as_deref(),
                    0,
                    &err,
                );
                dropped.finish(Some(err.clone()));
                dropped.send(TaskEvent::Error(err));
                Ok(admitted(position, &self.estimate))
            }
            Admission::Rejected { .. } | Admission::AlreadyQueued { .. } => {
                let retry = self
                    .estimate
                    .retry_after_ms(queue.depth(), queue.capacity(), slots_total);
                let label = policy_label(queue.policy());
                self.telemetry.backpressure(&self.pool, label);
                let mut refusal = Refusal::new(
                    429,
                    ErrorCode::AdmissionReject,
                    format!(
                        "pool `{}`'s queue is full ({} waiting, capacity {}, policy {label}); retry in {retry} ms",
                        self.pool,
                        queue.depth(),
                        queue.capacity()
                    ),
                    true,
                );
                refusal.error.retry_after_ms = Some(retry);
                refusal.error.policy_label = Some(label.to_string());
                task.finish(Some(refusal.error.clone()));
                Err(refusal)
            }
        }
    }

    /// Gives back the part of a task's session reservation it did not generate.
    pub(super) fn release(&mut self, task: &TaskState, generated: u32) {
        if let Some(session) = task.request.session_id.as_deref() {
            let unused = task.request.generate.max_tokens.saturating_sub(generated);
            self.sessions.refund(session, u64::from(unused));
        }
    }

    /// Tokens the task's session may still generate, when the Pool sets a budget.
    pub(super) fn budget_left(&self, task: &TaskState, now: Instant) -> Option<u64> {
        let budget = self.view.as_ref()?.sessions.token_budget?;
        let session = task.request.session_id.as_deref()?;
        Some(budget.saturating_sub(self.sessions.used(session, now)))
    }

    /// ORCH-3099: a task whose `max_tokens` exceeds what its session has left is refused
    /// before enqueue.
    fn over_budget(&self, task: &TaskState, now: Instant) -> Option<Refusal> {
        let left = self.budget_left(task, now)?;
        let want = u64::from(task.request.generate.max_tokens);
        if want <= left {
            return None;
        }
        let mut refusal = Refusal::new(
            429,
            ErrorCode::AdmissionReject,
            format!(
                "session `{}` has {left} tokens left of its budget on pool `{}`, and the task asks for up to {want}; \
                 lower max_tokens, or start a new session",
                task.request.session_id.as_deref().unwrap_or_default(),
                self.pool
            ),
            false,
        );
        refusal.error.policy_label = Some("session-budget".into());
        Some(refusal)
    }
}
