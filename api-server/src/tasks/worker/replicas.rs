//! Following the snapshot: the worker's copy of its Pool's serving view, the replicas tasks
//! may be placed on (not suspect, not being retired), the queue spec, and which container
//! backs each replica id. It must not place or admit tasks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use llorch_manifests::ServingReplica;

use super::PoolWorker;
use crate::dataplane::{PoolQueue, Replica};

impl PoolWorker {
    /// Re-reads the Pool from the snapshot; false when it is gone.
    pub(super) fn refresh(&mut self) -> bool {
        let snapshot = self.snapshot.borrow_and_update().clone();
        let Some(view) = snapshot.serving(&self.pool) else {
            return false;
        };
        self.suspect.retain(|e| view.replicas.iter().any(|r| &r.endpoint == e));
        let gates = &self.gates;
        let suspect = &self.suspect;
        let placeable: Vec<ServingReplica> = view
            .replicas
            .iter()
            .filter(|r| !suspect.contains(&r.endpoint))
            .filter(|r| r.container_id.as_deref().is_none_or(|c| !gates.is_closed(c)))
            .cloned()
            .collect();
        self.place_on(placeable, view.slots_per_replica);
        if self.slots.slots_total() > 0 {
            self.hint.woke();
        }
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
        self.view = Some(view.clone());
        self.end_failed_wake();
        true
    }

    /// Makes the slot table list `replicas`. A replica id whose container changed (a
    /// rollout's new revision took over) is first forgotten, so its slots and sessions start
    /// afresh on the new container.
    pub(super) fn place_on(&mut self, replicas: Vec<ServingReplica>, slots: u32) {
        let slot_row = |r: &ServingReplica| Replica {
            id: r.id.as_str().to_string(),
            slots,
            free_vram_bytes: r.free_vram_bytes,
        };
        let changed: HashSet<&str> = replicas
            .iter()
            .filter(|r| {
                self.containers
                    .get(r.id.as_str())
                    .is_some_and(|c| r.container_id.as_ref() != Some(c))
            })
            .map(|r| r.id.as_str())
            .collect();
        if !changed.is_empty() {
            self.slots.replace(
                replicas
                    .iter()
                    .filter(|r| !changed.contains(r.id.as_str()))
                    .map(slot_row),
            );
        }
        self.slots.replace(replicas.iter().map(slot_row));
        self.containers = replicas
            .iter()
            .filter_map(|r| Some((r.id.as_str().to_string(), r.container_id.clone()?)))
            .collect();
        self.replicas = replicas;
    }
}
