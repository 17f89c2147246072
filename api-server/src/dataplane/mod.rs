//! The synchronous core of the data plane's admission (requirements §4): per-pool wait queues,
//! service-time estimates and replica slot accounting. No tokio, no HTTP, no clock: one task per
//! pool owns a [`PoolQueue`] and a [`ServiceTimeEstimator`], shares a [`SlotTable`] with the
//! streams that hold its slots, and passes `now` in.
//!
//! How the pieces meet, per pool:
//! - admission: [`PoolQueue::enqueue`]; on [`Admission::Rejected`] answer 429 with
//!   [`ServiceTimeEstimator::retry_after_ms`] of the queue's depth and capacity and the table's
//!   [`SlotTable::slots_total`];
//! - dispatch: while [`SlotTable::has_free_slot`], take [`PoolQueue::next`] and
//!   [`SlotTable::acquire`] for its session; the stream owns the [`SlotGuard`];
//! - completion: record the slot's holding time with [`ServiceTimeEstimator::record_ms`] and
//!   drop the guard.

pub mod estimate;
pub mod queue;
pub mod slots;

pub use estimate::ServiceTimeEstimator;
pub use queue::{Admission, Fairness, PoolQueue};
pub use slots::{Acquire, Affinity, Placement, Replica, SlotGuard, SlotTable};
