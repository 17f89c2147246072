//! How one container looks this pass: serving, still starting, not heard from yet, or failed.
//! Starting a prober on first sight is how a container this process did not create gets
//! adopted. This module only reads state and starts probes; it never removes or creates.

use std::time::{Duration, Instant};

use llorch_manifests::status::{EventType, ReplicaPhase};
use llorch_manifests::{HealthCheck, ObjectRef};

use super::PoolContext;
use super::cleanup::short;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerState};

/// How a container looks this pass.
pub(super) enum Health {
    /// Its probe passes (since when, if known).
    Ready(Option<Instant>),
    /// Not Ready yet, within its startup timeout (or was Ready and fails below the limit).
    Waiting(ReplicaPhase),
    /// Its health probe has not reported yet (just adopted or created).
    Unknown,
    /// Exited, no port, or never/no longer healthy past the startup timeout.
    Failed(String),
}

/// Probes `c` (starting a prober on first sight, which for a container this process did not
/// create is an adoption) and says how it looks.
pub(super) fn assess<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    obj: &ObjectRef,
    replica_id: &str,
    c: &ContainerInfo,
    health: &HealthCheck,
    now: Instant,
) -> Health {
    let port = match serving_port(c) {
        Ok(port) => port,
        Err(why) => return Health::Failed(why),
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    if ctx.known.insert(c.id.clone()) {
        ctx.events.emit(
            Some(obj),
            Some(replica_id),
            EventType::Normal,
            "ReplicaAdopted",
            format!("adopted running container {} ({})", c.name, short(&c.id)),
        );
    }
    ctx.probers.ensure(&c.id, &endpoint, health);
    let startup = Duration::from_millis(health.startup_timeout_ms);
    match ctx.probers.state(&c.id) {
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

/// The host port of a running container, or why it cannot serve, as a sentence.
fn serving_port(c: &ContainerInfo) -> Result<u16, String> {
    match (&c.state, c.host_port) {
        (s, Some(port)) if s.is_running() => Ok(port),
        (s, _) if s.is_running() => Err("container runs but its port is not published".to_string()),
        (ContainerState::Exited(code), _) => Err(format!("engine exited with code {code}")),
        (other, _) => Err(format!("engine container is {other:?}")),
    }
}

/// The phase of a container that is neither Ready nor failed.
pub(super) fn waiting_phase(h: &Health) -> ReplicaPhase {
    match h {
        Health::Waiting(phase) => *phase,
        _ => ReplicaPhase::Starting,
    }
}
