//! Reconciling one Pool: compare its replica slots with the containers that carry its labels,
//! then create, adopt, restart (with backoff) or remove until they match. Level-triggered:
//! everything is decided from what is observed now plus the per-slot memory (backoff, the old
//! container a rollout retires, a failed create of the new revision).
//!
//! Each pass observes every index first (its container of the current spec hash, and the one
//! old container kept while a new revision rolls out), then decides — the rolling replacement
//! and its rollback are decided for the whole pool at once in [`crate::rollout`] — then acts:
//! removes, retires, creates (creates of one pass run concurrently).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_manifests::status::{
    CircuitState, ConditionType, EventType, LastError, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus,
    RolloutPhase,
};
use llorch_manifests::{Engine, HealthCheck, Model, ObjectRef, Pool};

use crate::backoff::SlotBackoff;
use crate::conditions;
use crate::labels;
use crate::probe::Probers;
use crate::reloads;
use crate::retire::ReplicaGate;
use crate::rollout::{self, NewState, Step, Surge};
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec};
use crate::spec::ReplicaInputs;
use crate::state_dir::{EventLog, now_rfc3339};

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
}

/// What one pool reconcile produced.
pub struct PoolOutcome {
    /// Replica statuses.
    pub replicas: Vec<ReplicaStatus>,
    /// When to look again.
    pub requeue: Duration,
}

/// How a container looks this pass.
enum Health {
    /// Its probe passes (since when, if known).
    Ready(Option<Instant>),
    /// Not Ready yet, within its startup timeout (or was Ready and fails below the limit).
    Waiting(ReplicaPhase),
    /// Its health probe has not reported yet (just adopted or created).
    Unknown,
    /// Exited, no port, or never/no longer healthy past the startup timeout.
    Failed(String),
}

/// One index as observed: the row to publish, the container to create, and its containers.
struct Observed {
    index: u32,
    row: ReplicaStatus,
    spec: ContainerSpec,
    hash: String,
    new: Option<(ContainerInfo, Health)>,
    old: Option<(ContainerInfo, Health)>,
}

/// Reconciles one pool whose manifest and references are valid.
pub async fn reconcile_pool<R: ContainerRuntime>(
    ctx: PoolContext<'_, R>,
    inputs: PoolInputs<'_>,
    containers: Vec<ContainerInfo>,
    status: &mut ObjectStatus,
    resync: Duration,
) -> PoolOutcome {
    let pool_name = inputs.pool.name();
    let obj = ObjectRef::new(llorch_manifests::Kind::Pool, pool_name);
    let desired = inputs.pool.spec.replicas;
    let health = &inputs.engine.spec.health;
    let policy = &inputs.pool.spec.restart;
    let now = Instant::now();
    let mut requeue = resync;
    let mut by_index: BTreeMap<u32, Vec<ContainerInfo>> = BTreeMap::new();
    for c in containers {
        if let Some(l) = labels::read(&c.labels) {
            by_index.entry(l.index).or_default().push(c);
        }
    }

    // Surplus: indices at or above the desired count.
    for (index, list) in by_index.range(desired..) {
        for c in list {
            remove(
                ctx.runtime,
                ctx.events,
                &obj,
                *index,
                c,
                "ReplicaRemoved",
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
        let replica_id = format!("{pool_name}-{index}");
        // A container on a GPU that reports driver or ECC errors fails, whatever its probe says:
        // removed, counted, and restarted through the slot's backoff on a healthy GPU.
        if let Some(list) = by_index.get_mut(&index) {
            for c in std::mem::take(list) {
                let on = crate::placement::memory::label_gpus(&c);
                match crate::placement::gpu_errors(inputs.gpus, &on) {
                    Some(why) => {
                        let message = format!("not Ready: its GPU reports errors — {why}");
                        let slot = ctx.slots.entry(index).or_default();
                        fail(
                            ctx.runtime,
                            ctx.events,
                            &obj,
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
                    None => list.push(c),
                }
            }
        }
        let gpus = match inputs.placement.get(&index) {
            Some(Ok(g)) => g.clone(),
            Some(Err(why)) => {
                // Not started. Whatever is left at this index sits outside the mask or is
                // stopped (a running container on good GPUs keeps them), so it goes.
                for c in by_index.remove(&index).unwrap_or_default() {
                    let why = "no GPU of its mask has room for it";
                    remove(ctx.runtime, ctx.events, &obj, index, &c, "ReplicaOutdated", why).await;
                }
                refused.push(why.clone());
                continue;
            }
            None => continue,
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
        let base_hash = ri.spec_hash();
        let hash = reloads::fold(&base_hash, inputs.reload);
        let mut spec = ri.container_spec(&unique_suffix());
        reloads::relabel(&mut spec, &base_hash, &hash);
        spec.labels
            .insert(rollout::MODEL_LABEL.to_string(), inputs.model.name().to_string());
        let slot = ctx.slots.entry(index).or_default();
        if slot.spec_hash != hash {
            slot.backoff = SlotBackoff::default();
            slot.spec_hash = hash.clone();
        }
        let (matching, outdated): (Vec<ContainerInfo>, Vec<ContainerInfo>) = by_index
            .remove(&index)
            .unwrap_or_default()
            .into_iter()
            .partition(|c| labels::read(&c.labels).is_some_and(|l| l.spec_hash == hash));
        // Keep one container of the current spec per slot, a running one if there is one.
        let keep = matching
            .iter()
            .position(|c| c.state.is_running())
            .or((!matching.is_empty()).then_some(0));
        for (_, c) in matching.iter().enumerate().filter(|(i, _)| Some(*i) != keep) {
            let why = "a second container for this replica";
            remove(ctx.runtime, ctx.events, &obj, index, c, "DuplicateRemoved", why).await;
        }
        let current = keep.and_then(|i| matching.into_iter().nth(i));
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
            restarts: slot.restarts,
            ready_since: None,
        };
        let new = current.map(|c| {
            let h = assess(
                &c,
                &mut *ctx.probers,
                ctx.known,
                ctx.events,
                &obj,
                &replica_id,
                health,
                now,
            );
            (c, h)
        });
        // Of the outdated containers, one that serves (or may: its probe has not reported
        // yet) is kept while the new revision starts; the others go, as they always did.
        let mut olds: Vec<(ContainerInfo, Health)> = outdated
            .into_iter()
            .map(|c| {
                let h = assess(
                    &c,
                    &mut *ctx.probers,
                    ctx.known,
                    ctx.events,
                    &obj,
                    &replica_id,
                    health,
                    now,
                );
                (c, h)
            })
            .collect();
        olds.sort_by_key(|(c, h)| (!matches!(h, Health::Ready(_)), c.id.clone()));
        let keeper = olds
            .iter()
            .position(|(_, h)| matches!(h, Health::Ready(_) | Health::Unknown));
        let old = keeper.map(|i| olds.remove(i));
        for (c, _) in &olds {
            let why = "its spec changed; replacing it";
            remove(ctx.runtime, ctx.events, &obj, index, c, "ReplicaOutdated", why).await;
        }
        if old.is_none() && slot.retiring.take().is_some() {
            requeue = requeue.min(BUSY_REQUEUE);
        }
        observed.push(Observed {
            index,
            row,
            spec,
            hash,
            new,
            old,
        });
    }

    // 2. Decide the rollout for the whole pool.
    let targets: BTreeMap<u32, String> = observed.iter().map(|o| (o.index, o.hash.clone())).collect();
    let failed = rollout::failed_target(status, &targets);
    let mut surges = Vec::new();
    for o in &mut observed {
        let Some((old, Health::Ready(_))) = &o.old else {
            continue;
        };
        if failed.is_some() {
            continue;
        }
        let slot = ctx.slots.entry(o.index).or_default();
        let new = match &mut o.new {
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

    // 3. Act, index by index.
    let mut replicas: Vec<ReplicaStatus> = Vec::new();
    let mut to_create: Vec<(u32, usize, ContainerSpec, bool)> = Vec::new();
    let mut retired = 0;
    for o in observed {
        let Observed {
            index,
            row,
            spec,
            hash,
            new,
            old,
        } = o;
        let replica_id = row.id.clone();
        let slot = ctx.slots.entry(index).or_default();
        let surging = surges.iter().any(|s| s.index == index);
        if let Some((old_c, old_h)) = old {
            let mut old_row = row.clone();
            fill(&mut old_row, &old_c);
            old_row.spec_hash = labels::read(&old_c.labels).map(|l| l.spec_hash).unwrap_or_default();
            let new_ready = matches!(new, Some((_, Health::Ready(_))));
            if !surging || step.is_none() {
                // Probe not reported yet, or the target revision failed before: the old
                // container serves on untouched; a leftover new container goes.
                old_row.phase = match old_h {
                    Health::Ready(_) => ReplicaPhase::Ready,
                    _ => ReplicaPhase::Starting,
                };
                requeue = requeue.min(if failed.is_some() { resync } else { BUSY_REQUEUE });
                replicas.push(old_row);
                match (new, failed.is_some()) {
                    (Some((c, _)), true) => {
                        let why = "its revision failed and was rolled back";
                        remove(ctx.runtime, ctx.events, &obj, index, &c, "RollbackRemoved", why).await;
                    }
                    (Some((c, h)), false) => {
                        let mut new_row = row;
                        fill(&mut new_row, &c);
                        new_row.phase = waiting_phase(&h);
                        replicas.push(new_row);
                    }
                    (None, _) => {}
                }
                continue;
            }
            requeue = requeue.min(BUSY_REQUEUE);
            match step.as_ref() {
                Some(Step::RollBack { .. }) => {
                    old_row.phase = ReplicaPhase::Ready;
                    replicas.push(old_row);
                    if let Some((c, _)) = new {
                        let why = "the new revision failed; rolling back to the old container";
                        remove(ctx.runtime, ctx.events, &obj, index, &c, "RollbackRemoved", why).await;
                    }
                    slot.surge_failure = None;
                    slot.retiring = None;
                }
                Some(Step::CutOver) if new_ready => {
                    let since = match &slot.retiring {
                        Some((id, since)) if *id == old_c.id => *since,
                        _ => {
                            ctx.events.emit(
                                Some(&obj),
                                Some(&replica_id),
                                EventType::Normal,
                                "ReplicaRetiring",
                                format!(
                                    "retiring container {} ({}): no new tasks; it goes once its tasks finish",
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
                        remove(ctx.runtime, ctx.events, &obj, index, &old_c, "ReplicaRetired", why).await;
                        slot.retiring = None;
                        retired += 1;
                    } else {
                        old_row.phase = ReplicaPhase::Draining;
                        replicas.push(old_row);
                    }
                    if let Some((c, Health::Ready(since))) = new {
                        let mut new_row = row;
                        fill(&mut new_row, &c);
                        ready(&mut new_row, slot, since, now);
                        replicas.push(new_row);
                    }
                }
                _ => {
                    // Progressing (or committed, with this index's new container not Ready):
                    // the old container serves; the new one is not offered to tasks yet.
                    if let Some((id, _)) = slot.retiring.take() {
                        ctx.gate.reopen(&id);
                    }
                    old_row.phase = ReplicaPhase::Ready;
                    replicas.push(old_row);
                    match new {
                        Some((c, Health::Failed(message))) => {
                            // Only after the cut-over began: a crash like any other.
                            fail(
                                ctx.runtime,
                                ctx.events,
                                &obj,
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
                            replicas.push(new_row);
                        }
                        None if slot.surge_failure.as_ref().is_some_and(|(h, _)| *h == hash) => {
                            // A failed create after the cut-over began: retried with backoff.
                            slot.surge_failure = None;
                            slot.backoff.record_failure(policy, now);
                        }
                        None if slot.backoff.may_attempt(now) => {
                            replicas.push(row);
                            to_create.push((index, replicas.len() - 1, spec, true));
                        }
                        None => {}
                    }
                }
            }
            continue;
        }

        // No old container: the plain replica lifecycle.
        let mut row = row;
        if let Some((c, h)) = new {
            fill(&mut row, &c);
            match h {
                Health::Ready(since) => {
                    ready(&mut row, slot, since, now);
                    replicas.push(row);
                    continue;
                }
                Health::Waiting(_) | Health::Unknown => {
                    row.phase = waiting_phase(&h);
                    requeue = requeue.min(BUSY_REQUEUE);
                    replicas.push(row);
                    continue;
                }
                Health::Failed(message) => {
                    fail(
                        ctx.runtime,
                        ctx.events,
                        &obj,
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
        let slot = ctx.slots.entry(index).or_default();
        if slot.backoff.may_attempt(now) {
            row.phase = ReplicaPhase::Starting;
            row.restarts = slot.restarts;
            replicas.push(row);
            to_create.push((index, replicas.len() - 1, spec, false));
        } else {
            let wait = slot.backoff.remaining(now).unwrap_or(BUSY_REQUEUE);
            requeue = requeue.min(wait.max(Duration::from_millis(20)));
            row.phase = if slot.backoff.circuit == CircuitState::Open {
                ReplicaPhase::CircuitOpen
            } else {
                ReplicaPhase::BackingOff
            };
            row.restarts = slot.restarts;
            replicas.push(row);
        }
    }

    if !to_create.is_empty() {
        requeue = requeue.min(BUSY_REQUEUE);
        let results = futures_util::future::join_all(
            to_create
                .iter()
                .map(|(_, _, spec, _)| ctx.runtime.create_and_start(spec)),
        )
        .await;
        for ((index, row, spec, surge), result) in to_create.into_iter().zip(results) {
            let slot = ctx.slots.entry(index).or_default();
            let replica_id = format!("{pool_name}-{index}");
            match result {
                Ok(c) => {
                    ctx.known.insert(c.id.clone());
                    let reason = if surge {
                        "RolloutReplicaCreated"
                    } else if slot.backoff.consecutive_failures > 0 {
                        "ReplicaRestarted"
                    } else {
                        "ReplicaCreated"
                    };
                    let alongside = if surge { ", alongside the old one" } else { "" };
                    ctx.events.emit(
                        Some(&obj),
                        Some(&replica_id),
                        EventType::Normal,
                        reason,
                        format!(
                            "started container {} ({}) from {}{alongside}",
                            c.name,
                            short(&c.id),
                            spec.image
                        ),
                    );
                    if let (Some(r), Some(port)) = (replicas.get_mut(row), c.host_port) {
                        let endpoint = format!("http://127.0.0.1:{port}");
                        ctx.probers.ensure(&c.id, &endpoint, health);
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
                            spec.labels.get(labels::SPEC_HASH_KEY).cloned().unwrap_or_default(),
                            message.clone(),
                        ));
                    } else {
                        slot.backoff.record_failure(policy, now);
                    }
                    ctx.events.emit(
                        Some(&obj),
                        Some(&replica_id),
                        EventType::Warning,
                        "CreateFailed",
                        format!("{message}; {}", next_attempt_text(&slot.backoff, now)),
                    );
                    status.last_error = Some(LastError {
                        message,
                        log_tail: Vec::new(),
                        at: now_rfc3339(),
                    });
                    if let Some(r) = replicas.get_mut(row) {
                        r.phase = ReplicaPhase::BackingOff;
                    }
                }
            }
        }
    }

    rollout::record(
        status,
        ctx.events,
        rollout::Record {
            obj: &obj,
            model: inputs.model.name(),
            surges: &surges,
            step: step.as_ref(),
            retired,
            olds_left,
        },
    );
    let rolled_back = rollout::failed_target(status, &targets).is_some();
    summarize(status, inputs.pool, &replicas, ctx.slots, now, rolled_back);
    if !refused.is_empty() {
        let message = refused.join("; ");
        // Nothing is on its way for a refused replica: not "starting" while the rest are Ready.
        if replicas.iter().all(|r| r.phase == ReplicaPhase::Ready) {
            conditions::set(
                status,
                ConditionType::Progressing,
                false,
                "InsufficientVram",
                message.clone(),
            );
        }
        conditions::set(status, ConditionType::Degraded, true, "InsufficientVram", message);
    }
    PoolOutcome { replicas, requeue }
}

/// Probes `c` (starting a prober on first sight, which for a container this process did not
/// create is an adoption) and says how it looks.
#[allow(clippy::too_many_arguments)]
fn assess(
    c: &ContainerInfo,
    probers: &mut Probers,
    known: &mut std::collections::HashSet<String>,
    events: &EventLog,
    obj: &ObjectRef,
    replica_id: &str,
    health: &HealthCheck,
    now: Instant,
) -> Health {
    let port = match (&c.state, c.host_port) {
        (s, Some(port)) if s.is_running() => port,
        (s, _) if s.is_running() => return Health::Failed("container runs but its port is not published".to_string()),
        (crate::runtime::ContainerState::Exited(code), _) => {
            return Health::Failed(format!("engine exited with code {code}"));
        }
        (other, _) => return Health::Failed(format!("engine container is {other:?}")),
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    if known.insert(c.id.clone()) {
        events.emit(
            Some(obj),
            Some(replica_id),
            EventType::Normal,
            "ReplicaAdopted",
            format!("adopted running container {} ({})", c.name, short(&c.id)),
        );
    }
    probers.ensure(&c.id, &endpoint, health);
    let startup = Duration::from_millis(health.startup_timeout_ms);
    match probers.state(&c.id) {
        Some(p) if p.healthy => Health::Ready(p.healthy_since),
        Some(p) if p.ever_healthy => {
            let failing = p.failing_since.map(|t| now.duration_since(t)).unwrap_or_default();
            if failing >= startup {
                Health::Failed(format!(
                    "engine stayed unhealthy for {} s: {}",
                    failing.as_secs(),
                    p.last_error.unwrap_or_default()
                ))
            } else {
                Health::Waiting(ReplicaPhase::Unhealthy)
            }
        }
        Some(p) => {
            let waited = now.duration_since(p.since);
            if waited >= startup {
                Health::Failed(format!(
                    "engine not healthy after {} s (startupTimeoutMs): {}",
                    waited.as_secs(),
                    p.last_error.unwrap_or_default()
                ))
            } else if p.consecutive_failures == 0 {
                Health::Unknown
            } else {
                Health::Waiting(ReplicaPhase::Starting)
            }
        }
        None => Health::Unknown,
    }
}

fn waiting_phase(h: &Health) -> ReplicaPhase {
    match h {
        Health::Waiting(phase) => *phase,
        _ => ReplicaPhase::Starting,
    }
}

/// Puts a container's id, name and endpoint on its row.
fn fill(row: &mut ReplicaStatus, c: &ContainerInfo) {
    row.container_id = Some(c.id.clone());
    row.container_name = Some(c.name.clone());
    row.endpoint = c.host_port.map(|p| format!("http://127.0.0.1:{p}"));
}

/// Marks a row Ready and lets the slot forget old failures once it has been stable.
fn ready(row: &mut ReplicaStatus, slot: &mut SlotMemory, since: Option<Instant>, now: Instant) {
    row.phase = ReplicaPhase::Ready;
    if let Some(since) = since {
        slot.backoff.observe_ready(since, now);
        row.ready_since = Some(rfc3339_ago(now.duration_since(since)));
    }
    row.restarts = slot.restarts;
}

/// A failed container: keep its last words, remove it, count a restart and back off.
#[allow(clippy::too_many_arguments)]
async fn fail<R: ContainerRuntime>(
    runtime: &Arc<R>,
    events: &EventLog,
    obj: &ObjectRef,
    index: u32,
    c: &ContainerInfo,
    message: &str,
    slot: &mut SlotMemory,
    status: &mut ObjectStatus,
    policy: &llorch_manifests::RestartSpec,
    now: Instant,
) {
    let replica_id = format!("{}-{index}", obj.name);
    let log_tail = runtime.logs_tail(&c.id, LOG_TAIL_LINES).await.unwrap_or_default();
    remove(runtime, events, obj, index, c, "EngineFailed", message).await;
    slot.backoff.record_failure(policy, now);
    slot.restarts += 1;
    status.restarts += 1;
    let last = log_tail.last().cloned().unwrap_or_default();
    events.emit(
        Some(obj),
        Some(&replica_id),
        EventType::Warning,
        "EngineCrashed",
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

/// Sets the Pool's conditions from its replicas and slots.
fn summarize(
    status: &mut ObjectStatus,
    pool: &Pool,
    replicas: &[ReplicaStatus],
    slots: &BTreeMap<u32, SlotMemory>,
    now: Instant,
    rolled_back: bool,
) {
    let desired = pool.spec.replicas;
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
        conditions::set(status, ConditionType::Ready, true, "ReplicasReady", counts.clone());
        conditions::set(
            status,
            ConditionType::Progressing,
            false,
            "ReplicasReady",
            counts.clone(),
        );
    } else {
        conditions::set(status, ConditionType::Ready, false, "ReplicasNotReady", counts.clone());
        conditions::set(
            status,
            ConditionType::Progressing,
            failing.is_empty(),
            "ReplicasStarting",
            counts.clone(),
        );
    }
    let degraded_failures = failing.iter().any(|_| ready < desired);
    if degraded_failures {
        let circuit_open = status.circuit == Some(CircuitState::Open);
        let reason = if circuit_open { "CircuitOpen" } else { "EngineCrashLoop" };
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
    } else if rolled_back {
        let message = status.rollout.as_ref().map(|r| r.message.clone()).unwrap_or_default();
        conditions::set(status, ConditionType::Degraded, true, "RolledBack", message);
    } else if !status.manifest_errors.is_empty() {
        let first = status.manifest_errors[0].to_string();
        conditions::set(
            status,
            ConditionType::Degraded,
            true,
            "ManifestInvalid",
            format!("running the last valid manifest; {first}"),
        );
    } else {
        conditions::set(status, ConditionType::Degraded, false, "AsExpected", counts);
    }
    if let Some(r) = status
        .rollout
        .as_ref()
        .filter(|r| matches!(r.phase, RolloutPhase::Progressing | RolloutPhase::Draining))
    {
        let message = r.message.clone();
        conditions::set(status, ConditionType::Progressing, true, "RollingOut", message);
    }
}

async fn remove<R: ContainerRuntime>(
    runtime: &Arc<R>,
    events: &EventLog,
    obj: &ObjectRef,
    index: u32,
    c: &ContainerInfo,
    reason: &str,
    why: &str,
) {
    let replica = format!("{}-{index}", obj.name);
    match runtime.remove(&c.id).await {
        Ok(()) => events.emit(
            Some(obj),
            Some(&replica),
            EventType::Normal,
            reason,
            format!("removed container {} ({}): {why}", c.name, short(&c.id)),
        ),
        Err(e) => events.emit(
            Some(obj),
            Some(&replica),
            EventType::Warning,
            "RemoveFailed",
            format!("cannot remove container {}: {e}", c.name),
        ),
    }
}

fn next_attempt_text(b: &SlotBackoff, now: Instant) -> String {
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

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", (nanos / 1_000) & 0xff_ffff_ffff)
}

fn rfc3339_ago(ago: Duration) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).unwrap_or_default();
    t.round(jiff::Unit::Millisecond)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
