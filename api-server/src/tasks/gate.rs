//! The data plane's side of the retirement gate (`llorch_controller::retire::ReplicaGate`,
//! adapted in llama-orchd): per engine container, how many tasks are in flight and whether it
//! is closed to new ones. Reserving a task on a container ([`ReplicaGates::try_enter`]) and
//! closing it ([`ReplicaGates::close_if_idle`]) take the same lock, so a task either entered
//! before the close (and the controller waits for it to finish) or is refused (and the worker
//! places it on another replica). The in-flight count is held by an [`InFlight`] guard that
//! gives it back in `Drop`, however the task ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Gate {
    in_flight: u32,
    closed: bool,
}

/// Gates of every engine container, by container id. Cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct ReplicaGates {
    inner: Arc<Mutex<HashMap<String, Gate>>>,
}

/// One task in flight on one container; released when dropped.
#[derive(Debug)]
pub struct InFlight {
    gates: ReplicaGates,
    container_id: String,
}

impl ReplicaGates {
    /// No container is closed, none has tasks.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Gate>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a task in flight on `container_id`, unless the container is closed.
    pub fn try_enter(&self, container_id: &str) -> Option<InFlight> {
        let mut gates = self.lock();
        let gate = gates.entry(container_id.to_string()).or_default();
        if gate.closed {
            return None;
        }
        gate.in_flight = gate.in_flight.saturating_add(1);
        Some(InFlight {
            gates: self.clone(),
            container_id: container_id.to_string(),
        })
    }

    /// Closes `container_id` to new tasks; true when none is in flight on it.
    pub fn close_if_idle(&self, container_id: &str) -> bool {
        let mut gates = self.lock();
        let gate = gates.entry(container_id.to_string()).or_default();
        gate.closed = true;
        gate.in_flight == 0
    }

    /// Opens `container_id` to new tasks again.
    pub fn reopen(&self, container_id: &str) {
        let mut gates = self.lock();
        if let Some(gate) = gates.get_mut(container_id) {
            gate.closed = false;
            if gate.in_flight == 0 {
                gates.remove(container_id);
            }
        }
    }

    /// True when `container_id` takes no new task.
    pub fn is_closed(&self, container_id: &str) -> bool {
        self.lock().get(container_id).is_some_and(|g| g.closed)
    }

    /// Tasks in flight on `container_id`.
    pub fn in_flight(&self, container_id: &str) -> u32 {
        self.lock().get(container_id).map_or(0, |g| g.in_flight)
    }

    /// Forgets closed, idle containers that `live` no longer lists (they were removed).
    pub fn forget_gone(&self, live: &dyn Fn(&str) -> bool) {
        self.lock().retain(|id, g| g.in_flight > 0 || live(id));
    }
}

impl InFlight {
    /// The container the task runs on.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut gates = self.gates.lock();
        if let Some(gate) = gates.get_mut(&self.container_id) {
            gate.in_flight = gate.in_flight.saturating_sub(1);
            if gate.in_flight == 0 && !gate.closed {
                gates.remove(&self.container_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_container_takes_no_task_and_is_idle_only_when_its_tasks_are_done() {
        let gates = ReplicaGates::new();
        let a = gates.try_enter("c1");
        let b = gates.try_enter("c1");
        assert!(a.is_some() && b.is_some());
        assert!(!gates.close_if_idle("c1"), "two tasks in flight");
        assert!(gates.try_enter("c1").is_none(), "closed to new tasks");
        drop(a);
        assert!(!gates.close_if_idle("c1"));
        drop(b);
        assert!(gates.close_if_idle("c1"), "idle once both finished");
        gates.reopen("c1");
        assert!(gates.try_enter("c1").is_some(), "reopened");
    }

    #[test]
    fn enter_and_close_racing_from_many_threads_never_lose_a_task() {
        // Invariant: whenever close_if_idle says idle, no task holds the container, and no
        // task enters after it.
        for _ in 0..50 {
            let gates = ReplicaGates::new();
            let barrier = Arc::new(std::sync::Barrier::new(9));
            let entered = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let mut handles = Vec::new();
            for _ in 0..8 {
                let (gates, barrier, entered) = (gates.clone(), barrier.clone(), entered.clone());
                handles.push(std::thread::spawn(move || {
                    barrier.wait();
                    if let Some(guard) = gates.try_enter("c") {
                        entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::yield_now();
                        drop(guard);
                    }
                }));
            }
            barrier.wait();
            let idle_at_close = gates.close_if_idle("c");
            let entered_at_close = entered.load(std::sync::atomic::Ordering::SeqCst);
            for h in handles {
                h.join().unwrap_or_default();
            }
            if idle_at_close {
                assert_eq!(gates.in_flight("c"), 0);
            }
            assert!(gates.try_enter("c").is_none(), "nothing enters after the close");
            assert!(entered.load(std::sync::atomic::Ordering::SeqCst) >= entered_at_close);
            assert!(gates.close_if_idle("c"), "every entered task released its count");
        }
    }
}
