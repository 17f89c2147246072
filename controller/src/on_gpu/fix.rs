//! The fix a NotOnGpu message carries, chosen from what the Engine says: a llama.cpp engine
//! that offloads no layers (the same rule as `orchctl plan`'s warning,
//! [`llorch_manifests::warnings::offloads`]), else a container without GPU access, else a
//! local engine built without CUDA. An engine that is on its GPU but keeps its weights in host
//! memory ([`Fix::for_shortfall`]) is told to offload them, whatever its kind.

use llorch_manifests::engine::{ApiFlavour, EngineSpec, Provisioning};
use llorch_manifests::warnings::offloads;

/// What to do about an engine that computes on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// A llama.cpp engine offloads no layers unless told.
    AddGpuLayers,
    /// A container that does not see the GPU.
    ContainerGpuAccess,
    /// A local engine (binary, source, package) without CUDA.
    BuildWithCuda,
    /// On its GPU, but with (some of) its weights in host memory.
    OffloadWeights,
}

impl Fix {
    /// The fix for `engine`.
    pub fn for_engine(engine: &EngineSpec) -> Fix {
        if engine.api == ApiFlavour::Llamacpp && !offloads(engine) {
            Fix::AddGpuLayers
        } else if engine.provisioning == Provisioning::Container {
            Fix::ContainerGpuAccess
        } else {
            Fix::BuildWithCuda
        }
    }

    /// The fix for `engine` when it falls short in the way `why` says: listed on its GPUs
    /// but short of its weights is an offload problem, unless the engine offloads nothing.
    pub fn for_shortfall(engine: &EngineSpec, why: &super::Shortfall) -> Fix {
        match (Fix::for_engine(engine), why) {
            (Fix::AddGpuLayers, _) => Fix::AddGpuLayers,
            (_, super::Shortfall::Weights { .. }) => Fix::OffloadWeights,
            (fix, super::Shortfall::Missing(_)) => fix,
        }
    }
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fix::AddGpuLayers => "add `--n-gpu-layers 999` to the Engine's args",
            Fix::ContainerGpuAccess => {
                "the container has no GPU access: check the NVIDIA container toolkit (`docker run --rm --gpus all \
                 ubuntu nvidia-smi` must list the GPU)"
            }
            Fix::BuildWithCuda => {
                "check that the engine's executable was built with CUDA (llama.cpp: `-DGGML_CUDA=ON`; \
                 `llama-server --list-devices` must list the GPU)"
            }
            Fix::OffloadWeights => {
                "make the engine offload every layer to its GPU (llama.cpp: `--n-gpu-layers 999`, and its log \
                 says how many layers it offloaded); if the GPU is too small for the model, give the Pool more \
                 GPUs (`gpusPerReplica`) or a smaller quantisation"
            }
        })
    }
}
