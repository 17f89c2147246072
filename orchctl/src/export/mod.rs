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

/// The Pools of `objects` named in `pools` (every Pool when empty), in name order.
fn selected<'a>(objects: &'a [AnyObject], pools: &[String]) -> Result<Vec<&'a llorch_manifests::Pool>, Vec<String>> {
    let mut all: BTreeMap<&str, &llorch_manifests::Pool> = BTreeMap::new();
    for o in objects {
        if let AnyObject::Pool(p) = o {
            all.insert(p.name(), p);
        }
    }
    if pools.is_empty() {
        return Ok(all.into_values().collect());
    }
    let missing: Vec<String> = pools
        .iter()
        .filter(|p| !all.contains_key(p.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(pools.iter().filter_map(|p| all.get(p.as_str()).copied()).collect())
}

/// Renders the Pools `pools` (all when empty) of `objects` as Deployments, Services and claims
/// — and the gateway, when `options.gateway` is set.
pub fn kubernetes(objects: &[AnyObject], pools: &[String], options: &Options) -> Export {
    let mut out = Export::default();
    let chosen = match selected(objects, pools) {
        Ok(c) => c,
        Err(missing) => {
            out.refusals = missing
                .into_iter()
                .map(|name| Refusal {
                    object: ObjectRef::new(Kind::Pool, &name),
                    why: Unexportable::Missing { kind: "Pool", name },
                })
                .collect();
            return out;
        }
    };
    let mut upstreams = Vec::new();
    for pool in chosen {
        let object = ObjectRef::new(Kind::Pool, pool.name());
        let exported = PoolParts::find(objects, pool).and_then(|parts| {
            kubernetes::pool(&parts, options)
                .map(|e| (parts, e))
                .map_err(|why| Refusal {
                    object: object.clone(),
                    why,
                })
        });
        match exported {
            Ok((parts, e)) => {
                out.objects.extend(e.objects);
                out.notes.extend(e.notes.into_iter().map(|text| Note {
                    subject: object.to_string(),
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
            Err(r) => out.refusals.push(r),
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
    let mut out = Export::default();
    let chosen = match selected(objects, pools) {
        Ok(c) => c,
        Err(missing) => {
            out.refusals = missing
                .into_iter()
                .map(|name| Refusal {
                    object: ObjectRef::new(Kind::Pool, &name),
                    why: Unexportable::Missing { kind: "Pool", name },
                })
                .collect();
            return out;
        }
    };
    for pool in chosen {
        let object = ObjectRef::new(Kind::Pool, pool.name());
        match PoolParts::find(objects, pool).and_then(|parts| {
            kubeai::model(&parts, options).map_err(|why| Refusal {
                object: object.clone(),
                why,
            })
        }) {
            Ok(v) => {
                out.objects.push(v);
                if let Some(engine) = PoolParts::find(objects, pool).ok().map(|p| p.engine) {
                    let hidden = kubeai::hidden_env(engine);
                    if let Some(secret) = hidden.secret {
                        out.notes.push(Note {
                            subject: object.to_string(),
                            text: format!(
                                "needs Secret `{0}` with keys {1} (`kubectl create secret generic {0} --from-literal=KEY=…`)",
                                secret.name,
                                secret.keys.join(", ")
                            ),
                        });
                    }
                    if hidden.hub_token {
                        out.notes.push(Note {
                            subject: object.to_string(),
                            text: "HF_TOKEN is KubeAI's to set: give it as the Helm value `secrets.huggingface.token`"
                                .into(),
                        });
                    }
                }
            }
            Err(r) => out.refusals.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests;
