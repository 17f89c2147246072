//! Following the snapshot: the worker's view of its Pool, the replicas tasks may be placed
//! on (not suspect, not being retired), the queue spec, and which container backs each
//! replica id. It must not place or admit tasks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::PoolWorker;
use crate::dataplane::PoolQueue;
use crate::tasks::pool_view::PoolView;

impl PoolWorker {
    /// Re-reads the Pool from the snapshot; false when it is gone.
    pub(super) fn refresh(&mut self) -> bool {
        let snapshot = self.snapshot.borrow_and_update().clone();
        match PoolView::read(&snapshot, &self.pool) {
            Ok(mut view) => {
                self.suspect
                    .retain(|e| view.replicas.iter().any(|(_, endpoint)| endpoint == e));
                view.replicas.retain(|(_, endpoint)| !self.suspect.contains(endpoint));
                let gates = &self.gates;
                let containers = &view.containers;
                view.replicas
                    .retain(|(r, _)| containers.get(&r.id).is_none_or(|c| !gates.is_closed(c)));
                self.place_on(&view);
                if self
                    .queue
                    .as_ref()
                    .is_none_or(|q| q.capacity() != view.queue.capacity || q.policy() != view.queue.full_policy)
                {
                    // A new queue spec takes effect for new tasks; waiting ones move over in order.
                    let mut fresh = PoolQueue::new(&view.queue);
                    if let Some(mut old) = self.queue.take() {
                        for (id, task) in old.drain(Instant::now()) {
                            let _ = fresh.enqueue(id, task.request.priority, task, Instant::now());
                        }
                    }
                    self.queue = Some(fresh);
                }
                self.sessions
                    .set_limits(Duration::from_secs(view.sessions.ttl_seconds), view.sessions.max_turns);
                self.view = Some(view);
                true
            }
            Err(_) => false,
        }
    }

    /// Makes the slot table list `view`'s replicas. A replica id whose container changed (a
    /// rollout's new revision took over) is first forgotten, so its slots and sessions start
    /// afresh on the new container.
    pub(super) fn place_on(&mut self, view: &PoolView) {
        let changed: HashSet<&str> = view
            .replicas
            .iter()
            .map(|(r, _)| r.id.as_str())
            .filter(|id| {
                self.containers
                    .get(*id)
                    .is_some_and(|c| view.containers.get(*id) != Some(c))
            })
            .collect();
        if !changed.is_empty() {
            self.slots.replace(
                view.replicas
                    .iter()
                    .filter(|(r, _)| !changed.contains(r.id.as_str()))
                    .map(|(r, _)| r.clone()),
            );
        }
        self.slots.replace(view.replicas.iter().map(|(r, _)| r.clone()));
        self.containers = view
            .replicas
            .iter()
            .filter_map(|(r, _)| Some((r.id.clone(), view.containers.get(&r.id)?.clone())))
            .collect();
    }
}
