//! Admission: a task is refused while the pool drains, when it exceeds its session's token
//! budget, or when the queue is full (per the Pool's full policy) — before its task state is
//! even built; otherwise it is created, enqueued and its session reserves its `max_tokens`
//! (the worker records the admission once it has answered). It must not place tasks on
//! replicas.

use std::sync::Arc;
use std::time::Instant;

use llorch_manifests::task::{ErrorCode, Started, TaskAdmitted};

use super::PoolWorker;
use crate::dataplane::Admission;
use crate::error::ApiError;
use crate::tasks::lifecycle::Step;
use crate::tasks::policy_label;
use crate::tasks::task::{TaskEvent, TaskMeta, TaskState};
use crate::tasks::validate::ValidTask;

impl PoolWorker {
    pub(super) fn admit(
        &mut self,
        request: ValidTask,
        meta: TaskMeta,
        span: tracing::Span,
    ) -> Result<(TaskAdmitted, Arc<TaskState>), ApiError> {
        let now = Instant::now();
        if let Some(drain) = self.drain {
            let left = drain.deadline.saturating_duration_since(now).as_millis() as u64;
            return Err(ApiError::new(
                ErrorCode::PoolDraining,
                format!(
                    "pool `{}` is draining and admits no new task; retry once the drain is lifted \
                     (`orchctl drain pool/{} --resume`) or on another pool",
                    self.pool, self.pool
                ),
            )
            .retry_after_ms(left.max(1_000)));
        }
        self.over_budget(&request, now)?;
        let Some(queue) = self.queue.as_ref() else {
            return Err(ApiError::new(ErrorCode::PoolUnavailable, "the pool is not available").retriable());
        };
        if !queue.has_room_for(request.priority) {
            return Err(self.queue_full());
        }
        let task = TaskState::new(self.pool.clone(), request, meta, span, self.telemetry.clone());
        let wake_left = self.wake_left_ms(now);
        let Some(queue) = self.queue.as_mut() else {
            return Err(ApiError::new(ErrorCode::PoolUnavailable, "the pool is not available").retriable());
        };
        let position = match queue.enqueue(task.id.clone(), task.request.priority, task.clone(), now) {
            Admission::Enqueued { position } => position,
            Admission::EnqueuedDroppingOldest {
                position,
                dropped: (dropped_id, dropped),
            } => {
                self.drop_oldest(&dropped_id, &dropped);
                position
            }
            Admission::Rejected { .. } | Admission::AlreadyQueued { .. } => return Err(self.queue_full()),
        };
        self.waiting.insert(task.id.clone(), task.clone());
        if let Some(session) = task.request.session_id.as_deref() {
            self.sessions
                .reserve(session, u64::from(task.request.generate.max_tokens), now);
        }
        let predicted = self.predict(position, wake_left).start_ms;
        // The stream's first frame, queued before the task can be dispatched.
        task.send(TaskEvent::Started(Started {
            queue_position: position,
            predicted_start_ms: predicted,
        }));
        let admitted = TaskAdmitted {
            task_id: task.id.clone(),
            pool: task.pool.clone(),
            queue_position: position,
            predicted_start_ms: predicted,
            events_url: format!("/v2/tasks/{}/events", task.id),
        };
        Ok((admitted, task))
    }

    /// The `drop-lru` eviction of `dropped` to make room: its session gets its tokens back and
    /// its stream ends with `QUEUE_FULL_DROP_LRU`.
    fn drop_oldest(&mut self, dropped_id: &str, dropped: &TaskState) {
        self.waiting.remove(dropped_id);
        if let Some(session) = dropped.request.session_id.as_deref() {
            self.sessions
                .refund(session, u64::from(dropped.request.generate.max_tokens));
        }
        let retry = self.retry_after_ms();
        dropped.step(Step::Dropped(
            ApiError::new(
                ErrorCode::QueueFullDropLru,
                format!(
                    "dropped from pool `{}`'s full queue to make room for a newer task (policy drop-lru)",
                    self.pool
                ),
            )
            .retry_after_ms(retry)
            .policy("drop-lru"),
        ));
    }

    /// The 429 of a full queue, with the retry advice of the pool's service-time estimate.
    fn queue_full(&self) -> ApiError {
        let (depth, capacity, policy) = self
            .queue
            .as_ref()
            .map_or((0, 0, llorch_manifests::FullQueuePolicy::Reject), |q| {
                (q.depth(), q.capacity(), q.policy())
            });
        let label = policy_label(policy);
        self.telemetry.backpressure(&self.pool, label);
        queue_full(&self.pool, depth, capacity, label, self.retry_after_ms())
    }

    /// When a refused task should retry, from the pool's measured service times.
    pub(super) fn retry_after_ms(&self) -> u64 {
        let (depth, capacity) = self.queue.as_ref().map_or((0, 0), |q| (q.depth(), q.capacity()));
        self.estimate.retry_after_ms(depth, capacity, self.slots.slots_total())
    }

    /// Gives back the part of a task's session reservation it did not generate.
    pub(super) fn release(&mut self, task: &TaskState, generated: u32) {
        if let Some(session) = task.request.session_id.as_deref() {
            let unused = task.request.generate.max_tokens.saturating_sub(generated);
            self.sessions.refund(session, u64::from(unused));
        }
    }

    /// Tokens `session` may still generate, when the Pool sets a budget.
    pub(super) fn budget_left(&self, session: Option<&str>, now: Instant) -> Option<u64> {
        let budget = self.view.as_ref()?.sessions.token_budget?;
        let session = session?;
        Some(budget.saturating_sub(self.sessions.used(session, now)))
    }

    /// ORCH-3099: a task whose `max_tokens` exceeds what its session has left is refused
    /// before enqueue.
    fn over_budget(&self, request: &ValidTask, now: Instant) -> Result<(), ApiError> {
        let Some(left) = self.budget_left(request.session_id.as_deref(), now) else {
            return Ok(());
        };
        let want = u64::from(request.generate.max_tokens);
        if want <= left {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::AdmissionReject,
            format!(
                "session `{}` has {left} tokens left of its budget on pool `{}`, and the task asks for up to {want}; \
                 lower max_tokens, or start a new session",
                request.session_id.as_deref().unwrap_or_default(),
                self.pool
            ),
        )
        .policy("session-budget"))
    }
}

/// The refusal of a full queue (`ADMISSION_REJECT`, 429), wherever it is decided.
pub(crate) fn queue_full(pool: &str, depth: u32, capacity: u32, label: &str, retry: u64) -> ApiError {
    ApiError::new(
        ErrorCode::AdmissionReject,
        format!(
            "pool `{pool}`'s queue is full ({depth} waiting, capacity {capacity}, policy {label}); retry in {retry} ms"
        ),
    )
    .retry_after_ms(retry)
    .policy(label)
}
