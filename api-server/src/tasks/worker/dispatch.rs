//! Dispatch: tasks leave the queue (held ones first) onto free replica slots, entering
//! through the container's gate, and each placed task is spawned on the runner. It must not
//! admit or refuse tasks.

use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::{Command, PoolWorker};
use crate::dataplane::{Acquire, Placement};
use crate::tasks::gate::InFlight;
use crate::tasks::lifecycle::Step;
use crate::tasks::runner;
use crate::tasks::sessions::Turn;

impl PoolWorker {
    pub(super) fn dispatch(&mut self, tx: &mpsc::Sender<Command>) {
        let Some((api, engine)) = self
            .view
            .as_ref()
            .and_then(|v| Some((v.usable().ok()?.api, v.engine_label())))
        else {
            return;
        };
        let now = Instant::now();
        while self.slots.has_free_slot() {
            let next = match self.held.pop_front() {
                Some(held) => Some(held),
                None => self.queue.as_mut().and_then(|q| q.next(now)),
            };
            let Some((id, task)) = next else { return };
            self.waiting.remove(&id);
            if task.is_canceled() || task.phase().is_final() {
                self.release(&task, 0);
                continue;
            }
            if let Some(session) = task.request.session_id.as_deref()
                && self.sessions.turn(session, now) == Turn::Fresh
            {
                // New, idle past its TTL, or out of turns: placed like a new session.
                self.slots.forget_session(session);
            }
            let Some((placement, in_flight)) = self.reserve(task.request.session_id.as_deref()) else {
                // Every free slot was on a container being retired: wait for the snapshot
                // that shows its replacement (the task keeps its place at the front).
                self.held.push_front((id, task));
                return;
            };
            let Some(replica) = self
                .replicas
                .iter()
                .find(|r| r.id.as_str() == placement.guard.replica_id())
                .cloned()
            else {
                // The slot table only lists replicas of `self.replicas`.
                self.held.push_front((id, task));
                return;
            };
            let waited_ms = now.saturating_duration_since(task.created).as_millis() as u64;
            task.step(Step::Placed {
                replica: &replica.id,
                affinity: &placement.affinity,
                waited_ms,
            });
            let target = runner::Target {
                endpoint: replica.endpoint,
                client: self.engines.for_api(api),
                engine: engine.clone(),
                in_flight,
            };
            self.running.insert(task.id.clone(), task.clone());
            let span = task.spans.task();
            tokio::spawn(runner::run(task, placement, target, tx.clone()).instrument(span));
        }
    }

    /// A slot on a replica whose container's gate lets the task in. A container that refuses
    /// (closed by the controller: it is being retired) leaves the slot table, and the next
    /// best replica is tried; `None` when no replica with a free slot is left.
    fn reserve(&mut self, session: Option<&str>) -> Option<(Placement, Option<InFlight>)> {
        loop {
            let Acquire::Placed(placement) = self.slots.acquire(session) else {
                return None;
            };
            let replica = placement.guard.replica_id().to_string();
            let Some(container) = self.containers.get(&replica).cloned() else {
                return Some((placement, None));
            };
            if let Some(in_flight) = self.gates.try_enter(&container) {
                return Some((placement, Some(in_flight)));
            }
            drop(placement);
            let slots = self.view.as_ref().map_or(1, |v| v.slots_per_replica);
            let open: Vec<_> = self
                .replicas
                .iter()
                .filter(|r| r.container_id.as_deref().is_none_or(|c| !self.gates.is_closed(c)))
                .cloned()
                .collect();
            self.place_on(open, slots);
        }
    }
}
