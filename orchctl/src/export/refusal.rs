//! Why something cannot be exported: one typed reason per gap between one host and a cluster,
//! each worded so the user knows what to change. Export refuses a Pool with its reason and goes
//! on with the others; the command fails when anything was refused.

use std::fmt;

use llorch_manifests::{ObjectRef, Provisioning};

use super::kubeai::KubeAiGap;

/// What about an object keeps it off Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unexportable {
    /// `binary`, `source` and `package` Engines are processes on this host, not images.
    #[error(
        "Engine `{engine}` is `provisioning: {}`: it runs as a process on this host, and a cluster runs container images; give it an `image` (provisioning: container)",
        mode.as_str()
    )]
    ProcessEngine {
        /// The Engine.
        engine: String,
        /// Its provisioning mode.
        mode: Provisioning,
    },
    /// The config's GPU inventory is simulated: nothing shows these Engines use a GPU.
    #[error(
        "this host's GPUs are simulated (config `gpus: simulate`): nothing here shows the Engine uses a GPU, and a cluster would book real `nvidia.com/gpu` for it; export with a config that uses real GPUs (`gpus: nvml`, e.g. `--config` naming another file)"
    )]
    SimulatedGpus,
    /// An `external` Engine at a loopback address: a cluster cannot reach this host's loopback.
    #[error(
        "Engine `{engine}` is `external` at `{url}`, a loopback address: pods cannot reach this host's loopback; point `url` at an address the cluster can reach"
    )]
    LoopbackEngine {
        /// The Engine.
        engine: String,
        /// Its URL.
        url: String,
    },
    /// An `external` Engine whose URL cannot be taken apart.
    #[error("Engine `{engine}` is `external` at `{url}`, which is not an `http(s)://host[:port]` URL")]
    BadUrl {
        /// The Engine.
        engine: String,
        /// Its URL.
        url: String,
    },
    /// The Pool's Engine or Model is not in the input.
    #[error("{kind} `{name}` is not declared; export the folder that declares it too")]
    Missing {
        /// `Engine` or `Model`.
        kind: &'static str,
        /// The missing name.
        name: String,
    },
    /// `hf:org/repo` without a file: which file it means is only known by asking the Hub.
    #[error(
        "Model `{model}` is `{reference}`: which file that is, is only known by asking the Hub; name the file (`hf:org/repo/file.gguf`)"
    )]
    UnresolvedModel {
        /// The Model.
        model: String,
        /// Its `ref`.
        reference: String,
    },
    /// A model at a plain `http://` (loopback) URL: a pod cannot fetch it.
    #[error("Model `{model}` is at `{url}`, a loopback address: a pod cannot fetch it; use an `https://` or `hf:` ref")]
    LoopbackModel {
        /// The Model.
        model: String,
        /// Its URL.
        url: String,
    },
    /// A gap particular to KubeAI's `Model` resource.
    #[error(transparent)]
    KubeAi(#[from] KubeAiGap),
}

/// One refused object and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The object refused (usually a Pool; an Engine on its own for an unreachable `external`).
    pub object: ObjectRef,
    /// Why.
    pub why: Unexportable,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.why)
    }
}
