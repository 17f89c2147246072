//! The fix a NotOnGpu message carries, chosen from what the Engine says: a llama.cpp engine
//! without a GPU-layers argument, else a container without GPU access, else a local engine
//! built without CUDA.

use llorch_manifests::engine::{ApiFlavour, EngineSpec, Provisioning};

/// The arguments llama.cpp's `llama-server` takes for GPU layers.
const GPU_LAYER_FLAGS: &[&str] = &["-ngl", "--n-gpu-layers", "--gpu-layers"];
/// The environment variable `llama-server` reads the same setting from.
const GPU_LAYERS_ENV: &str = "LLAMA_ARG_N_GPU_LAYERS";

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
        if engine.api == ApiFlavour::Llamacpp && !has_gpu_layers(engine) {
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

/// Whether the Engine's args (or its environment) set llama.cpp's GPU layers.
pub fn has_gpu_layers(engine: &EngineSpec) -> bool {
    let in_args = engine.args.iter().chain(&engine.extra_args).any(|a| {
        GPU_LAYER_FLAGS
            .iter()
            .any(|flag| a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')))
    });
    in_args || engine.env.contains_key(GPU_LAYERS_ENV)
}
