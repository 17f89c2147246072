//! Taking a replica's container away, and saying so: [`remove`] (idempotent in the runtime,
//! an event either way) and [`fail`] (keep the engine's last words, remove it, count a restart
//! and back off). Also the small texts events share: short ids, "container" or "process",
//! when the next attempt is. Deciding *whether* a container goes is the caller's job.

use std::sync::Arc;
use std::time::Instant;

use llorch_manifests::status::{CircuitState, EventType, LastError, ObjectStatus};
use llorch_manifests::{ObjectRef, Reason, ReplicaId, RestartSpec};

use super::{LOG_TAIL_LINES, SlotMemory};
use crate::backoff::SlotBackoff;
use crate::runtime::process::ProcessRuntime;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec, Launch};
use crate::state_dir::{EventLog, now_rfc3339};

/// A failed container: keep its last words, remove it, count a restart and back off.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fail<R: ContainerRuntime>(
    runtime: &Arc<R>,
    events: &EventLog,
    obj: &ObjectRef,
    index: u32,
    c: &ContainerInfo,
    message: &str,
    slot: &mut SlotMemory,
    status: &mut ObjectStatus,
    policy: &RestartSpec,
    now: Instant,
) {
    let replica_id = ReplicaId::new(&obj.name, index);
    let log_tail = runtime.logs_tail(&c.id, LOG_TAIL_LINES).await.unwrap_or_default();
    remove(runtime, events, obj, index, c, Reason::EngineFailed, message).await;
    slot.backoff.record_failure(policy, now);
    slot.restarts += 1;
    status.restarts += 1;
    let last = log_tail.last().cloned().unwrap_or_default();
    events.emit(
        Some(obj),
        Some(&replica_id),
        EventType::Warning,
        Reason::EngineCrashed,
        format!(
            "{message}; restart #{} {}; last log line: {last}",
            status.restarts,
            next_attempt_text(&slot.backoff, now)
        ),
    );
    status.last_error = Some(LastError {
        message: format!("replica {replica_id}: {message}"),
        log_tail,
        at: now_rfc3339(),
    });
}

/// Removes `c` and records why (`reason`, `why`); a failed removal is a Warning event.
pub(super) async fn remove<R: ContainerRuntime>(
    runtime: &Arc<R>,
    events: &EventLog,
    obj: &ObjectRef,
    index: u32,
    c: &ContainerInfo,
    reason: Reason,
    why: &str,
) {
    let replica = ReplicaId::new(&obj.name, index);
    let kind = noun(c);
    match runtime.remove(&c.id).await {
        Ok(()) => events.emit(
            Some(obj),
            Some(&replica),
            EventType::Normal,
            reason,
            format!("removed {kind} {} ({}): {why}", c.name, short(&c.id)),
        ),
        Err(e) => events.emit(
            Some(obj),
            Some(&replica),
            EventType::Warning,
            Reason::RemoveFailed,
            format!("cannot remove {kind} {}: {e}", c.name),
        ),
    }
}

/// When the slot tries again, for event messages.
pub(super) fn next_attempt_text(b: &SlotBackoff, now: Instant) -> String {
    match (b.circuit, b.remaining(now)) {
        (CircuitState::Open, Some(d)) => format!(
            "circuit open after {} failures, next trial in {} ms",
            b.consecutive_failures,
            d.as_millis()
        ),
        (_, Some(d)) => format!(
            "next attempt in {} ms (failure {})",
            d.as_millis(),
            b.consecutive_failures
        ),
        _ => "retrying now".to_string(),
    }
}

/// 12 characters of a container id, as `docker ps` shows.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// "process" for a replica the process runtime runs (its ids route by prefix), else "container".
pub(crate) fn noun(c: &ContainerInfo) -> &'static str {
    if ProcessRuntime::owns(&c.id) {
        "process"
    } else {
        "container"
    }
}

/// "process" for a replica that will be spawned from an executable, else "container".
pub(super) fn spec_noun(spec: &ContainerSpec) -> &'static str {
    match spec.launch {
        Launch::Executable(_) => "process",
        Launch::Image => "container",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::runtime::ContainerState;
    use crate::runtime::process::ID_PREFIX;

    #[test]
    fn process_replicas_are_called_processes_and_the_rest_containers() {
        let mut c = ContainerInfo {
            id: format!("{ID_PREFIX}0123456789abcdef"),
            name: "llorch-test-chat-0".into(),
            labels: BTreeMap::new(),
            state: ContainerState::Running,
            host_port: Some(1),
        };
        assert_eq!(noun(&c), "process");
        c.id = "0123456789abcdef".into();
        assert_eq!(noun(&c), "container");
    }
}
