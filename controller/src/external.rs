//! `external` Engines: the Engine's `url` is an engine someone else runs. Its Pool has exactly
//! one replica (validation refuses more), that URL, probed with the Engine's health check like
//! any replica; llama-orch never starts or stops it. Ready / NotReady, conditions and events
//! follow the probe, as for containers. This module decides a Pool's replica and conditions
//! from what the probe has seen; the controller owns the prober and the status files.

use std::time::Duration;

use llorch_manifests::hash::short_hash;
use llorch_manifests::status::{ConditionType, ObjectStatus, ReplicaCounts, ReplicaPhase, ReplicaStatus};
use llorch_manifests::{AnyObject, Endpoint, Engine, Kind, Pool, Provisioning, Reason, ReplicaId};

use crate::conditions;
use crate::manifest_store::DesiredState;
use crate::probe::Probers;

/// How often a Pool on an external engine is looked at while it is not Ready.
pub const NOT_READY_REQUEUE: Duration = Duration::from_millis(250);

/// The probe key of Pool `pool`'s external replica (kept apart from container ids).
pub fn probe_id(pool: &str) -> String {
    format!("external-{pool}")
}

/// Pool `pool`'s Engine, when it is an `external` one.
pub fn engine_of(desired: &DesiredState, pool: &Pool) -> Option<Engine> {
    match desired.get(Kind::Engine, &pool.spec.engine).map(|e| &e.object) {
        Some(AnyObject::Engine(e)) if e.spec.provisioning == Provisioning::External => Some(e.clone()),
        _ => None,
    }
}

/// What one external Pool reconcile produced.
pub struct ExternalOutcome {
    /// Its one replica.
    pub replica: ReplicaStatus,
    /// The prober key to keep alive.
    pub probe_id: String,
    /// When to look again.
    pub requeue: Duration,
}

/// Probes `engine.url` for `pool` and sets the Pool's replica counts and conditions.
pub fn reconcile(probers: &mut Probers, pool: &Pool, engine: &Engine, status: &mut ObjectStatus) -> ExternalOutcome {
    let url = Endpoint::external(engine.spec.url.as_deref().unwrap_or_default());
    let id = probe_id(pool.name());
    probers.ensure(&id, &url, &engine.spec.health, engine.spec.api);
    let probe = probers.state(&id);
    let healthy = probe.as_ref().is_some_and(|p| p.healthy);
    let ever = probe.as_ref().is_some_and(|p| p.ever_healthy);
    let kv_cache_usage_ratio = probe.as_ref().and_then(|p| p.kv_cache_usage_ratio);
    let last_error = probe.and_then(|p| p.last_error).unwrap_or_default();
    let phase = match (healthy, ever) {
        (true, _) => ReplicaPhase::Ready,
        (false, true) => ReplicaPhase::Unhealthy,
        (false, false) => ReplicaPhase::Starting,
    };
    status.replicas = Some(ReplicaCounts {
        desired: 1,
        ready: u32::from(healthy),
    });
    if healthy {
        let msg = format!("external engine at {url} answers {}", engine.spec.health.path);
        conditions::set_healthy(status, Reason::ExternalReady, msg);
    } else {
        let msg = format!("external engine at {url} is not healthy: {last_error}");
        conditions::set(
            status,
            ConditionType::Ready,
            false,
            Reason::ExternalNotReady,
            msg.clone(),
        );
        conditions::set(
            status,
            ConditionType::Progressing,
            !ever,
            Reason::ExternalNotReady,
            msg.clone(),
        );
        // Once it has served, losing it is a degradation; before that it is still coming up.
        conditions::set(status, ConditionType::Degraded, ever, Reason::ExternalNotReady, msg);
    }
    ExternalOutcome {
        replica: ReplicaStatus {
            id: ReplicaId::new(pool.name(), 0),
            pool: pool.name().to_string(),
            index: 0,
            phase,
            container_id: None,
            container_name: None,
            endpoint: Some(url.clone()),
            gpus: Vec::new(),
            gpus_simulated: false,
            engine_version: engine.spec.version.clone(),
            spec_hash: short_hash(&(url.as_str(), &engine.spec.health.path)),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio,
        },
        probe_id: id,
        requeue: if healthy { Duration::MAX } else { NOT_READY_REQUEUE },
    }
}
