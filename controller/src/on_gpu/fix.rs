//! The fix a NotOnGpu message carries, chosen from what the Engine says: a llama.cpp engine
//! that offloads no layers (the same rule as `orchctl plan`'s warning,
//! [`llorch_manifests::warnings::offloads`]), else a container without GPU access, else a
//! local engine built without CUDA.

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
        })
    }
}
