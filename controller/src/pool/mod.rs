//! Reconciling one Pool: compare its replica slots with the containers that carry its labels,
//! then create, adopt, restart (with backoff) or remove until they match. Level-triggered:
//! everything is decided from what is observed now plus the per-slot memory (backoff, the old
//! container a rollout retires, a failed create of the new revision).
//!
//! Each pass observes every index first (`observe`: its container of the current spec hash,
//! and the one old container kept while a new revision rolls out, each assessed by `health`),
//! then decides — the rolling replacement and its rollback are decided for the whole pool at
//! once in [`crate::rollout`], fed by `surge` — then acts: `surge` for slots that still have an
//! old container, `lifecycle` for the others (removes, retires, creates; creates of one pass
//! run concurrently). `summary` turns the result into the Pool's conditions. This module owns
//! no I/O of its own: every container call goes through [`ContainerRuntime`].

mod cleanup;
mod health;
mod lifecycle;
mod observe;
mod on_gpu;
mod row;
mod summary;
mod surge;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_manifests::identity::ReplicaLabels;
use llorch_manifests::status::{ObjectStatus, ReplicaStatus};
use llorch_manifests::{Engine, Model, ObjectRef, Pool, Reason};

use crate::backoff::SlotBackoff;
use crate::probe::Probers;
use crate::retire::ReplicaGate;
use crate::rollout;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec};
use crate::state_dir::EventLog;

pub(crate) use cleanup::noun;
pub use cleanup::short;
pub(crate) use summary::waiting_for_model;

/// Log lines kept from an engine that failed.
pub const LOG_TAIL_LINES: usize = 20;
/// Re-check interval while anything in a pool is in motion.
pub const BUSY_REQUEUE: Duration = Duration::from_millis(250);

/// Memory of one replica slot across passes.
#[derive(Debug, Default)]
pub struct SlotMemory {
    /// Backoff and circuit.
    pub backoff: SlotBackoff,
    /// Restarts of this slot since the daemon started (the Pool's total is persisted).
    pub restarts: u64,
    /// The spec hash the backoff applies to: an edit gets a fresh start, not the old penalty.
    pub spec_hash: String,
    /// The old container this slot retires in a rollout, and since when.
    pub retiring: Option<(String, Instant)>,
    /// A create of the new revision that failed during a rollout: (spec hash, why).
    pub surge_failure: Option<(String, String)>,
    /// The NotOnGpu check's memory of this slot's containers, by container id.
    pub on_gpu: BTreeMap<String, on_gpu::Watch>,
}

/// Everything a pool reconcile may touch.
pub struct PoolContext<'a, R: ContainerRuntime> {
    /// The runtime.
    pub runtime: &'a Arc<R>,
    /// Instance label.
    pub instance: &'a str,
    /// Probers.
    pub probers: &'a mut Probers,
    /// Event log.
    pub events: &'a EventLog,
    /// Slot memory of this pool, by index.
    pub slots: &'a mut BTreeMap<u32, SlotMemory>,
    /// Containers created by this process (to tell adoption from creation).
    pub known: &'a mut std::collections::HashSet<String>,
    /// Closes retiring containers to new tasks and says when they are idle.
    pub gate: &'a dyn ReplicaGate,
}

/// The resolved inputs of a pool.
pub struct PoolInputs<'a> {
    /// The Pool.
    pub pool: &'a Pool,
    /// Its Engine.
    pub engine: &'a Engine,
    /// Its Model.
    pub model: &'a Model,
    /// The model file on the host.
    pub model_path: &'a Path,
    /// GPU indices the pool may use.
    pub gpu_selection: &'a [u32],
    /// Where each replica index runs, or why it cannot (`placement::plan`, for all Pools at once).
    pub placement: &'a BTreeMap<u32, crate::placement::Placement>,
    /// The GPU inventory: a container on a device that reports errors is failed.
    pub gpus: &'a [llorch_manifests::api::GpuView],
    /// Whether GPUs are simulated.
    pub gpus_simulated: bool,
    /// Explicit reloads of this pool (folded into every spec hash).
    pub reload: u64,
    /// VRAM left once every replica is placed, and what one replica needs of it.
    pub room: SurgeRoom,
    /// How long a Ready replica may go without its processes on its GPUs before it is
    /// NotOnGpu; `None` when the GPUs do not come from NVML (simulated, `none`): not checked.
    pub on_gpu_grace: Option<Duration>,
    /// The model's weights as its GGUF header sums them; `None` for a `vramBytes` override or
    /// an unknown size: the NotOnGpu check then only looks for the engine's processes.
    pub weights_bytes: Option<u64>,
}

/// Room for a rollout's new replicas next to the old ones: each device's VRAM still free after
/// this pass's placement, and one replica's share per GPU.
#[derive(Clone, Debug, Default)]
pub struct SurgeRoom {
    /// Free VRAM by device index (negative when over-committed).
    pub free: BTreeMap<u32, i128>,
    /// One replica's share on each of its GPUs.
    pub shares: Vec<u64>,
}

impl SurgeRoom {
    /// Whether new replicas on each of `gpus` (one list per replica) all fit at once.
    pub fn fits(&self, gpus: &[&[u32]]) -> bool {
        let mut want: BTreeMap<u32, i128> = BTreeMap::new();
        for replica in gpus {
            for (gpu, share) in replica.iter().zip(&self.shares) {
                *want.entry(*gpu).or_default() += i128::from(*share);
            }
        }
        want.iter()
            .all(|(gpu, need)| self.free.get(gpu).is_some_and(|free| free >= need))
    }
}

/// What one pool reconcile produced.
pub struct PoolOutcome {
    /// Replica statuses.
    pub replicas: Vec<ReplicaStatus>,
    /// When to look again.
    pub requeue: Duration,
}

/// What one pass accumulates while it acts.
struct Pass {
    obj: ObjectRef,
    now: Instant,
    resync: Duration,
    requeue: Duration,
    /// The rows to publish, in the order they were decided.
    replicas: Vec<ReplicaStatus>,
    /// Containers to create at the end of the pass, all at once.
    to_create: Vec<Create>,
    /// Old containers retired this pass.
    retired: usize,
    /// Why each NotOnGpu replica is out of service (for the Pool's Degraded condition).
    not_on_gpu: Vec<String>,
}

/// One container to create: its slot, its row in [`Pass::replicas`], and whether it is a new
/// revision started next to an old container.
struct Create {
    index: u32,
    row: usize,
    spec: ContainerSpec,
    surge: bool,
}

/// Reconciles one pool whose manifest and references are valid.
pub async fn reconcile_pool<R: ContainerRuntime>(
    mut ctx: PoolContext<'_, R>,
    inputs: PoolInputs<'_>,
    containers: Vec<ContainerInfo>,
    status: &mut ObjectStatus,
    resync: Duration,
) -> PoolOutcome {
    let obj = ObjectRef::new(llorch_manifests::Kind::Pool, inputs.pool.name());
    let desired = inputs.pool.spec.replica_count();
    let mut pass = Pass {
        obj,
        now: Instant::now(),
        resync,
        requeue: resync,
        replicas: Vec::new(),
        to_create: Vec::new(),
        retired: 0,
        not_on_gpu: Vec::new(),
    };
    let mut by_index: BTreeMap<u32, Vec<ContainerInfo>> = BTreeMap::new();
    for c in containers {
        if let Some(l) = ReplicaLabels::read(&c.labels) {
            by_index.entry(l.index).or_default().push(c);
        }
    }

    // Surplus: indices at or above the desired count, each closed to new tasks first and
    // removed once no task runs on it (a task is never cut by a scale-down; it is looked at
    // again shortly).
    for (index, list) in by_index.range(desired..) {
        for c in list {
            if c.state.is_running() && !ctx.gate.close_if_idle(&c.id) {
                pass.requeue = pass.requeue.min(BUSY_REQUEUE);
                continue;
            }
            cleanup::remove(
                ctx.runtime,
                ctx.events,
                &pass.obj,
                *index,
                c,
                Reason::ReplicaRemoved,
                "scaled down",
            )
            .await;
        }
    }
    ctx.slots.retain(|i, _| *i < desired);

    // 1. Observe every index.
    let mut observed = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for index in 0..desired {
        let found = by_index.remove(&index).unwrap_or_default();
        match observe::slot(&mut ctx, &inputs, status, &mut pass, index, found).await {
            observe::Slot::Observed(o) => observed.push(*o),
            observe::Slot::Refused(why) => refused.push(why),
            observe::Slot::Unplanned => {}
        }
    }

    // 2. Decide the rollout for the whole pool.
    let targets: BTreeMap<u32, String> = observed.iter().map(|o| (o.index, o.hash.clone())).collect();
    let plan = surge::plan(&mut ctx, &inputs, status, &targets, &observed).await;

    // 3. Act, index by index.
    for o in observed {
        if o.old.is_some() {
            surge::act(&mut ctx, &inputs, status, &mut pass, &plan, o).await;
        } else {
            lifecycle::act(&mut ctx, &inputs, status, &mut pass, o).await;
        }
    }
    lifecycle::create_all(&mut ctx, &inputs, status, &mut pass).await;

    rollout::record(
        status,
        ctx.events,
        rollout::Record {
            obj: &pass.obj,
            model: inputs.model.name(),
            surges: &plan.surges,
            step: plan.step.as_ref(),
            retired: pass.retired,
            olds_left: plan.olds_left,
            settled: plan.settled,
            method: plan.method,
        },
    );
    let rolled_back = rollout::failed_target(status, &targets).is_some();
    summary::summarize(status, inputs.pool, &pass.replicas, ctx.slots, pass.now, rolled_back);
    summary::refused(status, &pass.replicas, &refused);
    summary::not_on_gpu(status, &pass.replicas, &pass.not_on_gpu);
    PoolOutcome {
        replicas: pass.replicas,
        requeue: pass.requeue,
    }
}
