//! `orchctl export kubernetes`: the same manifests, rendered for a Kubernetes cluster
//! (docs/kubernetes.md). [`kubernetes`] and [`kubeai::model`] are pure renderers over parsed
//! objects; [`command`] gathers their input like `plan` does (the manifests directory, `-f`
//! input, or named Pools), writes the YAML to stdout and what a user must still do (Secrets to
//! create, files to place) to stderr.

pub mod command;
pub mod gateway;
pub mod kubeai;
pub mod kubernetes;
pub mod model_volume;
pub mod names;
mod parts;
pub mod pod;
mod refusal;

use std::collections::BTreeMap;
use std::fmt;

use llorch_manifests::{AnyObject, Kind, ObjectRef};

pub use llorch_manifests::Engine;
pub use parts::PoolParts;
pub use refusal::{Refusal, Unexportable};

/// What the renderers are told besides the objects.
#[derive(Clone, Debug)]
pub struct Options {
    /// `metadata.namespace` of every object; None leaves it to `kubectl -n`.
    pub namespace: Option<String>,
    /// Pin pods to nodes with this GPU (`nvidia.com/gpu.product`, from GPU feature discovery).
    pub gpu_product: Option<String>,
    /// The init container's image (curl and a shell with `sha256sum`).
    pub fetch_image: String,
    /// This host's GPUs are simulated (config `gpus: simulate`): container Pools are refused.
    pub simulated_gpus: bool,
    /// The size of each `file:` Model's file, where export could read it (sizes its claim).
    pub model_sizes: BTreeMap<String, u64>,
    /// Also the gateway, when set.
    pub gateway: Option<gateway::GatewayOptions>,
}

/// Something the user must still do or know about one exported object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// What it is about: `pool/chat`, `gateway`.
    pub subject: String,
    /// What.
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.text)
    }
}

/// The result of an export: objects to apply, notes, and what was refused.
#[derive(Clone, Debug, Default)]
pub struct Export {
    /// Kubernetes objects, in apply order.
    pub objects: Vec<serde_json::Value>,
    /// What the user must still do.
    pub notes: Vec<Note>,
    /// Pools that could not be exported, and why.
    pub refusals: Vec<Refusal>,
}

/// The parts of the Pools of `objects` named in `pools` (every Pool when empty), in name
/// order, and a refusal for each named Pool that is not declared or lacks its Engine or Model.
fn chosen<'a>(objects: &'a [AnyObject], pools: &[String]) -> (Vec<PoolParts<'a>>, Vec<Refusal>) {
    let mut all: BTreeMap<&str, &llorch_manifests::Pool> = BTreeMap::new();
    for o in objects {
        if let AnyObject::Pool(p) = o {
            all.insert(p.name(), p);
        }
    }
    let mut refusals = Vec::new();
    let wanted: Vec<&llorch_manifests::Pool> = if pools.is_empty() {
        all.into_values().collect()
    } else {
        pools
            .iter()
            .filter_map(|name| {
                let found = all.get(name.as_str()).copied();
                if found.is_none() {
                    refusals.push(Refusal {
                        object: ObjectRef::new(Kind::Pool, name),
                        why: Unexportable::Missing {
                            kind: "Pool",
                            name: name.clone(),
                        },
                    });
                }
                found
            })
            .collect()
    };
    let mut parts = Vec::new();
    for pool in wanted {
        match PoolParts::find(objects, pool) {
            Ok(p) => parts.push(p),
            Err(r) => refusals.push(r),
        }
    }
    (parts, refusals)
}

/// Renders the Pools `pools` (all when empty) of `objects` as Deployments, Services and claims
/// — and the gateway, when `options.gateway` is set.
pub fn kubernetes(objects: &[AnyObject], pools: &[String], options: &Options) -> Export {
    let (chosen, refusals) = chosen(objects, pools);
    let mut out = Export {
        refusals,
        ..Export::default()
    };
    let mut upstreams = Vec::new();
    for parts in chosen {
        let subject = ObjectRef::new(Kind::Pool, parts.pool.name());
        match kubernetes::pool(&parts, options) {
            Ok(e) => {
                out.objects.extend(e.objects);
                out.notes.extend(e.notes.into_iter().map(|text| Note {
                    subject: subject.to_string(),
                    text,
                }));
                if let Some(upstream) = e.upstream {
                    upstreams.push(gateway::GatewayPool {
                        pool: parts.pool,
                        engine: parts.engine,
                        model: parts.model,
                        upstream,
                    });
                }
            }
            Err(why) => out.refusals.push(Refusal { object: subject, why }),
        }
    }
    if let Some(g) = &options.gateway {
        out.objects.extend(gateway::objects(&upstreams, options, g));
        out.notes.push(Note {
            subject: "gateway".into(),
            text: format!(
                "the gateway needs Secret `{0}` with its API token under key `token` (`kubectl create secret generic {0} --from-literal=token=$(openssl rand -hex 32)`)",
                names::GATEWAY_TOKEN_SECRET
            ),
        });
    }
    out
}

/// Renders the Pools `pools` (all when empty) of `objects` as KubeAI `Model` resources.
pub fn kubeai(objects: &[AnyObject], pools: &[String], options: &kubeai::KubeAiOptions) -> Export {
    let (chosen, refusals) = chosen(objects, pools);
    let mut out = Export {
        refusals,
        ..Export::default()
    };
    for parts in chosen {
        let subject = ObjectRef::new(Kind::Pool, parts.pool.name());
        match kubeai::model(&parts, options) {
            Ok(v) => {
                out.objects.push(v);
                let hidden = kubeai::hidden_env(parts.engine);
                if let Some(secret) = hidden.secret {
                    out.notes.push(Note {
                        subject: subject.to_string(),
                        text: format!(
                            "needs Secret `{0}` with keys {1} (`kubectl create secret generic {0} --from-literal=KEY=…`)",
                            secret.name,
                            secret.keys.join(", ")
                        ),
                    });
                }
                if hidden.hub_token {
                    out.notes.push(Note {
                        subject: subject.to_string(),
                        text: "HF_TOKEN is KubeAI's to set: give it as the Helm value `secrets.huggingface.token`"
                            .into(),
                    });
                }
            }
            Err(why) => out.refusals.push(Refusal { object: subject, why }),
        }
    }
    out
}

#[cfg(test)]
mod tests;
