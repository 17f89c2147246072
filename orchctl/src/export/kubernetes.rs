//! One Pool as Kubernetes objects. A Pool on a `container` Engine becomes a Deployment (its
//! replicas, one engine container each with its GPUs, probes and model volume), a Service in
//! front of it, and — for a `file:` Model — the claim its file is placed on. A Pool on an
//! `external` Engine becomes a Service without a selector that points at the Engine's URL
//! (an EndpointSlice for an IP address, `ExternalName` for a host name). Both Services are
//! called `llorch-<pool>`: what the gateway's Engines are pointed at.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec, Toleration};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llorch_manifests::pool::RolloutStrategy;
use llorch_manifests::{Pool, Provisioning};
use serde::Serialize;

use super::model_volume::ModelVolume;
use super::names::{self, ENGINE_APP, Labels, key};
use super::pod::{self, GPU_RESOURCE, PORT_NAME};
use super::refusal::Unexportable;
use super::{Options, PoolParts};

/// What one Pool exported to.
#[derive(Clone, Debug, Default)]
pub struct PoolExport {
    /// The objects, in the order `kubectl apply` should meet them.
    pub objects: Vec<serde_json::Value>,
    /// What the user must still do or know.
    pub notes: Vec<String>,
    /// Where the gateway reaches it.
    pub upstream: Option<Upstream>,
}

/// The Pool as the gateway's `external` Engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The Service's URL inside the cluster, e.g. `http://llorch-chat:8080`.
    pub url: String,
    /// Replicas behind it (the gateway gives its Pool their slots together).
    pub replicas: u32,
}

/// Exports one Pool.
pub fn pool(parts: &PoolParts<'_>, options: &Options) -> Result<PoolExport, Unexportable> {
    match parts.engine.spec.provisioning {
        Provisioning::Container if options.simulated_gpus => Err(Unexportable::SimulatedGpus),
        Provisioning::Container => container_pool(parts, options),
        Provisioning::External => external_pool(parts, options),
        mode @ (Provisioning::Binary | Provisioning::Source | Provisioning::Package) => {
            Err(Unexportable::ProcessEngine {
                engine: parts.engine.name().to_string(),
                mode,
            })
        }
    }
}

fn labels(parts: &PoolParts<'_>) -> Labels {
    let mut l = Labels::common(ENGINE_APP, &names::pool_object(parts.pool.name()));
    l.set(key::POOL, parts.pool.name())
        .set(key::ENGINE, parts.engine.name())
        .set(key::MODEL, parts.model.name())
        .set(key::ENGINE_VERSION, &parts.engine.spec.version)
        .extend_user(&parts.pool.metadata.labels);
    l
}

/// What selects a Pool's pods (fixed for the Deployment's life: no version in it).
fn selector(pool: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (key::NAME.to_string(), ENGINE_APP.to_string()),
        (key::POOL.to_string(), pool.to_string()),
    ])
}

fn value(object: &impl Serialize) -> serde_json::Value {
    // k8s-openapi's types always serialize; a failure would be a bug in them.
    serde_json::to_value(object).unwrap_or(serde_json::Value::Null)
}

fn container_pool(parts: &PoolParts<'_>, options: &Options) -> Result<PoolExport, Unexportable> {
    let pool = parts.pool;
    let name = names::pool_object(pool.name());
    let ns = options.namespace.as_deref();
    let model = ModelVolume::of(parts.model)?;
    let labels = labels(parts);
    let mut notes = Vec::new();
    let mut annotations = BTreeMap::from([(key::ENGINE_VERSION.to_string(), parts.engine.spec.version.clone())]);
    if let Some(d) = &parts.model.spec.digest {
        annotations.insert(key::MODEL_DIGEST.to_string(), d.clone());
    }
    let replicas = fixed_replicas(pool, &mut notes);
    if !matches!(pool.spec.gpus, llorch_manifests::GpuSelector::Keyword(_)) {
        notes.push(
            "`gpus:` lists this host's device indices, which mean nothing on a cluster node: the scheduler picks any free GPU (pin a model of GPU with `--gpu-product`)".into(),
        );
    }
    if parts.model.spec.digest.is_none() {
        notes.push(format!(
            "Model `{}` declares no digest, so the pod cannot check its file; add `digest: sha256:…`",
            parts.model.name()
        ));
    }
    let (engine, secrets) = pod::engine_container(parts, &model);
    for s in &secrets {
        notes.push(format!(
            "needs Secret `{}` with key `{}` (`kubectl create secret generic {} --from-literal={}=…`)",
            s.secret, s.key, s.secret, s.key
        ));
    }
    let pod_labels = {
        let mut l = labels.clone();
        l.0.extend(selector(pool.name()));
        l
    };
    let deployment = Deployment {
        metadata: names::meta(&name, ns, &labels, annotations.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector(pool.name())),
                ..LabelSelector::default()
            },
            strategy: Some(rollout_strategy(pool.spec.rollout.strategy)),
            template: PodTemplateSpec {
                metadata: Some(names::meta(&name, None, &pod_labels, annotations)).map(|mut m| {
                    m.name = None;
                    m
                }),
                spec: Some(pod_spec(parts, options, &model, engine)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let port = parts.engine.spec.port;
    let service = service(&name, ns, &labels, pool.name(), port);
    let mut objects = Vec::new();
    let size = options.model_sizes.get(parts.model.name()).copied();
    if let Some(claim) = model.claim(parts.model.name(), ns, &labels, size, replicas) {
        notes.push(format!(
            "the engine reads `{}` from claim `{}`: place the file there before the pods start (docs/kubernetes.md){}",
            model.file,
            names::model_claim(parts.model.name()),
            if size.is_none() {
                "; its size (1Gi) is a guess, since the file is not on this machine"
            } else {
                ""
            }
        ));
        objects.push(value(&claim));
    }
    objects.push(value(&deployment));
    objects.push(value(&service));
    Ok(PoolExport {
        objects,
        notes,
        upstream: Some(Upstream {
            url: format!("http://{name}:{port}"),
            replicas,
        }),
    })
}

/// The Deployment's replicas: `replicas`, or for a Pool sized by demand its minimum but at
/// least one, with a note that says so.
fn fixed_replicas(pool: &Pool, notes: &mut Vec<String>) -> u32 {
    match (pool.spec.replicas, &pool.spec.scaling) {
        (Some(n), _) => n,
        (None, Some(s)) => {
            let n = s.min_replicas.max(1);
            notes.push(format!(
                "sized by demand (`scaling`, {}–{} replicas): a Deployment has no scale-from-zero on request, so it runs {n}; scale it with `kubectl scale`, an autoscaler such as KEDA, or use `--format kubeai`",
                s.min_replicas, s.max_replicas
            ));
            n
        }
        (None, None) => 0,
    }
}

/// The Deployment's strategy for the Pool's rollout strategy.
fn rollout_strategy(strategy: RolloutStrategy) -> DeploymentStrategy {
    match strategy {
        RolloutStrategy::Recreate => DeploymentStrategy {
            type_: Some("Recreate".into()),
            ..DeploymentStrategy::default()
        },
        // `Auto` surges too: without a spare GPU the new pod waits (Pending) while the old one
        // serves, which is what llama-orch's Surge does when it fits.
        RolloutStrategy::Surge | RolloutStrategy::Auto => DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        },
    }
}

/// The engine's pod: the model's init container and volume, on a GPU node.
fn pod_spec(parts: &PoolParts<'_>, options: &Options, model: &ModelVolume, engine: Container) -> PodSpec {
    PodSpec {
        init_containers: model.init_container(&options.fetch_image).map(|c| vec![c]),
        containers: vec![engine],
        volumes: Some(vec![model.volume(parts.model.name())]),
        node_selector: options
            .gpu_product
            .as_ref()
            .map(|p| BTreeMap::from([("nvidia.com/gpu.product".to_string(), p.clone())])),
        // GPU nodes are commonly tainted so that only GPU pods land there.
        tolerations: Some(vec![Toleration {
            key: Some(GPU_RESOURCE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]),
        ..PodSpec::default()
    }
}

/// The Service in front of a Pool's pods, on the engine's port.
fn service(name: &str, ns: Option<&str>, labels: &Labels, pool: &str, port: u16) -> Service {
    Service {
        metadata: names::meta(name, ns, labels, BTreeMap::new()),
        spec: Some(ServiceSpec {
            selector: Some(selector(pool)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: i32::from(port),
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `scheme://host[:port]` of an external Engine's URL.
struct ParsedUrl {
    scheme: String,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Option<ParsedUrl> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some(ParsedUrl {
        scheme: scheme.to_string(),
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn external_pool(parts: &PoolParts<'_>, options: &Options) -> Result<PoolExport, Unexportable> {
    let engine = parts.engine;
    let url = engine.spec.url.clone().unwrap_or_default();
    let parsed = parse_url(&url).ok_or_else(|| Unexportable::BadUrl {
        engine: engine.name().to_string(),
        url: url.clone(),
    })?;
    let ip = parsed.host.parse::<IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) || parsed.host == "localhost" || parsed.host.ends_with(".localhost") {
        return Err(Unexportable::LoopbackEngine {
            engine: engine.name().to_string(),
            url,
        });
    }
    let name = names::pool_object(parts.pool.name());
    let ns = options.namespace.as_deref();
    let labels = labels(parts);
    let port = ServicePort {
        name: Some(PORT_NAME.into()),
        port: i32::from(parsed.port),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let mut objects = Vec::new();
    match ip {
        Some(ip) => {
            objects.push(value(&Service {
                metadata: names::meta(&name, ns, &labels, BTreeMap::new()),
                spec: Some(ServiceSpec {
                    ports: Some(vec![port]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }));
            let mut slice_labels = labels.clone();
            slice_labels.set("kubernetes.io/service-name", &name);
            objects.push(value(&EndpointSlice {
                metadata: names::meta(&format!("{name}-1"), ns, &slice_labels, BTreeMap::new()),
                address_type: if ip.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
                endpoints: vec![Endpoint {
                    addresses: vec![ip.to_string()],
                    ..Endpoint::default()
                }],
                ports: Some(vec![EndpointPort {
                    name: Some(PORT_NAME.into()),
                    port: Some(i32::from(parsed.port)),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                }]),
            }));
        }
        None => objects.push(value(&Service {
            metadata: names::meta(&name, ns, &labels, BTreeMap::new()),
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(parsed.host.clone()),
                ports: Some(vec![port]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })),
    }
    Ok(PoolExport {
        objects,
        notes: vec![format!(
            "Engine `{}` is `external`: only a Service that points at {url} is exported; the engine itself runs where it runs",
            engine.name()
        )],
        upstream: Some(Upstream {
            url: format!("{}://{name}:{}", parsed.scheme, parsed.port),
            replicas: 1,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_are_taken_apart() {
        let u = parse_url("http://10.0.0.7:8081/v1").unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.port), ("http", "10.0.0.7", 8081));
        let u = parse_url("https://GPU-Box.lan").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("gpu-box.lan", 443));
        let u = parse_url("http://[fd00::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fd00::1", 9000));
        assert!(parse_url("ftp://x").is_none());
        assert!(parse_url("http://user@x").is_none());
        assert!(parse_url("http://x:notaport").is_none());
    }
}
