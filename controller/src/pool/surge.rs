//! The pool side of a reload: gathering, for every slot with a Ready old container, where its
//! new revision stands, and how this rollout replaces replicas — `Surge` when the GPUs have
//! room for the new copies next to the old ones (or the Pool asks for it), else `Recreate`
//! ([`plan`], which asks [`crate::rollout`] for the step) — then acting on each slot that still
//! has an old container ([`act`]): hold it while the new one starts, roll back, cut over and
//! retire the old one through the gate, or (Recreate) stop it first. What the steps mean and
//! how the rollout is recorded belongs to [`crate::rollout`].

use std::collections::BTreeMap;

use llorch_manifests::Reason;
use llorch_manifests::identity::ReplicaLabels;
use llorch_manifests::pool::RolloutStrategy;
use llorch_manifests::status::{EventType, ObjectStatus, ReplicaPhase, ReplicaStatus, RolloutMethod, RolloutPhase};

use super::cleanup::{fail, remove, short};
use super::health::{Health, waiting_phase};
use super::observe::Observed;
use super::row::{fill, ready};
use super::{BUSY_REQUEUE, Create, LOG_TAIL_LINES, Pass, PoolContext, PoolInputs};
use crate::rollout::{self, NewState, Step, Surge};
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec};

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
    /// Every slot has a Ready container of the target revision and no old one.
    pub settled: bool,
    /// How this rollout replaces replicas.
    pub method: RolloutMethod,
}

/// Decides the rollout from what every slot holds.
pub(super) async fn plan<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
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
            old_hash: ReplicaLabels::read(&old.labels)
                .map(|l| l.spec_hash)
                .unwrap_or_default(),
            new_hash: o.hash.clone(),
            old_model: old.labels.get(rollout::MODEL_LABEL).cloned(),
            new,
            retiring: slot.retiring.as_ref().is_some_and(|(id, _)| *id == old.id),
        });
    }
    // Room for the new copies that are not started yet, next to everything placed.
    let unstarted: Vec<&[u32]> = observed
        .iter()
        .filter(|o| surges.iter().any(|s| s.index == o.index && s.new == NewState::Absent))
        .map(|o| o.row.gpus.as_slice())
        .collect();
    let method = method(
        inputs.pool.spec.rollout.strategy,
        status,
        targets,
        inputs.room.fits(&unstarted),
    );
    let ready = |o: &Observed| matches!(o.new, Some((_, Health::Ready(_))));
    let in_motion = observed.iter().any(|o| o.old.is_none() && !ready(o));
    let step = rollout::decide(&surges, method, in_motion);
    let olds_left = observed.iter().any(|o| o.old.is_some());
    let settled = observed.iter().all(|o| o.old.is_none() && ready(o));
    Plan {
        failed,
        surges,
        step,
        olds_left,
        settled,
        method,
    }
}

/// What `strategy` comes to: `Auto` is `Surge` when the new copies fit (`fits`), else
/// `Recreate` — and once a rollout to the current target is under way it keeps its method, so
/// VRAM freed by a Recreate does not turn it into a Surge halfway.
fn method(
    strategy: RolloutStrategy,
    status: &ObjectStatus,
    targets: &BTreeMap<u32, String>,
    fits: bool,
) -> RolloutMethod {
    match strategy {
        RolloutStrategy::Surge => RolloutMethod::Surge,
        RolloutStrategy::Recreate => RolloutMethod::Recreate,
        RolloutStrategy::Auto => {
            let ongoing = status.rollout.as_ref().filter(|r| {
                matches!(r.phase, RolloutPhase::Progressing | RolloutPhase::Draining)
                    && targets.values().any(|h| *h == r.to_revision)
            });
            match ongoing {
                Some(r) => r.method,
                None if fits => RolloutMethod::Surge,
                None => RolloutMethod::Recreate,
            }
        }
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
    let Some((old, old_health)) = old else {
        return;
    };
    let mut old_row = row.clone();
    fill(&mut old_row, &old);
    old_row.spec_hash = ReplicaLabels::read(&old.labels)
        .map(|l| l.spec_hash)
        .unwrap_or_default();
    let pair = Pair {
        index,
        row,
        old_row,
        old,
        new,
        spec,
        hash,
    };
    let surging = plan.surges.iter().any(|s| s.index == index);
    if !surging || plan.step.is_none() {
        hold(ctx, pass, plan, pair, old_health).await;
        return;
    }
    pass.requeue = pass.requeue.min(BUSY_REQUEUE);
    let new_ready = matches!(pair.new, Some((_, Health::Ready(_))));
    match plan.step.as_ref() {
        Some(Step::Recreate { next }) if *next == Some(index) => stop_first(ctx, pass, pair).await,
        Some(Step::Recreate { .. }) => hold(ctx, pass, plan, pair, old_health).await,
        Some(Step::RollBack { .. }) => roll_back(ctx, pass, pair).await,
        Some(Step::CutOver) if new_ready => cut_over(ctx, pass, pair).await,
        _ => progress(ctx, inputs, status, pass, pair).await,
    }
}

/// One slot with an old container, taken apart to be acted on.
struct Pair {
    index: u32,
    /// The row of the slot's new revision.
    row: ReplicaStatus,
    /// The row of its old container.
    old_row: ReplicaStatus,
    /// The old container.
    old: ContainerInfo,
    /// The new revision's container, if there is one.
    new: Option<(ContainerInfo, Health)>,
    /// The new revision's container to create.
    spec: ContainerSpec,
    /// The new revision's spec hash.
    hash: String,
}

/// Probe not reported yet, or the target revision failed before: the old container serves on
/// untouched; a leftover new container goes.
async fn hold<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    pass: &mut Pass,
    plan: &Plan,
    pair: Pair,
    old_health: Health,
) {
    let Pair {
        index,
        row,
        mut old_row,
        new,
        ..
    } = pair;
    old_row.phase = match old_health {
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
            remove(
                ctx.runtime,
                ctx.events,
                &pass.obj,
                index,
                &c,
                Reason::RollbackRemoved,
                why,
            )
            .await;
        }
        (Some((c, h)), false) => {
            let mut new_row = row;
            fill(&mut new_row, &c);
            new_row.phase = waiting_phase(&h);
            pass.replicas.push(new_row);
        }
        (None, _) => {}
    }
}

/// The new revision failed before the cut-over: its container goes, the old one serves.
async fn roll_back<R: ContainerRuntime>(ctx: &mut PoolContext<'_, R>, pass: &mut Pass, pair: Pair) {
    let Pair {
        index,
        mut old_row,
        new,
        ..
    } = pair;
    old_row.phase = ReplicaPhase::Ready;
    pass.replicas.push(old_row);
    if let Some((c, _)) = new {
        let why = "the new revision failed; rolling back to the old container";
        remove(
            ctx.runtime,
            ctx.events,
            &pass.obj,
            index,
            &c,
            Reason::RollbackRemoved,
            why,
        )
        .await;
    }
    let slot = ctx.slots.entry(index).or_default();
    slot.surge_failure = None;
    slot.retiring = None;
}

/// Closes the old container of slot `index` to new tasks (the first time, with a
/// `ReplicaRetiring` event: "`verb` container … (id)`why`"), and says whether it is idle and whether its
/// retirement has passed [`rollout::RETIRE_DEADLINE`].
fn retire<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    pass: &Pass,
    index: u32,
    row: &ReplicaStatus,
    old: &ContainerInfo,
    (verb, why): (&str, &str),
) -> (bool, bool) {
    let now = pass.now;
    let slot = ctx.slots.entry(index).or_default();
    let since = match &slot.retiring {
        Some((id, since)) if *id == old.id => *since,
        _ => {
            ctx.events.emit(
                Some(&pass.obj),
                Some(&row.id),
                EventType::Normal,
                Reason::ReplicaRetiring,
                format!(
                    "{verb} {} {} ({}){why}: no new tasks; it goes once its tasks finish",
                    super::cleanup::noun(old),
                    old.name,
                    short(&old.id)
                ),
            );
            slot.retiring = Some((old.id.clone(), now));
            now
        }
    };
    let idle = ctx.gate.close_if_idle(&old.id);
    (idle, now.duration_since(since) >= rollout::RETIRE_DEADLINE)
}

/// Every new container is Ready: the new one serves, the old one is closed to new tasks
/// through the gate and removed once idle (or past the deadline).
async fn cut_over<R: ContainerRuntime>(ctx: &mut PoolContext<'_, R>, pass: &mut Pass, pair: Pair) {
    let Pair {
        index,
        row,
        mut old_row,
        old,
        new,
        ..
    } = pair;
    let now = pass.now;
    let (idle, late) = retire(ctx, pass, index, &row, &old, ("retiring", ""));
    if idle || late {
        let why = if idle {
            "drained: no task in flight; the new revision serves"
        } else {
            "drain deadline passed with tasks still in flight"
        };
        remove(
            ctx.runtime,
            ctx.events,
            &pass.obj,
            index,
            &old,
            Reason::ReplicaRetired,
            why,
        )
        .await;
        ctx.slots.entry(index).or_default().retiring = None;
        pass.retired += 1;
    } else {
        old_row.phase = ReplicaPhase::Draining;
        pass.replicas.push(old_row);
    }
    if let Some((c, Health::Ready(since))) = new {
        let mut new_row = row;
        fill(&mut new_row, &c);
        ready(&mut new_row, ctx.slots.entry(index).or_default(), since, now);
        pass.replicas.push(new_row);
    }
}

/// Recreate: the old container is closed to new tasks and removed once idle (or past the
/// deadline); its new revision is created at once, on the VRAM it held. Until then the old
/// one is `Draining`, and the Pool's tasks go to its other replicas or wait in the queue.
async fn stop_first<R: ContainerRuntime>(ctx: &mut PoolContext<'_, R>, pass: &mut Pass, pair: Pair) {
    let Pair {
        index,
        row,
        mut old_row,
        old,
        spec,
        ..
    } = pair;
    let (idle, late) = retire(
        ctx,
        pass,
        index,
        &row,
        &old,
        ("stopping", " first to make room for its new revision (Recreate)"),
    );
    if !idle && !late {
        old_row.phase = ReplicaPhase::Draining;
        pass.replicas.push(old_row);
        return;
    }
    let why = if idle {
        "stopped first: no task in flight; its new revision starts now (Recreate)"
    } else {
        "drain deadline passed with tasks still in flight; its new revision starts now (Recreate)"
    };
    remove(
        ctx.runtime,
        ctx.events,
        &pass.obj,
        index,
        &old,
        Reason::ReplicaRetired,
        why,
    )
    .await;
    let slot = ctx.slots.entry(index).or_default();
    slot.retiring = None;
    pass.retired += 1;
    pass.replicas.push(row);
    pass.to_create.push(Create {
        index,
        row: pass.replicas.len() - 1,
        spec,
        surge: false,
    });
}

/// Progressing (or committed, with this index's new container not Ready): the old container
/// serves; the new one is not offered to tasks yet, and is created (or failed) as needed.
async fn progress<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &mut Pass,
    pair: Pair,
) {
    let Pair {
        index,
        row,
        mut old_row,
        new,
        spec,
        hash,
        ..
    } = pair;
    let policy = &inputs.pool.spec.restart;
    let now = pass.now;
    let slot = ctx.slots.entry(index).or_default();
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
