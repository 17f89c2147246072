//! The retirement gate between the controller and the data plane. When a rolling reload has
//! brought a replica's new container to Ready, the old container is *retired*: it must stop
//! getting new tasks, finish the ones it runs, and only then be removed. The controller owns
//! the decision; the data plane owns the in-flight count. This narrow trait joins them without
//! a race: [`ReplicaGate::close_if_idle`] closes the replica to new tasks and reports, in the
//! same atomic step, whether any task is still in flight on it. The data plane reserves a slot
//! on a replica only through the same gate, so a task either got in before the close (and the
//! controller waits for it) or is refused and placed on another replica.
//!
//! This module must not know about HTTP or tasks; llama-orchd adapts the data plane to it.

/// Stops new tasks on a replica's container and tells whether it is idle.
pub trait ReplicaGate: Send + Sync {
    /// Closes `container_id` to new tasks (idempotent) and returns true only when no task is
    /// in flight on it. A closed container stays closed until [`reopen`](Self::reopen).
    fn close_if_idle(&self, container_id: &str) -> bool;

    /// Lets tasks onto `container_id` again (a retirement that was called off).
    fn reopen(&self, container_id: &str);
}

/// The gate when there is no data plane (unit tests, a controller on its own): every replica
/// is always idle, so a retired container is removed at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysIdle;

impl ReplicaGate for AlwaysIdle {
    fn close_if_idle(&self, _container_id: &str) -> bool {
        true
    }

    fn reopen(&self, _container_id: &str) {}
}
