//! Dispatch: tasks leave the queue (held ones first) onto free replica slots, entering
//! through the container's gate, and each placed task is spawned on the runner. It must not
//! admit or refuse tasks.

use std::time::Instant;

use tokio::sync::mpsc;

use super::{Command, PoolWorker};
use crate::dataplane::Acquire;
use crate::tasks::log;
use crate::tasks::pool_view::PoolView;
use crate::tasks::runner;
use crate::tasks::sessions::Turn;

impl PoolWorker {
    pub(super) fn dispatch(&mut self, tx: &mpsc::Sender<Command>) {
        let Some(view) = self.view.clone() else { return };
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
            let Some((placement, in_flight)) = self.reserve(task.request.session_id.as_deref(), &view) else {
                // Every free slot was on a container being retired: wait for the snapshot
                // that shows its replacement (the task keeps its place at the front).
                self.held.push_front((id, task));
                return;
            };
            let replica = placement.guard.replica_id().to_string();
            let endpoint = view
                .replicas
                .iter()
                .find(|(r, _)| r.id == replica)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            let waited_ms = now.saturating_duration_since(task.created).as_millis() as u64;
            self.telemetry
                .started(&self.pool, task.request.priority, task.request.prompt_tokens);
            self.telemetry.placed(&self.pool, &replica);
            log::placed(&task, &replica, &placement.affinity, waited_ms);
            let target = runner::Target {
                endpoint,
                client: self.engines.for_api(view.api),
                engine: format!("{} {}", view.engine, view.engine_version),
                in_flight,
            };
            self.running.insert(task.id.clone(), task.clone());
            let telemetry = self.telemetry.clone();
            tokio::spawn(runner::run(task, placement, target, telemetry, tx.clone()));
        }
    }

    /// A slot on a replica whose container's gate lets the task in. A container that refuses
    /// (closed by the controller: it is being retired) leaves the slot table, and the next
    /// best replica is tried; `None` when no replica with a free slot is left.
    fn reserve(
        &mut self,
        session: Option<&str>,
        view: &PoolView,
    ) -> Option<(crate::dataplane::Placement, Option<crate::tasks::gate::InFlight>)> {
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
            let mut rest = view.clone();
            rest.replicas
                .retain(|(r, _)| self.containers.get(&r.id).is_some_and(|c| !self.gates.is_closed(c)));
            self.place_on(&rest);
        }
    }
}
