//! The pool side of a rolling (surge) reload: gathering, for every slot with a Ready old
//! container, where its new revision stands ([`plan`], which asks [`crate::rollout`] for the
//! step), then acting on each slot that still has an old container ([`act`]): hold it while
//! the new one starts, roll back, or cut over and retire the old one through the gate. What
//! the steps mean and how the rollout is recorded belongs to [`crate::rollout`].

use std::collections::BTreeMap;

use llorch_manifests::status::{EventType, ObjectStatus, ReplicaPhase};

use super::cleanup::{fail, remove, short};
use super::health::{Health, waiting_phase};
use super::observe::Observed;
use super::row::{fill, ready};
use super::{BUSY_REQUEUE, Create, LOG_TAIL_LINES, Pass, PoolContext, PoolInputs};
use crate::labels;
use crate::rollout::{self, NewState, Step, Surge};
use crate::runtime::ContainerRuntime;

/// The rollout decided for the whole pool this pass.
pub(super) struct Plan {
    /// The target revision a past rollout failed on, when the pool still targets it.
    pub failed: Option<String>,
    /// The slots whose Ready old container has a new revision to roll out.
    pub surges: Vec<Surge>,
    /// What to do with them; `None` when nothing surges.
    pub step: Option<Step>,
    /// Whether any slot still has an old container.
    pub olds_left: bool,
}

/// Decides the rollout from what every slot holds.
pub(super) async fn plan<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    status: &ObjectStatus,
    targets: &BTreeMap<u32, String>,
    observed: &[Observed],
) -> Plan {
    let failed = rollout::failed_target(status, targets);
    let mut surges = Vec::new();
    for o in observed {
        let Some((old, Health::Ready(_))) = &o.old else {
            continue;
        };
        if failed.is_some() {
            continue;
        }
        let slot = ctx.slots.entry(o.index).or_default();
        let new = match &o.new {
            Some((_, Health::Ready(_))) => NewState::Ready,
            Some((c, Health::Failed(message))) => NewState::Failed {
                message: message.clone(),
                log_tail: ctx.runtime.logs_tail(&c.id, LOG_TAIL_LINES).await.unwrap_or_default(),
            },
            Some(_) => NewState::Starting,
            None => match &slot.surge_failure {
                Some((h, message)) if *h == o.hash => NewState::Failed {
                    message: message.clone(),
                    log_tail: Vec::new(),
                },
                _ => NewState::Absent,
            },
        };
        surges.push(Surge {
            index: o.index,
            old_hash: labels::read(&old.labels).map(|l| l.spec_hash).unwrap_or_default(),
            new_hash: o.hash.clone(),
            old_model: old.labels.get(rollout::MODEL_LABEL).cloned(),
            new,
            retiring: slot.retiring.as_ref().is_some_and(|(id, _)| *id == old.id),
        });
    }
    let step = rollout::decide(&surges);
    let olds_left = observed.iter().any(|o| o.old.is_some());
    Plan {
        failed,
        surges,
        step,
        olds_left,
    }
}

/// Acts on a slot that still has an old container (`o.old` is `Some`).
pub(super) async fn act<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &mut Pass,
    plan: &Plan,
    o: Observed,
) {
    let Observed {
        index,
        row,
        spec,
        hash,
        new,
        old,
    } = o;
    let Some((old_c, old_h)) = old else {
        return;
    };
    let policy = &inputs.pool.spec.restart;
    let now = pass.now;
    let replica_id = row.id.clone();
    let slot = ctx.slots.entry(index).or_default();
    let surging = plan.surges.iter().any(|s| s.index == index);
    let mut old_row = row.clone();
    fill(&mut old_row, &old_c);
    old_row.spec_hash = labels::read(&old_c.labels).map(|l| l.spec_hash).unwrap_or_default();
    let new_ready = matches!(new, Some((_, Health::Ready(_))));
    if !surging || plan.step.is_none() {
        // Probe not reported yet, or the target revision failed before: the old
        // container serves on untouched; a leftover new container goes.
        old_row.phase = match old_h {
            Health::Ready(_) => ReplicaPhase::Ready,
            _ => ReplicaPhase::Starting,
        };
        pass.requeue = pass.requeue.min(if plan.failed.is_some() {
            pass.resync
        } else {
            BUSY_REQUEUE
        });
        pass.replicas.push(old_row);
        match (new, plan.failed.is_some()) {
            (Some((c, _)), true) => {
                let why = "its revision failed and was rolled back";
                remove(ctx.runtime, ctx.events, &pass.obj, index, &c, "RollbackRemoved", why).await;
            }
            (Some((c, h)), false) => {
                let mut new_row = row;
                fill(&mut new_row, &c);
                new_row.phase = waiting_phase(&h);
                pass.replicas.push(new_row);
            }
            (None, _) => {}
        }
        return;
    }
    pass.requeue = pass.requeue.min(BUSY_REQUEUE);
    match plan.step.as_ref() {
        Some(Step::RollBack { .. }) => {
            old_row.phase = ReplicaPhase::Ready;
            pass.replicas.push(old_row);
            if let Some((c, _)) = new {
                let why = "the new revision failed; rolling back to the old container";
                remove(ctx.runtime, ctx.events, &pass.obj, index, &c, "RollbackRemoved", why).await;
            }
            slot.surge_failure = None;
            slot.retiring = None;
        }
        Some(Step::CutOver) if new_ready => {
            let since = match &slot.retiring {
                Some((id, since)) if *id == old_c.id => *since,
                _ => {
                    ctx.events.emit(
                        Some(&pass.obj),
                        Some(&replica_id),
                        EventType::Normal,
                        "ReplicaRetiring",
                        format!(
                            "retiring {} {} ({}): no new tasks; it goes once its tasks finish",
                            super::cleanup::noun(&old_c),
                            old_c.name,
                            short(&old_c.id)
                        ),
                    );
                    slot.retiring = Some((old_c.id.clone(), now));
                    now
                }
            };
            let idle = ctx.gate.close_if_idle(&old_c.id);
            let late = now.duration_since(since) >= rollout::RETIRE_DEADLINE;
            if idle || late {
                let why = if idle {
                    "drained: no task in flight; the new revision serves"
                } else {
                    "drain deadline passed with tasks still in flight"
                };
                remove(ctx.runtime, ctx.events, &pass.obj, index, &old_c, "ReplicaRetired", why).await;
                slot.retiring = None;
                pass.retired += 1;
            } else {
                old_row.phase = ReplicaPhase::Draining;
                pass.replicas.push(old_row);
            }
            if let Some((c, Health::Ready(since))) = new {
                let mut new_row = row;
                fill(&mut new_row, &c);
                ready(&mut new_row, slot, since, now);
                pass.replicas.push(new_row);
            }
        }
        _ => {
            // Progressing (or committed, with this index's new container not Ready):
            // the old container serves; the new one is not offered to tasks yet.
            if let Some((id, _)) = slot.retiring.take() {
                ctx.gate.reopen(&id);
            }
            old_row.phase = ReplicaPhase::Ready;
            pass.replicas.push(old_row);
            match new {
                Some((c, Health::Failed(message))) => {
                    // Only after the cut-over began: a crash like any other.
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
                }
                Some((c, h)) => {
                    let mut new_row = row;
                    fill(&mut new_row, &c);
                    new_row.phase = waiting_phase(&h);
                    pass.replicas.push(new_row);
                }
                None if slot.surge_failure.as_ref().is_some_and(|(h, _)| *h == hash) => {
                    // A failed create after the cut-over began: retried with backoff.
                    slot.surge_failure = None;
                    slot.backoff.record_failure(policy, now);
                }
                None if slot.backoff.may_attempt(now) => {
                    pass.replicas.push(row);
                    pass.to_create.push(Create {
                        index,
                        row: pass.replicas.len() - 1,
                        spec,
                        surge: true,
                    });
                }
                None => {}
            }
        }
    }
}
