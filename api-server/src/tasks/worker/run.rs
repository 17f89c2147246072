//! The worker's loop: it takes commands, follows the snapshot, sends `metrics` frames to
//! waiting tasks every second and enforces a drain's deadline, then dispatches after each
//! event. It closes the queue when the Pool disappears; it must not decide admission or
//! placement itself.

use std::time::Instant;

use llorch_manifests::task::{ErrorCode, Metrics};
use tokio::sync::mpsc;

use super::drain::Drain;
use super::{Command, METRICS_EVERY, PoolWorker};
use crate::error::ApiError;
use crate::tasks::lifecycle::Step;
use crate::tasks::task::TaskEvent;

impl PoolWorker {
    /// Runs until the Pool disappears.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, tx: mpsc::Sender<Command>) {
        if !self.refresh() {
            return self.close("the pool is no longer declared");
        }
        let mut tick = tokio::time::interval(METRICS_EVERY);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                changed = self.snapshot.changed() => {
                    if changed.is_err() || !self.refresh() {
                        return self.close("the pool is no longer declared");
                    }
                }
                _ = tick.tick() => {
                    for expired in self.sessions.expire(Instant::now()) {
                        self.slots.forget_session(&expired);
                    }
                    self.send_metrics()
                }
                _ = until(self.drain.filter(|d| !d.enforced).map(|d| d.deadline)) => self.enforce_drain(),
            }
            self.dispatch(&tx);
            self.record_depth();
        }
    }

    /// The queue-depth gauge, and the hint request handlers read.
    fn record_depth(&self) {
        if let Some(q) = self.queue.as_ref() {
            let (interactive, batch) = q.depth_by_priority();
            self.telemetry.queue_depth(&self.pool, interactive, batch);
            let full = self.drain.is_none()
                && q.policy() == llorch_manifests::FullQueuePolicy::Reject
                && q.depth() >= q.capacity();
            self.hint.publish(full, q.depth(), q.capacity(), self.retry_after_ms());
        }
        self.hint
            .publish_busy(self.queue.as_ref().map_or(0, |q| q.depth()) + (self.held.len() + self.running.len()) as u32);
    }

    fn close(mut self, why: &str) {
        let now = Instant::now();
        if let Some(q) = self.queue.as_mut() {
            for (_, task) in q.drain(now) {
                let err = ApiError::new(
                    ErrorCode::PoolUnavailable,
                    format!("pool `{}` went away while the task waited: {why}", self.pool),
                );
                task.step(Step::Failed(err));
            }
        }
        self.telemetry.forget_queue(&self.pool);
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Enqueue {
                request,
                meta,
                span,
                reply,
            } => match self.admit(request, meta, span) {
                Ok((admitted, task)) => {
                    // The 202 first; the admission is recorded before the loop dispatches.
                    let (position, predicted_start_ms) = (admitted.queue_position, admitted.predicted_start_ms);
                    let _ = reply.send(Ok((admitted, task.clone())));
                    task.step(Step::Admitted {
                        position,
                        predicted_start_ms,
                    });
                }
                Err(refusal) => {
                    let _ = reply.send(Err(refusal));
                }
            },
            Command::Cancel { id } => {
                if let Some(task) = self.queue.as_mut().and_then(|q| q.cancel(id.as_str())) {
                    self.release(&task, 0);
                }
                self.waiting.remove(&id);
            }
            Command::Drain { deadline, reply } => {
                self.drain = Some(Drain {
                    deadline: Instant::now() + deadline,
                    enforced: false,
                });
                if deadline.is_zero() {
                    self.enforce_drain();
                }
                let _ = reply.send(self.load());
            }
            Command::Resume { reply } => {
                self.drain = None;
                let _ = reply.send(self.load());
            }
            Command::Load { reply } => {
                let _ = reply.send(self.load());
            }
            Command::Finished {
                id,
                service,
                failed_endpoint,
                session,
            } => {
                self.running.remove(&id);
                if let Some((id, generated, reserved)) = session {
                    self.sessions.refund(&id, u64::from(reserved.saturating_sub(generated)));
                }
                match failed_endpoint {
                    Some(endpoint) => {
                        self.suspect.insert(endpoint);
                        self.refresh();
                    }
                    None => self.estimate.record_ms(service.as_millis() as u64),
                }
            }
        }
    }

    fn send_metrics(&mut self) {
        let wake_left = self.wake_left_ms(Instant::now());
        let Some(queue) = self.queue.as_ref() else { return };
        for (id, task) in &self.waiting {
            let Some(position) = queue.position(id.as_str()) else {
                continue;
            };
            let predicted = self.predict(position, wake_left);
            task.send(TaskEvent::Metrics(Metrics {
                queue_depth: queue.depth(),
                queue_position: Some(position),
                predicted_start_ms: Some(predicted.start_ms),
                on_time_probability: predicted.on_time,
                kv_warmth: true,
                budget_tokens_remaining: self.budget_left(task.request.session_id.as_deref(), Instant::now()),
            }));
        }
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
