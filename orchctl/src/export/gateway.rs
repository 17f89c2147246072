//! `--with-gateway`: llama-orchd itself in the cluster, as the data plane in front of the
//! exported Pools — the task API, priority queues, 429s with retry advice and SSE, unchanged.
//! Its config (`gpus: none`: no GPUs, no runtime; it only runs Pools on `external` Engines)
//! and its manifests travel in one ConfigMap: per exported Pool, an `external` Engine named
//! after the Pool whose `url` is that Pool's Service, the Model as declared, and a Pool of one
//! replica holding the slots of all the Deployment's replicas (the Service spreads them).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llorch_controller::spec::MODEL_DIR_IN_CONTAINER;
use llorch_manifests::model::ModelRef;
use llorch_manifests::{API_VERSION, Model, Pool};
use serde_json::json;

use super::Options;
use super::kubernetes::Upstream;
use super::names::{self, GATEWAY, GATEWAY_APP, Labels, key};
use llorch_manifests::Engine;

/// The port llama-orchd listens on in its pod.
pub const PORT: u16 = 8080;
/// Where the ConfigMap is mounted: `config.yaml` and `manifests/`.
pub const CONFIG_DIR: &str = "/etc/llama-orch";
/// `LLAMA_ORCH_HOME` in the pod: its state (events, status, records), on an `emptyDir`.
pub const HOME: &str = "/var/lib/llama-orch";

/// The gateway's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    /// llama-orchd's image.
    pub image: String,
}

/// One exported Pool as the gateway serves it.
#[derive(Clone, Debug)]
pub struct GatewayPool<'a> {
    /// The Pool as declared.
    pub pool: &'a Pool,
    /// Its Engine as declared.
    pub engine: &'a Engine,
    /// Its Model as declared.
    pub model: &'a Model,
    /// Where the exported Pool answers.
    pub upstream: Upstream,
}

/// The gateway's manifests, as `(file name, YAML)`: what its ConfigMap mounts in `manifests/`.
pub fn manifests(pools: &[GatewayPool<'_>]) -> Vec<(String, String)> {
    let mut files = BTreeMap::new();
    for p in pools {
        let name = p.pool.name();
        let engine = json!({
            "apiVersion": API_VERSION, "kind": "Engine",
            "metadata": {"name": name},
            "spec": {
                "provisioning": "external",
                "url": p.upstream.url,
                "version": p.engine.spec.version,
                "api": p.engine.spec.api,
                "health": p.engine.spec.health,
            }
        });
        // The gateway never reads the file (its engine loads it): a `file:` ref names where
        // the engine pods see it, not a path on the machine that exported it.
        let mut model = p.model.clone();
        if let Ok(ModelRef::File(path)) = model.spec.parse_ref() {
            let file = path.rsplit('/').next().unwrap_or(path).to_string();
            model.spec.reference = format!("file:{MODEL_DIR_IN_CONTAINER}/{file}");
        }
        let model = serde_json::to_value(&model).unwrap_or_default();
        let spec = &p.pool.spec;
        let mut pool = json!({
            "engine": name,
            "model": p.model.name(),
            "replicas": 1,
            "slotsPerReplica": (p.upstream.replicas.max(1)).saturating_mul(spec.slots_per_replica),
            "ctxSize": spec.effective_ctx(&p.model.spec),
            "queue": spec.queue,
            "sessions": spec.sessions,
            "records": spec.records,
            "workload": spec.workload,
            "priority": spec.priority,
        });
        if let Some(m) = pool.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        let pool = json!({
            "apiVersion": API_VERSION, "kind": "Pool",
            "metadata": p.pool.metadata,
            "spec": pool,
        });
        files.insert(format!("engine-{name}.yaml"), engine);
        files.insert(format!("model-{}.yaml", p.model.name()), model);
        files.insert(format!("pool-{name}.yaml"), pool);
    }
    files
        .into_iter()
        .map(|(file, v)| (file, serde_saphyr::to_string(&v).unwrap_or_default()))
        .collect()
}

/// The gateway's `config.yaml`.
pub fn config(namespace: Option<&str>) -> String {
    let mut hosts = vec![GATEWAY.to_string()];
    if let Some(ns) = namespace {
        for suffix in ["", ".svc", ".svc.cluster.local"] {
            hosts.push(format!("{GATEWAY}.{ns}{suffix}"));
        }
    }
    format!(
        "# llama-orchd as the data plane in front of the exported Pools (orchctl export kubernetes\n\
         # --with-gateway; docs/kubernetes.md). It has no GPUs and no container runtime: it runs\n\
         # only Pools on `external` Engines, which point at the engines' Services.\n\
         bind: 0.0.0.0:{PORT}\n\
         instance: gateway\n\
         gpus: none\n\
         manifestsDir: manifests\n\
         # The engines load their own models; the gateway never downloads one.\n\
         models:\n  downloads: false\n\
         # The names clients use to reach it; add your Ingress host here.\n\
         allowedHosts: [{}]\n\
         # Every request needs a token: LLAMA_ORCH_TOKEN, from Secret `{}`.\n",
        hosts.join(", "),
        names::GATEWAY_TOKEN_SECRET
    )
}

/// The ConfigMap, Deployment and Service of the gateway.
pub fn objects(pools: &[GatewayPool<'_>], options: &Options, gateway: &GatewayOptions) -> Vec<serde_json::Value> {
    let ns = options.namespace.as_deref();
    let labels = Labels::common(GATEWAY_APP, GATEWAY);
    let selector = BTreeMap::from([
        (key::NAME.to_string(), GATEWAY_APP.to_string()),
        (key::INSTANCE.to_string(), GATEWAY.to_string()),
    ]);
    let (config_map, items) = config_map(pools, ns, &labels);
    let container = container(gateway);
    let deployment = deployment(ns, &labels, &selector, container, items);
    let service = service(ns, &labels, selector);
    [
        serde_json::to_value(&config_map),
        serde_json::to_value(&deployment),
        serde_json::to_value(&service),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect()
}

/// The ConfigMap holding the gateway's `config.yaml` and the Pools' manifests, and where its
/// volume lays each key out.
fn config_map(pools: &[GatewayPool<'_>], ns: Option<&str>, labels: &Labels) -> (ConfigMap, Vec<KeyToPath>) {
    let manifests = manifests(pools);
    let mut data = BTreeMap::from([("config.yaml".to_string(), config(ns))]);
    let mut items = vec![KeyToPath {
        key: "config.yaml".into(),
        path: "config.yaml".into(),
        mode: None,
    }];
    for (file, text) in manifests {
        items.push(KeyToPath {
            key: file.clone(),
            path: format!("manifests/{file}"),
            mode: None,
        });
        data.insert(file, text);
    }
    let config_map = ConfigMap {
        metadata: names::meta(GATEWAY, ns, labels, BTreeMap::new()),
        data: Some(data),
        ..ConfigMap::default()
    };
    (config_map, items)
}

/// The llama-orchd container: its config and state mounts, the token from the Secret, probes
/// on `/healthz`, a read-only root and no capabilities.
fn container(gateway: &GatewayOptions) -> Container {
    let http_probe = |path: &str, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    Container {
        name: "llama-orchd".into(),
        image: Some(gateway.image.clone()),
        args: Some(vec!["--config".into(), format!("{CONFIG_DIR}/config.yaml")]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(vec![
            EnvVar {
                name: llorch_manifests::config::HOME_ENV.into(),
                value: Some(HOME.into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "LLAMA_ORCH_TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names::GATEWAY_TOKEN_SECRET.into(),
                        key: "token".into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        ]),
        readiness_probe: Some(http_probe("/healthz", 1)),
        liveness_probe: Some(http_probe("/healthz", 6)),
        volume_mounts: Some(vec![mount("config", CONFIG_DIR, true), mount("state", HOME, false)]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// One gateway (its queues live in the process), recreated on change, as a non-root user.
fn deployment(
    ns: Option<&str>,
    labels: &Labels,
    selector: &BTreeMap<String, String>,
    container: Container,
    items: Vec<KeyToPath>,
) -> Deployment {
    let mut pod_labels = labels.clone();
    pod_labels.0.extend(selector.clone());
    Deployment {
        metadata: names::meta(GATEWAY, ns, labels, BTreeMap::new()),
        spec: Some(DeploymentSpec {
            // The queues live in the process: two gateways would be two sets of queues.
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(names::meta(GATEWAY, None, &pod_labels, BTreeMap::new())).map(|mut m| {
                    m.name = None;
                    m
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Open streams finish within the config's shutdown grace (10 s).
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: GATEWAY.into(),
                                items: Some(items),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "state".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service in front of the gateway's pod.
fn service(ns: Option<&str>, labels: &Labels, selector: BTreeMap<String, String>) -> Service {
    Service {
        metadata: names::meta(GATEWAY, ns, labels, BTreeMap::new()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(PORT),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
