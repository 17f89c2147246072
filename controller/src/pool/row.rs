//! Filling in the replica rows a pass publishes from the container behind them. Rows only:
//! nothing here touches the runtime.

use std::time::{Duration, Instant};

use llorch_manifests::Endpoint;
use llorch_manifests::status::{ReplicaPhase, ReplicaStatus};

use super::SlotMemory;
use crate::runtime::ContainerInfo;

/// Puts a container's id, name and endpoint on its row.
pub(super) fn fill(row: &mut ReplicaStatus, c: &ContainerInfo) {
    row.container_id = Some(c.id.clone());
    row.container_name = Some(c.name.clone());
    row.endpoint = c.host_port.map(Endpoint::loopback);
}

/// Marks a row Ready and lets the slot forget old failures once it has been stable.
pub(super) fn ready(row: &mut ReplicaStatus, slot: &mut SlotMemory, since: Option<Instant>, now: Instant) {
    row.phase = ReplicaPhase::Ready;
    if let Some(since) = since {
        slot.backoff.observe_ready(since, now);
        row.ready_since = Some(rfc3339_ago(now.duration_since(since)));
    }
    row.restarts = slot.restarts;
}

fn rfc3339_ago(ago: Duration) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).unwrap_or_default();
    t.round(jiff::Unit::Millisecond)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
