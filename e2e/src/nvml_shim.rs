//! The NVML shim (`nvml-shim/`, a TEST-ONLY `libnvidia-ml.so.1`) for end-to-end tests: a
//! temporary directory holding the library under NVIDIA's file name and its JSON state, and the
//! environment that makes a real `llama-orchd` with `gpus: nvml` load it through the normal
//! library search path (`LD_LIBRARY_PATH`) — the production path, end to end, with the GPUs a
//! test describes and changes while the daemon runs.

// Test support: failing loudly, with context, is what a harness should do.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

pub use llorch_nvml_shim::{InitMode, ShimDevice, ShimProcess, ShimState};

use crate::daemon::bin;

const GIB: u64 = 1 << 30;

/// The UUID the shim gives GPU `index` of [`workstation`].
pub fn uuid(index: u32) -> String {
    format!("GPU-5111a000-0000-4000-8000-00000000000{index}")
}

/// The reference workstation as the shim serves it: GPU 0 of 24 GiB and GPU 1 of 12 GiB, both
/// idle and healthy, no processes.
pub fn workstation() -> ShimState {
    ShimState::with_devices(vec![
        ShimDevice::new(&uuid(0), "NVML Shim 24G", 24 * GIB),
        ShimDevice::new(&uuid(1), "NVML Shim 12G", 12 * GIB),
    ])
}

/// The library, installed as `libnvidia-ml.so.1` in a temporary directory, and its state file.
pub struct Shim {
    dir: tempfile::TempDir,
    state: PathBuf,
    /// `LD_LIBRARY_PATH` and the state variable, as [`env`](Self::env) lends them.
    env: [(&'static str, String); 2],
}

impl Shim {
    /// Installs the built shim (`cargo build -p llama-orch-nvml-shim`; scripts/test.sh does)
    /// with `state` as its GPUs.
    pub fn new(state: &ShimState) -> Shim {
        let dir = tempfile::Builder::new()
            .prefix("llorch-nvml-shim-")
            .tempdir()
            .expect("shim dir");
        llorch_nvml_shim::install_as_libnvidia_ml(&bin(llorch_nvml_shim::CDYLIB_FILE), dir.path())
            .expect("install the shim as libnvidia-ml.so.1");
        let state_file = dir.path().join("state.json");
        let shim = Shim {
            env: [
                ("LD_LIBRARY_PATH", dir.path().display().to_string()),
                (llorch_nvml_shim::STATE_ENV, state_file.display().to_string()),
            ],
            state: state_file,
            dir,
        };
        shim.write(state);
        shim
    }

    /// Replaces the GPUs the shim reports (atomically: the daemon may be reading).
    pub fn write(&self, state: &ShimState) {
        state.write_atomically(&self.state).expect("write the shim state");
    }

    /// The directory holding `libnvidia-ml.so.1`.
    pub fn lib_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment that makes a process load the shim as NVML.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}
