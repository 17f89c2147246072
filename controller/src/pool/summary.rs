//! The Pool's conditions and counts from what one pass decided: Ready and Progressing from the
//! replica rows, Degraded from crash loops, a rolled-back revision, an invalid manifest or
//! replicas placement refused; and those of a Pool that waits for its Model's download. It
//! reads what was decided and never acts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use llorch_manifests::status::{
    CircuitState, ConditionType, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus, RolloutPhase,
};
use llorch_manifests::{Pool, Reason};

use super::SlotMemory;
use crate::conditions;

/// Sets the Pool's conditions from its replicas and slots.
pub(super) fn summarize(
    status: &mut ObjectStatus,
    pool: &Pool,
    replicas: &[ReplicaStatus],
    slots: &BTreeMap<u32, SlotMemory>,
    now: Instant,
    rolled_back: bool,
) {
    let desired = pool.spec.replica_count();
    let ready = replicas.iter().filter(|r| r.phase == ReplicaPhase::Ready).count() as u32;
    status.replicas = Some(ReplicaCounts { desired, ready });
    let failing: Vec<&SlotMemory> = slots.values().filter(|s| s.backoff.consecutive_failures > 0).collect();
    status.circuit = slots.values().map(|s| s.backoff.circuit).max_by_key(|c| match c {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    });
    status.next_restart_in_ms = slots
        .values()
        .filter_map(|s| s.backoff.remaining(now))
        .min()
        .map(|d| d.as_millis() as u64);
    let counts = format!("{ready}/{desired} replicas ready");
    if ready >= desired {
        conditions::set(
            status,
            ConditionType::Ready,
            true,
            Reason::ReplicasReady,
            counts.clone(),
        );
        conditions::set(
            status,
            ConditionType::Progressing,
            false,
            Reason::ReplicasReady,
            counts.clone(),
        );
    } else {
        conditions::set(
            status,
            ConditionType::Ready,
            false,
            Reason::ReplicasNotReady,
            counts.clone(),
        );
        conditions::set(
            status,
            ConditionType::Progressing,
            failing.is_empty(),
            Reason::ReplicasStarting,
            counts.clone(),
        );
    }
    let degraded_failures = failing.iter().any(|_| ready < desired);
    if degraded_failures {
        crash_loop(status, &counts);
    } else if rolled_back {
        let message = status.rollout.as_ref().map(|r| r.message.clone()).unwrap_or_default();
        conditions::set(status, ConditionType::Degraded, true, Reason::RolledBack, message);
    } else if !status.manifest_errors.is_empty() {
        let first = status.manifest_errors[0].to_string();
        conditions::set(
            status,
            ConditionType::Degraded,
            true,
            Reason::ManifestInvalid,
            format!("running the last valid manifest; {first}"),
        );
    } else {
        conditions::set(status, ConditionType::Degraded, false, Reason::AsExpected, counts);
    }
    if let Some(r) = status
        .rollout
        .as_ref()
        .filter(|r| matches!(r.phase, RolloutPhase::Progressing | RolloutPhase::Draining))
    {
        let message = r.message.clone();
        conditions::set(status, ConditionType::Progressing, true, Reason::RollingOut, message);
    }
}

/// Degraded by replicas that keep failing: the circuit's state, the last error, when the next
/// attempt is and the engine's last log line.
fn crash_loop(status: &mut ObjectStatus, counts: &str) {
    let circuit_open = status.circuit == Some(CircuitState::Open);
    let reason = if circuit_open {
        Reason::CircuitOpen
    } else {
        Reason::EngineCrashLoop
    };
    let last = status
        .last_error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    let next = status
        .next_restart_in_ms
        .map(|ms| format!("; next attempt in {ms} ms"))
        .unwrap_or_default();
    let tail = status
        .last_error
        .as_ref()
        .and_then(|e| e.log_tail.last().cloned())
        .map(|l| format!("; engine log: {l}"))
        .unwrap_or_default();
    conditions::set(
        status,
        ConditionType::Degraded,
        true,
        reason,
        format!("{counts}; {last}{next}{tail}"),
    );
}

/// Replicas that placement refused (`refused`, one reason each) degrade the Pool.
pub(super) fn refused(status: &mut ObjectStatus, replicas: &[ReplicaStatus], refused: &[String]) {
    if refused.is_empty() {
        return;
    }
    let message = refused.join("; ");
    // Nothing is on its way for a refused replica: not "starting" while the rest are Ready.
    if replicas.iter().all(|r| r.phase == ReplicaPhase::Ready) {
        conditions::set(
            status,
            ConditionType::Progressing,
            false,
            Reason::InsufficientVram,
            message.clone(),
        );
    }
    conditions::set(status, ConditionType::Degraded, true, Reason::InsufficientVram, message);
}

/// Replicas out of service because they compute on the CPU (`messages`, one each, with the
/// fix) degrade the Pool; nothing is on its way for them either.
pub(super) fn not_on_gpu(status: &mut ObjectStatus, replicas: &[ReplicaStatus], messages: &[String]) {
    if messages.is_empty() {
        return;
    }
    let message = messages.join("; ");
    if replicas
        .iter()
        .all(|r| matches!(r.phase, ReplicaPhase::Ready | ReplicaPhase::NotOnGpu))
    {
        conditions::set(
            status,
            ConditionType::Progressing,
            false,
            Reason::NotOnGpu,
            message.clone(),
        );
    }
    conditions::set(status, ConditionType::Degraded, true, Reason::NotOnGpu, message);
}

/// The conditions of a Pool left alone while its Model is fetched or verified (`why` says how
/// far): Progressing, not Degraded, and Ready as long as the replicas it already has (`untouched`,
/// left exactly as they are) all serve.
pub(crate) fn waiting_for_model(status: &mut ObjectStatus, pool: &Pool, untouched: &[ReplicaStatus], why: &str) {
    let desired = pool.spec.replica_count();
    let serving: BTreeSet<u32> = untouched
        .iter()
        .filter(|r| r.index < desired && r.phase == ReplicaPhase::Ready)
        .map(|r| r.index)
        .collect();
    let counts = format!("{}/{desired} replicas ready", serving.len());
    let reason = Reason::WaitingForModel;
    if serving.len() as u32 >= desired {
        conditions::set(status, ConditionType::Ready, true, Reason::ReplicasReady, counts);
    } else {
        conditions::set(status, ConditionType::Ready, false, reason, format!("{counts}; {why}"));
    }
    conditions::set(status, ConditionType::Progressing, true, reason, why);
    conditions::set(status, ConditionType::Degraded, false, reason, why);
}
