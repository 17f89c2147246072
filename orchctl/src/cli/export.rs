//! `orchctl export`'s arguments.

use clap::{Args, ValueEnum};

use crate::export::model_volume::DEFAULT_FETCH_IMAGE;

/// The gateway image when `--gateway-image` is not given: llama-orchd of this version, built by
/// `scripts/build-gateway-image.sh`.
pub const DEFAULT_GATEWAY_IMAGE: &str = concat!("llama-orch/llama-orchd:", env!("CARGO_PKG_VERSION"));

/// Where to export to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportTarget {
    /// A Kubernetes cluster.
    Kubernetes,
}

/// What to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Deployments, Services and claims (and the gateway with --with-gateway).
    #[default]
    Manifests,
    /// KubeAI's `Model` resources (kubeai.org/v1), for Pools that map onto one.
    Kubeai,
}

/// `orchctl export`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl export kubernetes -f examples/ > llama-orch.k8s.yaml
  orchctl export kubernetes pool/chat --namespace ai | kubectl apply -f -
  orchctl export kubernetes --with-gateway -n ai | kubectl apply -f -
  orchctl export kubernetes -f examples/engines/vllm.yaml --format kubeai

Without -f, every Pool the manifests directory declares (or, with --server, the daemon) is
exported; naming Pools exports only those. Objects go to stdout as YAML; what you must still
do (Secrets to create, model files to place) goes to stderr. If any Pool cannot run on
Kubernetes as declared (binary, source or package Engines, simulated GPUs, loopback URLs),
nothing is written and each reason is printed: exit status 1. See docs/kubernetes.md.")]
pub struct ExportArgs {
    /// `kubernetes`.
    #[arg(value_enum, value_name = "TARGET")]
    pub target: ExportTarget,
    /// `pool/<name>`: export only these Pools.
    #[arg(value_name = "pool/NAME")]
    pub pools: Vec<String>,
    /// Manifests to export (a file, a folder, or `-`). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    /// The namespace of every object [default: none, `kubectl -n` decides].
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = ExportFormat::Manifests)]
    pub format: ExportFormat,
    /// Also llama-orchd as a gateway in front of the exported Pools: the task API, priority
    /// queues, 429s and SSE, in the cluster.
    #[arg(long)]
    pub with_gateway: bool,
    /// The gateway's image.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_GATEWAY_IMAGE)]
    pub gateway_image: String,
    /// Pin engine pods to nodes with this GPU (`nvidia.com/gpu.product`, e.g.
    /// `NVIDIA-GeForce-RTX-4090`).
    #[arg(long, value_name = "PRODUCT")]
    pub gpu_product: Option<String>,
    /// The image of the init container that downloads and checks model files.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_FETCH_IMAGE)]
    pub fetch_image: String,
    /// `--format kubeai`: the resource profile's name (its GPU count comes from the Pool).
    #[arg(long, value_name = "PROFILE", default_value = crate::export::kubeai::DEFAULT_RESOURCE_PROFILE, value_parser = profile_name)]
    pub resource_profile: String,
}

/// A KubeAI resource profile's name: the GPU count is added from the Pool, so no `:`.
fn profile_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(':') || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{s}` is not a profile name; give the name only (e.g. `nvidia-gpu-h100`): the count comes from the Pool's gpusPerReplica"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_profile_is_a_name_without_a_count() {
        assert_eq!(super::profile_name("nvidia-gpu-h100").as_deref(), Ok("nvidia-gpu-h100"));
        assert!(
            super::profile_name("nvidia-gpu-l4:2")
                .unwrap_err()
                .contains("the count comes from")
        );
        assert!(super::profile_name("").is_err());
    }
}
