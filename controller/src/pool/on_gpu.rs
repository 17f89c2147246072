//! The NotOnGpu check in a pool's pass: for a container whose engine is Ready, ask the runtime
//! for its pids, look for them on each GPU it was placed on ([`crate::on_gpu`]), and keep per
//! container when it became Ready, whether it is out of service, and which GPUs were reported
//! as unchecked. Emits `NotOnGpu` (Warning) and `OnGpu` on each change and `OnGpuUnchecked`
//! once per container and GPU; never removes or restarts anything — a NotOnGpu container is
//! left running for its logs, it is only not Ready.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use llorch_manifests::identity::gpus_of;
use llorch_manifests::status::EventType;
use llorch_manifests::{ObjectRef, Reason, ReplicaId};

use super::health::Health;
use super::{PoolContext, PoolInputs};
use crate::on_gpu::{self, Decision, Fix, OnDevice};
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::state_dir::EventLog;

/// What the check remembers of one container across passes.
#[derive(Debug)]
pub struct Watch {
    /// When its engine was first seen Ready: the grace runs from here.
    ready_at: Instant,
    /// Marked NotOnGpu (so the change back is announced once).
    not_on_gpu: bool,
    /// GPUs already reported as not checkable.
    told_unchecked: BTreeSet<u32>,
    /// Already reported that none of its processes can be seen.
    told_no_pids: bool,
    /// Its pids as last read from the runtime: while they are still on its GPUs, the next
    /// pass looks them up again without asking the runtime or scanning `/proc`.
    pids: Vec<u32>,
}

/// A health after the check, and when to look again to end a grace period on time.
pub(super) struct Vetted {
    pub health: Health,
    pub recheck_in: Option<Duration>,
}

/// Checks a container its probe calls Ready; any other health passes through unchanged, and
/// so does every health when the Pool's GPUs do not come from NVML (`on_gpu_grace` is none).
pub(super) async fn vet<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    (obj, replica, index): (&ObjectRef, &ReplicaId, u32),
    c: &ContainerInfo,
    health: Health,
    now: Instant,
) -> Vetted {
    let pass_through = |health| Vetted {
        health,
        recheck_in: None,
    };
    let (Health::Ready(since), Some(grace)) = (&health, inputs.on_gpu_grace) else {
        return pass_through(health);
    };
    let since = *since;
    let placed = gpus_of(&c.labels);
    if placed.is_empty() {
        return pass_through(health);
    }
    // The steady state — on its GPUs last pass, and its pids still are — costs no inspect
    // call and no /proc scan: this runs on every pass for every Ready replica.
    if settled(ctx, inputs, (index, c), &placed, grace) {
        return pass_through(health);
    }
    let pids = match ctx.runtime.pids(&c.id).await {
        Ok(pids) => pids,
        Err(e) => {
            tracing::warn!(replica = %replica, container = %c.id, error = %e, "cannot list the replica's processes; whether it is on its GPU is not checked this pass");
            return pass_through(health);
        }
    };
    let slot = ctx.slots.entry(index).or_default();
    let watch = slot.on_gpu.entry(c.id.clone()).or_insert_with(|| Watch {
        ready_at: since.unwrap_or(now),
        not_on_gpu: false,
        told_unchecked: BTreeSet::new(),
        told_no_pids: false,
        pids: Vec::new(),
    });
    watch.pids.clone_from(&pids);
    if pids.is_empty() {
        // It answers, so it runs: its processes are just not visible from here.
        if !std::mem::replace(&mut watch.told_no_pids, true) {
            unchecked(
                ctx.events,
                (obj, replica),
                format!(
                    "cannot check that replica {replica} computes on its GPUs: the runtime names no process of \
                     it in this host's /proc (is llama-orchd in another PID namespace than the engines?); not checked"
                ),
            );
        }
        return pass_through(health);
    }
    let findings = on_gpu::look(&pids, &placed, inputs.gpus);
    report_unchecked(ctx.events, (obj, replica), watch, &findings);
    let ready_for = now.saturating_duration_since(watch.ready_at);
    let decision = on_gpu::decide(&findings, inputs.weights_bytes, ready_for, grace);
    act_on(ctx.events, inputs, (obj, replica), watch, &pids, health, decision)
}

/// The steady state: the container was on its GPUs last pass and the pids read then still
/// are, looked up without asking the runtime.
fn settled<R: ContainerRuntime>(
    ctx: &PoolContext<'_, R>,
    inputs: &PoolInputs<'_>,
    (index, c): (u32, &ContainerInfo),
    placed: &[u32],
    grace: Duration,
) -> bool {
    ctx.slots
        .get(&index)
        .and_then(|s| s.on_gpu.get(&c.id))
        .filter(|w| !w.not_on_gpu && !w.pids.is_empty())
        .is_some_and(|w| {
            let findings = on_gpu::look(&w.pids, placed, inputs.gpus);
            on_gpu::decide(&findings, inputs.weights_bytes, grace, grace) == Decision::OnGpu
        })
}

/// Reports each GPU of `findings` that cannot be checked, once per container and GPU.
fn report_unchecked(
    events: &EventLog,
    (obj, replica): (&ObjectRef, &ReplicaId),
    watch: &mut Watch,
    findings: &[on_gpu::Finding],
) {
    for f in findings {
        if let OnDevice::Unchecked(why) = &f.on
            && watch.told_unchecked.insert(f.index)
        {
            let gpu = on_gpu::gpu_name(f.index, &f.uuid);
            unchecked(
                events,
                (obj, replica),
                format!(
                    "cannot check that replica {replica} computes on {gpu}: {why}; the check is skipped for this GPU"
                ),
            );
        }
    }
}

/// Turns `decision` into the replica's health, announcing a change of NotOnGpu either way
/// once.
fn act_on(
    events: &EventLog,
    inputs: &PoolInputs<'_>,
    (obj, replica): (&ObjectRef, &ReplicaId),
    watch: &mut Watch,
    pids: &[u32],
    health: Health,
    decision: Decision,
) -> Vetted {
    let pass_through = |health| Vetted {
        health,
        recheck_in: None,
    };
    match decision {
        Decision::OnGpu => {
            if std::mem::take(&mut watch.not_on_gpu) {
                let message = format!("replica {replica} computes on its GPU again (pids {pids:?}); Ready");
                events.emit(Some(obj), Some(replica), EventType::Normal, Reason::OnGpu, message);
            }
            pass_through(health)
        }
        Decision::Unconfirmed { left } => Vetted {
            health,
            // Just past the grace, so that pass decides.
            recheck_in: Some(left + Duration::from_millis(10)),
        },
        Decision::NotOnGpu(why) => {
            let fix = Fix::for_shortfall(&inputs.engine.spec, &why);
            let message = on_gpu::not_on_gpu_message(replica, inputs.pool.name(), &why, pids, fix);
            if !std::mem::replace(&mut watch.not_on_gpu, true) {
                tracing::warn!(replica = %replica, "{message}");
                events.emit(
                    Some(obj),
                    Some(replica),
                    EventType::Warning,
                    Reason::NotOnGpu,
                    message.clone(),
                );
            }
            pass_through(Health::NotOnGpu(message))
        }
    }
}

/// Logs and emits one `OnGpuUnchecked` event: the check cannot decide, so the replica serves.
fn unchecked(events: &EventLog, (obj, replica): (&ObjectRef, &ReplicaId), message: String) {
    tracing::info!(replica = %replica, "{message}");
    events.emit(
        Some(obj),
        Some(replica),
        EventType::Normal,
        Reason::OnGpuUnchecked,
        message,
    );
}
