//! Reconciling one Pool: compare its replica slots with the containers that carry its labels,
//! then create, adopt, restart (with backoff) or remove until they match. Level-triggered:
//! everything is decided from what is observed now plus the per-slot backoff memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llorch_manifests::status::{
    CircuitState, ConditionType, EventType, LastError, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus,
};
use llorch_manifests::{Engine, Model, ObjectRef, Pool};

use crate::backoff::SlotBackoff;
use crate::conditions;
use crate::labels;
use crate::probe::Probers;
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::spec::{ReplicaInputs, assign_gpus};
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
    /// Whether GPUs are simulated.
    pub gpus_simulated: bool,
}

/// What one pool reconcile produced.
pub struct PoolOutcome {
    /// Replica statuses.
    pub replicas: Vec<ReplicaStatus>,
    /// When to look again.
    pub requeue: Duration,
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

    let mut replicas = Vec::new();
    let mut to_create = Vec::new();
    for index in 0..desired {
        let replica_id = format!("{pool_name}-{index}");
        let gpus = match assign_gpus(inputs.gpu_selection, inputs.pool.spec.gpus_per_replica, index) {
            Ok(g) => g,
            Err(e) => {
                conditions::set_failed(status, "GpuPlacementFailed", e);
                continue;
            }
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
        let hash = ri.spec_hash();
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
        for c in &outdated {
            let why = "its spec changed; replacing it";
            remove(ctx.runtime, ctx.events, &obj, index, c, "ReplicaOutdated", why).await;
        }
        // Keep one container per slot, a running one if there is one.
        let keep = matching
            .iter()
            .position(|c| c.state.is_running())
            .or((!matching.is_empty()).then_some(0));
        for (_, c) in matching.iter().enumerate().filter(|(i, _)| Some(*i) != keep) {
            let why = "a second container for this replica";
            remove(ctx.runtime, ctx.events, &obj, index, c, "DuplicateRemoved", why).await;
        }
        let current = keep.and_then(|i| matching.into_iter().nth(i));
        let mut replica = ReplicaStatus {
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
        if let Some(c) = current {
            let failure = match (&c.state, c.host_port) {
                (s, Some(port)) if s.is_running() => {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    if ctx.known.insert(c.id.clone()) {
                        ctx.events.emit(
                            Some(&obj),
                            Some(&replica_id),
                            EventType::Normal,
                            "ReplicaAdopted",
                            format!("adopted running container {} ({})", c.name, short(&c.id)),
                        );
                    }
                    ctx.probers.ensure(&c.id, &endpoint, health);
                    replica.container_id = Some(c.id.clone());
                    replica.container_name = Some(c.name.clone());
                    replica.endpoint = Some(endpoint);
                    let probe = ctx.probers.state(&c.id);
                    match probe {
                        Some(p) if p.healthy => {
                            replica.phase = ReplicaPhase::Ready;
                            if let Some(since) = p.healthy_since {
                                slot.backoff.observe_ready(since, now);
                                replica.ready_since = Some(rfc3339_ago(now.duration_since(since)));
                            }
                            None
                        }
                        Some(p) if p.ever_healthy => {
                            replica.phase = ReplicaPhase::Unhealthy;
                            requeue = requeue.min(BUSY_REQUEUE);
                            let failing = p.failing_since.map(|t| now.duration_since(t)).unwrap_or_default();
                            (failing >= Duration::from_millis(health.startup_timeout_ms)).then(|| {
                                format!(
                                    "engine stayed unhealthy for {} s: {}",
                                    failing.as_secs(),
                                    p.last_error.unwrap_or_default()
                                )
                            })
                        }
                        Some(p) => {
                            requeue = requeue.min(BUSY_REQUEUE);
                            let waited = now.duration_since(p.since);
                            (waited >= Duration::from_millis(health.startup_timeout_ms)).then(|| {
                                format!(
                                    "engine not healthy after {} s (startupTimeoutMs): {}",
                                    waited.as_secs(),
                                    p.last_error.unwrap_or_default()
                                )
                            })
                        }
                        None => {
                            requeue = requeue.min(BUSY_REQUEUE);
                            None
                        }
                    }
                }
                (s, _) if s.is_running() => Some("container runs but its port is not published".to_string()),
                (crate::runtime::ContainerState::Exited(code), _) => Some(format!("engine exited with code {code}")),
                (other, _) => Some(format!("engine container is {other:?}")),
            };
            match failure {
                None => {
                    replicas.push(replica);
                    continue;
                }
                Some(message) => {
                    let log_tail = ctx.runtime.logs_tail(&c.id, LOG_TAIL_LINES).await.unwrap_or_default();
                    remove(ctx.runtime, ctx.events, &obj, index, &c, "EngineFailed", &message).await;
                    slot.backoff.record_failure(policy, now);
                    slot.restarts += 1;
                    status.restarts += 1;
                    let last = log_tail.last().cloned().unwrap_or_default();
                    ctx.events.emit(
                        Some(&obj),
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
                    replica.container_id = None;
                    replica.container_name = None;
                    replica.endpoint = None;
                }
            }
        }
        // No usable container: create one when the backoff allows.
        if slot.backoff.may_attempt(now) {
            to_create.push((index, replica_id.clone(), ri.container_spec(&unique_suffix())));
            replica.phase = ReplicaPhase::Starting;
        } else {
            let wait = slot.backoff.remaining(now).unwrap_or(BUSY_REQUEUE);
            requeue = requeue.min(wait.max(Duration::from_millis(20)));
            replica.phase = if slot.backoff.circuit == CircuitState::Open {
                ReplicaPhase::CircuitOpen
            } else {
                ReplicaPhase::BackingOff
            };
        }
        replica.restarts = slot.restarts;
        replicas.push(replica);
    }

    if !to_create.is_empty() {
        requeue = requeue.min(BUSY_REQUEUE);
        let results =
            futures_util::future::join_all(to_create.iter().map(|(_, _, spec)| ctx.runtime.create_and_start(spec)))
                .await;
        for ((index, replica_id, spec), result) in to_create.into_iter().zip(results) {
            let slot = ctx.slots.entry(index).or_default();
            let replica = replicas.iter_mut().find(|r| r.index == index);
            match result {
                Ok(c) => {
                    ctx.known.insert(c.id.clone());
                    let reason = if slot.backoff.consecutive_failures > 0 {
                        "ReplicaRestarted"
                    } else {
                        "ReplicaCreated"
                    };
                    ctx.events.emit(
                        Some(&obj),
                        Some(&replica_id),
                        EventType::Normal,
                        reason,
                        format!("started container {} ({}) from {}", c.name, short(&c.id), spec.image),
                    );
                    if let (Some(r), Some(port)) = (replica, c.host_port) {
                        let endpoint = format!("http://127.0.0.1:{port}");
                        ctx.probers.ensure(&c.id, &endpoint, health);
                        r.container_id = Some(c.id.clone());
                        r.container_name = Some(c.name.clone());
                        r.endpoint = Some(endpoint);
                    }
                }
                Err(e) => {
                    slot.backoff.record_failure(policy, now);
                    let message = format!("cannot start replica {replica_id}: {e}");
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
                    if let Some(r) = replica {
                        r.phase = ReplicaPhase::BackingOff;
                    }
                }
            }
        }
    }

    summarize(status, inputs.pool, &replicas, ctx.slots, now);
    PoolOutcome { replicas, requeue }
}

/// Sets the Pool's conditions from its replicas and slots.
fn summarize(
    status: &mut ObjectStatus,
    pool: &Pool,
    replicas: &[ReplicaStatus],
    slots: &BTreeMap<u32, SlotMemory>,
    now: Instant,
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
