//! What one replica slot holds this pass, before anything is decided for the pool: its
//! container of the current spec hash and, while a new revision rolls out, the one old
//! container kept serving. On the way it clears what no decision could keep: containers on
//! GPUs that report errors (failed through the slot's backoff), containers of a slot that
//! placement refused, a second container of the current spec, old containers that do not
//! serve. It never creates anything.

use llorch_manifests::identity::{ReplicaLabels, gpus_of};
use llorch_manifests::status::{ObjectStatus, ReplicaPhase, ReplicaStatus};
use llorch_manifests::{ObjectRef, Reason, ReplicaId};

use super::cleanup::{fail, remove};
use super::health::{Health, assess};
use super::on_gpu;
use super::{BUSY_REQUEUE, Pass, PoolContext, PoolInputs};
use crate::backoff::SlotBackoff;
use crate::reloads;
use crate::rollout;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec};
use crate::spec::ReplicaInputs;

/// One index as observed: the row to publish, the container to create, and its containers.
pub(super) struct Observed {
    pub index: u32,
    pub row: ReplicaStatus,
    pub spec: ContainerSpec,
    pub hash: String,
    pub new: Option<(ContainerInfo, Health)>,
    pub old: Option<(ContainerInfo, Health)>,
}

/// What became of one index.
pub(super) enum Slot {
    /// Placed: its containers, to be decided on.
    Observed(Box<Observed>),
    /// Placement found no room for it (why); its containers were removed.
    Refused(String),
    /// Placement has no answer for it: left alone this pass.
    Unplanned,
}

/// Observes index `index` of the pool, given the containers `found` at that index.
pub(super) async fn slot<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &mut Pass,
    index: u32,
    found: Vec<ContainerInfo>,
) -> Slot {
    let pool_name = inputs.pool.name();
    let replica_id = ReplicaId::new(pool_name, index);
    let engine = &inputs.engine.spec;
    let now = pass.now;
    let list = fail_on_broken_gpus(ctx, inputs, status, pass, index, found).await;
    let obj = &pass.obj;
    let gpus = match inputs.placement.get(&index) {
        Some(Ok(g)) => g.clone(),
        Some(Err(why)) => {
            // Not started. Whatever is left at this index sits outside the mask or is
            // stopped (a running container on good GPUs keeps them), so it goes.
            for c in list {
                let why = "no GPU of its mask has room for it";
                remove(ctx.runtime, ctx.events, obj, index, &c, Reason::ReplicaOutdated, why).await;
            }
            return Slot::Refused(why.clone());
        }
        None => return Slot::Unplanned,
    };
    let ri = ReplicaInputs {
        instance: ctx.instance,
        pool_name,
        pool: &inputs.pool.spec,
        engine: &inputs.engine.spec,
        model: &inputs.model.spec,
        model_path: inputs.model_path,
        index,
        gpus: &gpus,
        gpus_simulated: inputs.gpus_simulated,
    };
    let hash = reloads::fold(&ri.spec_hash(), inputs.reload);
    let mut spec = ri.container_spec(&unique_suffix());
    reloads::relabel(&mut spec, ctx.instance, &hash);
    spec.labels
        .insert(rollout::MODEL_LABEL.to_string(), inputs.model.name().to_string());
    let slot = ctx.slots.entry(index).or_default();
    if slot.spec_hash != hash {
        slot.backoff = SlotBackoff::default();
        slot.spec_hash = hash.clone();
    }
    let restarts = slot.restarts;
    let (matching, outdated): (Vec<ContainerInfo>, Vec<ContainerInfo>) = list
        .into_iter()
        .partition(|c| ReplicaLabels::read(&c.labels).is_some_and(|l| l.spec_hash == hash));
    let current = keep_one_current(ctx, obj, index, matching).await;
    let row = ReplicaStatus {
        id: replica_id.clone(),
        pool: pool_name.to_string(),
        index,
        phase: ReplicaPhase::Starting,
        container_id: None,
        container_name: None,
        endpoint: None,
        gpus: gpus.clone(),
        gpus_simulated: inputs.gpus_simulated,
        engine_version: inputs.engine.spec.version.clone(),
        spec_hash: hash.clone(),
        restarts,
        ready_since: None,
        kv_cache_usage_ratio: None,
    };
    let mut recheck = None;
    let new = match current {
        Some(c) => {
            let h = assess(ctx, obj, &replica_id, &c, engine, now);
            let vetted = on_gpu::vet(ctx, inputs, (obj, &replica_id, index), &c, h, now).await;
            recheck = vetted.recheck_in;
            Some((c, vetted.health))
        }
        None => None,
    };
    let old = keep_one_old(ctx, obj, index, &replica_id, outdated, inputs, now).await;
    if let Some(wait) = recheck {
        pass.requeue = pass.requeue.min(wait);
    }
    let slot = ctx.slots.entry(index).or_default();
    let seen = [&new, &old].map(|c| c.as_ref().map(|(c, _)| c.id.as_str()));
    slot.on_gpu.retain(|id, _| seen.contains(&Some(id.as_str())));
    if old.is_none() && slot.retiring.take().is_some() {
        pass.requeue = pass.requeue.min(BUSY_REQUEUE);
    }
    Slot::Observed(Box::new(Observed {
        index,
        row,
        spec,
        hash,
        new,
        old,
    }))
}

/// A container on a GPU that reports driver or ECC errors fails, whatever its probe says:
/// removed, counted, and restarted through the slot's backoff on a healthy GPU. Returns the
/// others.
async fn fail_on_broken_gpus<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    status: &mut ObjectStatus,
    pass: &Pass,
    index: u32,
    found: Vec<ContainerInfo>,
) -> Vec<ContainerInfo> {
    let mut list = Vec::new();
    for c in found {
        let on = gpus_of(&c.labels);
        match crate::placement::gpu_errors(inputs.gpus, &on) {
            Some(why) => {
                let message = format!("not Ready: its GPU reports errors — {why}");
                let slot = ctx.slots.entry(index).or_default();
                fail(
                    ctx.runtime,
                    ctx.events,
                    &pass.obj,
                    index,
                    &c,
                    &message,
                    slot,
                    status,
                    &inputs.pool.spec.restart,
                    pass.now,
                )
                .await;
            }
            None => list.push(c),
        }
    }
    list
}

/// Keeps one container of the current spec per slot, a running one if there is one; the
/// others go (`DuplicateRemoved`).
async fn keep_one_current<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    obj: &ObjectRef,
    index: u32,
    matching: Vec<ContainerInfo>,
) -> Option<ContainerInfo> {
    let keep = matching
        .iter()
        .position(|c| c.state.is_running())
        .or((!matching.is_empty()).then_some(0));
    for (_, c) in matching.iter().enumerate().filter(|(i, _)| Some(*i) != keep) {
        let why = "a second container for this replica";
        remove(ctx.runtime, ctx.events, obj, index, c, Reason::DuplicateRemoved, why).await;
    }
    keep.and_then(|i| matching.into_iter().nth(i))
}

/// Of the outdated containers, one that serves (or may: its probe has not reported yet) is
/// kept while the new revision starts; the others go, as they always did.
async fn keep_one_old<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    obj: &ObjectRef,
    index: u32,
    replica_id: &ReplicaId,
    outdated: Vec<ContainerInfo>,
    inputs: &PoolInputs<'_>,
    now: std::time::Instant,
) -> Option<(ContainerInfo, Health)> {
    let engine = &inputs.engine.spec;
    let mut olds: Vec<(ContainerInfo, Health)> = Vec::with_capacity(outdated.len());
    for c in outdated {
        let h = assess(ctx, obj, replica_id, &c, engine, now);
        // An old container that computes on the CPU does not serve through a rollout either.
        let h = on_gpu::vet(ctx, inputs, (obj, replica_id, index), &c, h, now)
            .await
            .health;
        olds.push((c, h));
    }
    olds.sort_by_key(|(c, h)| (!matches!(h, Health::Ready(_)), c.id.clone()));
    let keeper = olds
        .iter()
        .position(|(_, h)| matches!(h, Health::Ready(_) | Health::Unknown));
    let old = keeper.map(|i| olds.remove(i));
    for (c, _) in &olds {
        let why = "its spec changed; replacing it";
        remove(ctx.runtime, ctx.events, obj, index, c, Reason::ReplicaOutdated, why).await;
    }
    old
}

/// Makes container names unique across daemon restarts.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", (nanos / 1_000) & 0xff_ffff_ffff)
}
