//! How one container looks this pass: serving, still starting, not heard from yet, or failed.
//! Starting a prober on first sight is how a container this process did not create gets
//! adopted. This module only reads state and starts probes; it never removes or creates.

use std::time::{Duration, Instant};

use llorch_manifests::status::{EventType, ReplicaPhase};
use llorch_manifests::{Endpoint, EngineSpec, ObjectRef, Reason, ReplicaId};

use super::PoolContext;
use super::cleanup::{noun, short};
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
    /// Its probe passes but its processes are not on its GPU past the grace (why, with the
    /// fix): not Ready, left running. Only `on_gpu::vet` makes it.
    NotOnGpu(String),
}

/// Probes `c` (starting a prober on first sight, which for a container this process did not
/// create is an adoption) and says how it looks.
pub(super) fn assess<R: ContainerRuntime>(
    ctx: &mut PoolContext<'_, R>,
    obj: &ObjectRef,
    replica_id: &ReplicaId,
    c: &ContainerInfo,
    engine: &EngineSpec,
    now: Instant,
) -> Health {
    let port = match serving_port(c) {
        Ok(port) => port,
        Err(why) => return Health::Failed(why.to_string()),
    };
    let endpoint = Endpoint::loopback(port);
    if ctx.known.insert(c.id.clone()) {
        ctx.events.emit(
            Some(obj),
            Some(replica_id),
            EventType::Normal,
            Reason::ReplicaAdopted,
            format!("adopted running {} {} ({})", noun(c), c.name, short(&c.id)),
        );
    }
    let health = &engine.health;
    ctx.probers.ensure(&c.id, &endpoint, health, engine.api);
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

/// Why a container cannot serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotServing {
    /// It runs, without a published port.
    #[error("{noun} runs but its port is not published")]
    NoPort {
        /// "container" or "process".
        noun: &'static str,
    },
    /// It exited.
    #[error("engine exited with code {code}")]
    Exited {
        /// Its exit code.
        code: i64,
    },
    /// It is in another state than running.
    #[error("engine {noun} is {state}")]
    NotRunning {
        /// "container" or "process".
        noun: &'static str,
        /// The state.
        state: ContainerState,
    },
}

/// The host port of a running container, or why it cannot serve.
fn serving_port(c: &ContainerInfo) -> Result<u16, NotServing> {
    match (&c.state, c.host_port) {
        (s, Some(port)) if s.is_running() => Ok(port),
        (s, _) if s.is_running() => Err(NotServing::NoPort { noun: noun(c) }),
        (ContainerState::Exited(code), _) => Err(NotServing::Exited { code: *code }),
        (other, _) => Err(NotServing::NotRunning {
            noun: noun(c),
            state: other.clone(),
        }),
    }
}

/// The phase of a container that is neither Ready nor failed.
pub(super) fn waiting_phase(h: &Health) -> ReplicaPhase {
    match h {
        Health::Waiting(phase) => *phase,
        Health::NotOnGpu(_) => ReplicaPhase::NotOnGpu,
        _ => ReplicaPhase::Starting,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::runtime::process::{GONE, ID_PREFIX};

    fn info(id: &str, state: ContainerState, host_port: Option<u16>) -> ContainerInfo {
        ContainerInfo {
            id: id.to_string(),
            name: "llorch-test-chat-0".to_string(),
            labels: BTreeMap::new(),
            state,
            host_port,
        }
    }

    #[test]
    fn a_dead_process_replica_fails_with_a_sentence_that_names_a_process() {
        let c = info(
            &format!("{ID_PREFIX}abc"),
            ContainerState::Other(GONE.to_string()),
            None,
        );
        let why = serving_port(&c).unwrap_err().to_string();
        assert_eq!(why, format!("engine process is {GONE}"));
        assert!(!why.contains("Other("), "{why}");
    }

    #[test]
    fn a_container_that_is_not_running_fails_with_its_state_in_words() {
        let c = info("abc123", ContainerState::Other("paused".into()), None);
        assert_eq!(serving_port(&c).unwrap_err().to_string(), "engine container is paused");
        let c = info("abc123", ContainerState::Restarting, None);
        assert_eq!(
            serving_port(&c).unwrap_err().to_string(),
            "engine container is restarting"
        );
        let c = info("abc123", ContainerState::Exited(3), None);
        assert_eq!(serving_port(&c).unwrap_err().to_string(), "engine exited with code 3");
    }

    #[test]
    fn a_running_replica_without_a_port_names_its_kind() {
        let c = info(&format!("{ID_PREFIX}abc"), ContainerState::Running, None);
        assert_eq!(
            serving_port(&c).unwrap_err().to_string(),
            "process runs but its port is not published"
        );
        let c = info("abc123", ContainerState::Running, None);
        assert_eq!(
            serving_port(&c).unwrap_err().to_string(),
            "container runs but its port is not published"
        );
        let c = info("abc123", ContainerState::Running, Some(8080));
        assert_eq!(serving_port(&c), Ok(8080));
    }
}
