//! The engine's container in a pod: its image and filled arguments (the same expansion as a
//! llama-orch container, [`llorch_controller::spec::engine_args`]), its port, its environment
//! (hidden values from a Secret, never written out), its GPUs as `nvidia.com/gpu`, and the
//! Engine's health check as startup, readiness and liveness probes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Probe, ResourceRequirements, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llorch_controller::spec::{Placeholders, engine_args};
use llorch_manifests::HealthCheck;
use llorch_manifests::secrets::{EnvValue, is_secret_name};

use super::PoolParts;
use super::model_volume::ModelVolume;
use super::names;

/// The extended resource NVIDIA's device plugin offers.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The port's name in the pod and the Service.
pub const PORT_NAME: &str = "http";

/// An environment variable the pod takes from a Secret, for the user to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretKey {
    /// The Secret.
    pub secret: String,
    /// The key (the variable's name).
    pub key: String,
}

/// The engine container of `parts`' pods, and the Secret keys it needs.
pub fn engine_container(parts: &PoolParts<'_>, model: &ModelVolume) -> (Container, Vec<SecretKey>) {
    let engine = &parts.engine.spec;
    let port = engine.port.to_string();
    let args = engine_args(
        engine,
        &parts.pool.spec,
        &Placeholders {
            model_path: &model.path_in_container(),
            port: &port,
            ctx_size: parts.pool.spec.effective_ctx(&parts.model.spec),
            host: "0.0.0.0",
        },
    );
    let mut secrets = Vec::new();
    let env = engine
        .env
        .iter()
        .map(|(name, value)| match value {
            EnvValue::Literal(v) if !is_secret_name(name) => EnvVar {
                name: name.clone(),
                value: Some(v.clone()),
                ..EnvVar::default()
            },
            _ => {
                let secret = names::engine_secret(parts.engine.name());
                secrets.push(SecretKey {
                    secret: secret.clone(),
                    key: name.clone(),
                });
                EnvVar {
                    name: name.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret,
                            key: name.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                }
            }
        })
        .collect::<Vec<_>>();
    let gpus = BTreeMap::from([(
        GPU_RESOURCE.to_string(),
        Quantity(parts.pool.spec.gpus_per_replica.to_string()),
    )]);
    let probes = Probes::of(&engine.health);
    let container = Container {
        name: "engine".into(),
        image: engine.image.clone(),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: i32::from(engine.port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: (!env.is_empty()).then_some(env),
        resources: Some(ResourceRequirements {
            limits: Some(gpus),
            ..ResourceRequirements::default()
        }),
        startup_probe: Some(probes.startup),
        readiness_probe: Some(probes.readiness),
        liveness_probe: Some(probes.liveness),
        volume_mounts: Some(vec![model.engine_mount()]),
        ..Container::default()
    };
    (container, secrets)
}

/// The three probes made from one health check.
#[derive(Clone, Debug, PartialEq)]
pub struct Probes {
    /// Until the first success: `startupTimeoutMs` worth of periods.
    pub startup: Probe,
    /// In and out of the Service, after `failureThreshold` misses (llama-orch takes a Ready
    /// replica out of service the same way).
    pub readiness: Probe,
    /// Restarted after `failureThreshold` misses (llama-orch restarts a crashed replica).
    pub liveness: Probe,
}

impl Probes {
    /// Probes on the `http` port at `health.path`. Kubernetes counts whole seconds: the
    /// interval and timeout are rounded up to at least one.
    pub fn of(health: &HealthCheck) -> Probes {
        let period = secs(health.interval_ms);
        let probe = |failures: u64| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(health.path.clone()),
                port: IntOrString::String(PORT_NAME.into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(period),
            timeout_seconds: Some(secs(health.timeout_ms)),
            failure_threshold: Some(i32::try_from(failures.max(1)).unwrap_or(i32::MAX)),
            ..Probe::default()
        };
        let startup_failures = health
            .startup_timeout_ms
            .div_ceil(u64::from(period.unsigned_abs()) * 1000);
        Probes {
            startup: probe(startup_failures),
            readiness: probe(u64::from(health.failure_threshold)),
            liveness: probe(u64::from(health.failure_threshold)),
        }
    }
}

/// Milliseconds as whole seconds, rounded up, at least 1.
fn secs(ms: u64) -> i32 {
    i32::try_from(ms.div_ceil(1000).max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_up_to_whole_seconds_and_cover_the_startup_timeout() {
        let health = HealthCheck {
            path: "/health".into(),
            interval_ms: 200,
            timeout_ms: 1500,
            startup_timeout_ms: 600_000,
            failure_threshold: 3,
        };
        let p = Probes::of(&health);
        assert_eq!(p.readiness.period_seconds, Some(1));
        assert_eq!(p.readiness.timeout_seconds, Some(2));
        assert_eq!(p.readiness.failure_threshold, Some(3));
        assert_eq!(p.startup.failure_threshold, Some(600));
        let path = p.liveness.http_get.unwrap().path;
        assert_eq!(path.as_deref(), Some("/health"));
    }
}
