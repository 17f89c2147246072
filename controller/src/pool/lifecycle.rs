//! The plain replica lifecycle of a slot with no old container: a Ready container serves, a
//! starting one is waited for, a failed one is failed, and a missing one is created when the
//! slot's backoff allows. [`create_all`] then starts every container the pass asked for (these
//! and the new revisions of a rollout) at once, and records what each start gave.
//! Slots with an old container (a rollout) are not its business: `surge` acts on those.

use std::time::Duration;

use llorch_manifests::identity::ReplicaLabels;
use llorch_manifests::status::{CircuitState, EventType, LastError, ObjectStatus, ReplicaPhase};
use llorch_manifests::{Endpoint, Reason, ReplicaId};

use super::cleanup::{fail, next_attempt_text, short, spec_noun};
use super::health::{Health, waiting_phase};
use super::observe::Observed;
use super::row::{fill, ready};
use super::{BUSY_REQUEUE, Create, Pass, PoolContext, PoolInputs};
use crate::runtime::ContainerRuntime;
use crate::state_dir::now_rfc3339;

/// Acts on a slot without an old container.
pub(super) async fn act<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &mut Pass,
    o: Observed,
) {
    let Observed {
        index,
        mut row,
        spec,
        new,
        ..
    } = o;
    let policy = &inputs.pool.spec.restart;
    let now = pass.now;
    let slot = ctx.slots.entry(index).or_default();
    if let Some((c, h)) = new {
        fill(&mut row, &c);
        match h {
            Health::Ready(since) => {
                // Serving again if a scale-down had closed it and the Pool grew back first.
                ctx.gate.reopen(&c.id);
                ready(&mut row, slot, since, now);
                pass.replicas.push(row);
                return;
            }
            Health::NotOnGpu(message) => {
                // Out of service, left running: its logs say why it computes on the CPU.
                row.phase = ReplicaPhase::NotOnGpu;
                row.restarts = slot.restarts;
                pass.not_on_gpu.push(message);
                pass.replicas.push(row);
                return;
            }
            Health::Waiting(_) | Health::Unknown => {
                row.phase = waiting_phase(&h);
                pass.requeue = pass.requeue.min(BUSY_REQUEUE);
                pass.replicas.push(row);
                return;
            }
            Health::Failed(message) => {
                fail(
                    ctx.runtime,
                    ctx.events,
                    &pass.obj,
                    index,
                    &c,
                    &message,
                    slot,
                    status,
                    policy,
                    now,
                )
                .await;
                row.container_id = None;
                row.container_name = None;
                row.endpoint = None;
            }
        }
    }
    // No usable container: create one when the backoff allows.
    if slot.backoff.may_attempt(now) {
        row.phase = ReplicaPhase::Starting;
        row.restarts = slot.restarts;
        pass.replicas.push(row);
        pass.to_create.push(Create {
            index,
            row: pass.replicas.len() - 1,
            spec,
            surge: false,
        });
    } else {
        let wait = slot.backoff.remaining(now).unwrap_or(BUSY_REQUEUE);
        pass.requeue = pass.requeue.min(wait.max(Duration::from_millis(20)));
        row.phase = if slot.backoff.circuit == CircuitState::Open {
            ReplicaPhase::CircuitOpen
        } else {
            ReplicaPhase::BackingOff
        };
        row.restarts = slot.restarts;
        pass.replicas.push(row);
    }
}

/// Starts every container in [`Pass::to_create`] concurrently and records each outcome: a
/// started one gets a prober and its row; a failed one backs off (or, for a new revision in a
/// rollout, is left to the next pass to roll back).
pub(super) async fn create_all<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &mut Pass,
) {
    if pass.to_create.is_empty() {
        return;
    }
    let pool_name = inputs.pool.name();
    let health = &inputs.engine.spec.health;
    let policy = &inputs.pool.spec.restart;
    let now = pass.now;
    let obj = &pass.obj;
    pass.requeue = pass.requeue.min(BUSY_REQUEUE);
    let to_create = std::mem::take(&mut pass.to_create);
    let results = futures_util::future::join_all(
        to_create
            .iter()
            .map(|create| ctx.runtime.create_and_start(&create.spec)),
    )
    .await;
    for (create, result) in to_create.into_iter().zip(results) {
        let Create {
            index,
            row,
            spec,
            surge,
        } = create;
        let slot = ctx.slots.entry(index).or_default();
        let replica_id = ReplicaId::new(pool_name, index);
        match result {
            Ok(c) => {
                ctx.known.insert(c.id.clone());
                let reason = if surge {
                    Reason::RolloutReplicaCreated
                } else if slot.backoff.consecutive_failures > 0 {
                    Reason::ReplicaRestarted
                } else {
                    Reason::ReplicaCreated
                };
                let alongside = if surge { ", alongside the old one" } else { "" };
                ctx.events.emit(
                    Some(obj),
                    Some(&replica_id),
                    EventType::Normal,
                    reason,
                    format!(
                        "started {} {} ({}) from {}{alongside}",
                        spec_noun(&spec),
                        c.name,
                        short(&c.id),
                        spec.image
                    ),
                );
                if let (Some(r), Some(port)) = (pass.replicas.get_mut(row), c.host_port) {
                    let endpoint = Endpoint::loopback(port);
                    ctx.probers.ensure(&c.id, &endpoint, health, inputs.engine.spec.api);
                    r.container_id = Some(c.id.clone());
                    r.container_name = Some(c.name.clone());
                    r.endpoint = Some(endpoint);
                }
            }
            Err(e) => {
                let message = format!("cannot start replica {replica_id}: {e}");
                if surge {
                    // Decided next pass: a rollback, the old container untouched.
                    slot.surge_failure = Some((
                        ReplicaLabels::read(&spec.labels)
                            .map(|l| l.spec_hash)
                            .unwrap_or_default(),
                        message.clone(),
                    ));
                } else {
                    slot.backoff.record_failure(policy, now);
                }
                ctx.events.emit(
                    Some(obj),
                    Some(&replica_id),
                    EventType::Warning,
                    Reason::CreateFailed,
                    format!("{message}; {}", next_attempt_text(&slot.backoff, now)),
                );
                status.last_error = Some(LastError {
                    message,
                    log_tail: Vec::new(),
                    at: now_rfc3339(),
                });
                if let Some(r) = pass.replicas.get_mut(row) {
                    r.phase = ReplicaPhase::BackingOff;
                }
            }
        }
    }
}
