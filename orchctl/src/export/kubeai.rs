//! `--format kubeai`: a Pool as KubeAI's `Model` custom resource (`kubeai.org/v1`), where the
//! Pool maps onto one. KubeAI starts, scales and routes to the engine pods itself, from a model
//! url, an engine it knows and a resource profile; so a Pool maps only where KubeAI would run
//! its Engine as llama-orch does: a vLLM image serving a Hugging Face repository. Every other
//! Pool is refused with a [`KubeAiGap`] saying what to change, or to use the default format.
//! The CRD this writes for is vendored, with its source and commit, at
//! `deploy/kubernetes/kubeai/kubeai.org_models.yaml`. Pure: no I/O.
//!
//! What maps to what (one `Model` per Pool, named after the Pool):
//! - the Engine's vLLM `image` → `engine: VLLM` with the same `image` (the pinned build, not
//!   KubeAI's default);
//! - the model vLLM loads → `url`: the Engine's `--model org/repo` → `hf://org/repo`. An
//!   Engine that loads `{model_path}` (the Model's one file) is refused: KubeAI's urls name
//!   repositories, volumes and buckets, and hand vLLM no single file ([`RefGap`]);
//! - the Engine's other arguments, placeholders filled as for a replica (`{ctx_size}` with
//!   [`PoolSpec::effective_ctx`], `{slots}`, `{tensor_split}`) → `args`, less the flags
//!   KubeAI sets (`kubeai/args.rs`): the model is served under the Pool's name, on port 8000;
//! - `workload` → `features`; `gpusPerReplica` → `resourceProfile: <profile>:<n>`;
//! - `replicas: N` → `replicas`, `minReplicas` and `maxReplicas` N with `autoscalingDisabled`
//!   (KubeAI's `maxReplicas` cannot say 0, and a fixed count needs no metrics); `scaling` →
//!   `minReplicas`, `maxReplicas` and `scaleDownDelaySeconds` (`idleTimeout`);
//!   `targetRequests` is `slotsPerReplica` either way;
//! - the Engine's `env` → `env` for plain values; hidden ones → [`hidden_env`].
//!
//! Not carried (KubeAI has its own or none): the Pool's queue, priorities, sessions, restart and
//! rollout policy, GPU indices, records; the Engine's health probe (KubeAI probes `/health`);
//! the Model's `digest` (KubeAI fetches from the Hub and checks none).

mod args;
mod gap;

use std::collections::BTreeMap;

use llorch_controller::spec::{Placeholders, engine_args};
use llorch_manifests::identity::POOL_KEY;
use llorch_manifests::model::ModelRef;
use llorch_manifests::secrets::{EnvValue, is_secret_name};
use llorch_manifests::{ApiFlavour, Engine, PoolSpec, Provisioning, Workload};
use serde_json::{Map, Value, json};

pub use gap::{ForeignServer, KubeAiGap, RefGap};

use super::parts::PoolParts;
use super::refusal::Unexportable;

/// `apiVersion` of KubeAI's `Model`.
pub const API_VERSION: &str = "kubeai.org/v1";

/// The resource profile used unless the user names another: one of those KubeAI's Helm chart
/// ships (`nvidia-gpu-t4`, `nvidia-gpu-l4`, `nvidia-gpu-l40s`, `nvidia-gpu-h100`,
/// `nvidia-gpu-a100-80gb`, `nvidia-gpu-a100-40gb`, `nvidia-gpu-a16`, `nvidia-gpu-gh200`,
/// `nvidia-gpu-rtx4070-8gb`, `amd-gpu-mi300x`, `cpu`), each one GPU per count.
pub const DEFAULT_RESOURCE_PROFILE: &str = "nvidia-gpu-l4";

/// KubeAI's own default for `scaleDownDelaySeconds` (the CRD requires the field), written for
/// Pools of a fixed size, where it does nothing.
const KUBEAI_SCALE_DOWN_DELAY_SECONDS: u64 = 30;

/// The variable KubeAI sets itself on every `hf://` model, from its Helm values
/// (`secrets.huggingface.token`); a container's `env` wins over `envFrom`, so an Engine's value
/// could not reach vLLM through the Model.
const HUB_TOKEN: &str = "HF_TOKEN";

/// How to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeAiOptions {
    /// `metadata.namespace`; none: the one `kubectl apply` uses.
    pub namespace: Option<String>,
    /// The KubeAI resource profile's name, without the count (`nvidia-gpu-l4`); the count is
    /// the Pool's `gpusPerReplica`.
    pub resource_profile: String,
}

impl Default for KubeAiOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            resource_profile: DEFAULT_RESOURCE_PROFILE.to_string(),
        }
    }
}

/// The Pool as one complete KubeAI `Model` object, or why it cannot be one.
pub fn model(parts: &PoolParts<'_>, options: &KubeAiOptions) -> Result<Value, Unexportable> {
    let engine = parts.engine;
    let pool = &parts.pool.spec;
    vllm_image(engine)?;
    let filled = engine_args(
        &engine.spec,
        pool,
        &Placeholders {
            model_path: args::LLAMA_ORCH_ONLY[0],
            host: args::LLAMA_ORCH_ONLY[1],
            port: args::LLAMA_ORCH_ONLY[2],
            ctx_size: pool.effective_ctx(&parts.model.spec),
        },
    );
    let vllm = args::split(engine.name(), filled)?;
    let url = url(parts, vllm.model.as_deref())?;

    let mut spec = Map::new();
    spec.insert("url".into(), url.into());
    spec.insert("engine".into(), "VLLM".into());
    spec.insert("image".into(), engine.spec.image.clone().unwrap_or_default().into());
    let feature = match pool.workload {
        Workload::Generate => "TextGeneration",
        Workload::Embeddings => "TextEmbedding",
    };
    spec.insert("features".into(), json!([feature]));
    spec.insert(
        "resourceProfile".into(),
        format!("{}:{}", options.resource_profile, pool.gpus_per_replica).into(),
    );
    if !vllm.rest.is_empty() {
        spec.insert("args".into(), json!(vllm.rest));
    }
    let plain: BTreeMap<&str, &str> = engine
        .spec
        .env
        .iter()
        .filter_map(|(name, value)| match value {
            EnvValue::Literal(v) if !is_secret_name(name) => Some((name.as_str(), v.as_str())),
            _ => None,
        })
        .collect();
    if !plain.is_empty() {
        spec.insert("env".into(), json!(plain));
    }
    if let Some(secret) = hidden_env(engine).secret {
        spec.insert("envFrom".into(), json!([{"secretRef": {"name": secret.name}}]));
    }
    replicas(pool, &mut spec);

    let mut labels: BTreeMap<String, String> = parts.pool.metadata.labels.clone();
    labels.insert(super::names::key::PART_OF.into(), "llama-orch".into());
    labels.insert(super::names::key::MANAGED_BY.into(), "orchctl".into());
    labels.insert(POOL_KEY.into(), parts.pool.name().into());
    let mut metadata = Map::new();
    metadata.insert("name".into(), parts.pool.name().into());
    if let Some(ns) = &options.namespace {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    metadata.insert("labels".into(), json!(labels));
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The Engine's environment values that must not be written into the Model, and where they go
/// instead. Kubernetes keeps such values in a Secret, which KubeAI's `envFrom` reads: every
/// `valueFrom` value and every literal whose name looks secret (`*_KEY`, `*_TOKEN`,
/// `*PASSWORD*`, `*SECRET*`, the rule `describe` redacts by) becomes a key of one Secret named
/// after the Engine, which the user creates; the Model names it, never a value. `HF_TOKEN` is
/// the exception: KubeAI sets it on every `hf://` model from its own Helm values, over anything
/// `envFrom` brings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HiddenEnv {
    /// The Secret to create, when any value needs one.
    pub secret: Option<EnvSecret>,
    /// The Engine sets `HF_TOKEN`: give it to KubeAI (`secrets.huggingface.token` in its Helm
    /// values) instead.
    pub hub_token: bool,
}

/// A Secret the user must create for a KubeAI `Model`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvSecret {
    /// Its name: `llorch-<engine>-env`, as for the default format.
    pub name: String,
    /// The variables it must hold, as its keys (sorted).
    pub keys: Vec<String>,
}

/// Where Engine `engine`'s hidden environment values go (see [`HiddenEnv`]).
pub fn hidden_env(engine: &Engine) -> HiddenEnv {
    let mut hidden = HiddenEnv::default();
    let mut keys = Vec::new();
    for (name, value) in &engine.spec.env {
        let shown = matches!(value, EnvValue::Literal(_)) && !is_secret_name(name);
        if name == HUB_TOKEN {
            hidden.hub_token = true;
        } else if !shown {
            keys.push(name.clone());
        }
    }
    if !keys.is_empty() {
        hidden.secret = Some(EnvSecret {
            name: super::names::engine_secret(engine.name()),
            keys,
        });
    }
    hidden
}

/// Refuses every Engine but a vLLM container image.
fn vllm_image(engine: &Engine) -> Result<(), Unexportable> {
    let name = engine.name().to_string();
    match engine.spec.provisioning {
        Provisioning::Container => {}
        Provisioning::External => return Err(KubeAiGap::External { engine: name }.into()),
        mode => return Err(Unexportable::ProcessEngine { engine: name, mode }),
    }
    let server = match engine.spec.api {
        ApiFlavour::Openai => None,
        ApiFlavour::Llamacpp => Some(ForeignServer::LlamaCpp),
        ApiFlavour::Tgi => Some(ForeignServer::Tgi),
    };
    if let Some(server) = server {
        return Err(KubeAiGap::NoKubeAiEngine { engine: name, server }.into());
    }
    let image = engine.spec.image.clone().unwrap_or_default();
    if !is_vllm_image(&image) {
        return Err(KubeAiGap::NotVllm { engine: name, image }.into());
    }
    Ok(())
}

/// True when the image's repository path (without registry, tag or digest) names vLLM:
/// `vllm/vllm-openai:v0.10.2`, `rocm/vllm:…`, `…/vllm-cpu-release-repo:…`.
fn is_vllm_image(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or_default();
    // A tag follows the last `:` that has no `/` after it (a registry's `:port` has one).
    let repository = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    let mut parts: Vec<&str> = repository.split('/').collect();
    // The first part names a registry when it has a `.` or a `:` or is `localhost`, as Docker
    // reads references.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    parts.iter().any(|part| part.to_ascii_lowercase().contains("vllm"))
}

/// KubeAI's `url` for what vLLM loads: the Engine's `--model` when it names a Hub repository;
/// the Model's one file (`{model_path}`, or no `--model`) has none.
fn url(parts: &PoolParts<'_>, model_arg: Option<&str>) -> Result<String, KubeAiGap> {
    match model_arg {
        None | Some("{model_path}") => {}
        Some(repo) if is_hub_repo(repo) => return Ok(format!("hf://{repo}")),
        Some(other) => {
            return Err(KubeAiGap::ModelArg {
                engine: parts.engine.name().to_string(),
                value: other.to_string(),
            });
        }
    }
    let model = &parts.model.spec;
    let kind = match model.parse_ref() {
        Ok(ModelRef::File(_)) => RefGap::LocalFile,
        Ok(ModelRef::Url { .. }) => RefGap::Url,
        Ok(ModelRef::Hf { .. }) => RefGap::HubFile,
        Err(_) => RefGap::Invalid,
    };
    Err(KubeAiGap::ModelRef {
        model: parts.model.name().to_string(),
        reference: model.reference.clone(),
        kind,
    })
}

/// `org/repo`: two Hub names (letters, digits, `-`, `_`, `.`).
fn is_hub_repo(s: &str) -> bool {
    let mut parts = s.split('/');
    let name_ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    name_ok(parts.next()) && name_ok(parts.next()) && parts.next().is_none()
}

/// The replica fields: a fixed count, or KubeAI's autoscaler within the Pool's bounds.
fn replicas(pool: &PoolSpec, spec: &mut Map<String, Value>) {
    match &pool.scaling {
        Some(scaling) => {
            spec.insert("minReplicas".into(), scaling.min_replicas.into());
            spec.insert("maxReplicas".into(), scaling.max_replicas.into());
            spec.insert(
                "scaleDownDelaySeconds".into(),
                scaling.idle_timeout.get().as_secs().into(),
            );
        }
        None => {
            let n = pool.replicas.unwrap_or(0);
            spec.insert("autoscalingDisabled".into(), true.into());
            spec.insert("replicas".into(), n.into());
            spec.insert("minReplicas".into(), n.into());
            if n > 0 {
                spec.insert("maxReplicas".into(), n.into());
            }
            spec.insert("scaleDownDelaySeconds".into(), KUBEAI_SCALE_DOWN_DELAY_SECONDS.into());
        }
    }
    spec.insert("targetRequests".into(), pool.slots_per_replica.into());
}

#[cfg(test)]
mod tests;
