//! **Test only.** A stand-in for NVIDIA's `libnvidia-ml.so.1` that serves GPUs described in a
//! JSON file, so llama-orch's real NVML code — `nvml-wrapper` loading the library, every query
//! `controller::gpu::nvml` makes, the daemon with `gpus: nvml` — runs on machines without a GPU.
//! Build it with `scripts/build-nvml-shim.sh [--out DIR]` (or `cargo build -p
//! llama-orch-nvml-shim` and [`install_as_libnvidia_ml`]) and start the program with
//! `LD_LIBRARY_PATH=DIR` and `LLORCH_NVML_SHIM_STATE=/path/state.json`.
//!
//! # The state file
//! Read afresh on every NVML call, so a test changes the GPUs while the daemon runs; writers
//! replace it by rename ([`ShimState::write_atomically`]). JSON, camelCase, unknown fields
//! refused:
//! ```jsonc
//! {"init": "ok",                       // or "driverNotLoaded" | "libRmVersionMismatch" | "noPermission"
//!  "driverVersion": "580.00.shim",     // default
//!  "devices": [{"uuid": "GPU-…", "name": "NVML Shim 24G", "totalBytes": 25769803776,
//!               "usedBytes": 0,                 // default 0
//!               "utilizationPct": 0,            // default 0
//!               "eccUncorrected": 0,            // default 0
//!               "eccSupported": true,           // default true; false: ECC queries NotSupported
//!               "pagesPendingRetirement": false,
//!               "lost": false,                  // true: every query on it, its handle too, is GPU_IS_LOST
//!               "processes": [{"pid": 1234, "usedBytes": 1073741824},
//!                             {"environ": ["LLORCH_TEST_ON_GPU=1"], "usedBytes": 1073741824}],
//!               "processesSupported": true}]}  // default true; false: process lists NotSupported (vGPU)
//! ```
//! - `init` other than `ok` makes `nvmlInit_v2` fail with that NVML error (9, 18, 4). A missing
//!   or unparsable file fails it with `NVML_ERROR_UNKNOWN` (999) and one stderr line naming
//!   `LLORCH_NVML_SHIM_STATE`, the path and the parse error; later queries answer the same
//!   (one line per distinct problem).
//! - A process is a literal host `pid`, or `environ`: every host process whose
//!   `/proc/<pid>/environ` holds every listed `KEY=VALUE` exactly (unreadable ones skipped), each
//!   reported with `usedBytes` (absent or `null`: NVML's "not available"). An engine container
//!   started with that variable is "on the GPU"; without it, it is not. All are compute
//!   processes; the graphics list is always empty.
//! - A device's used memory is the larger of its `usedBytes` and its processes' sum; free is
//!   total − used (never negative); reserved is 0.
//! - The handle of device *i* stays valid across rewrites and names whatever device is at index
//!   *i* in the current file; an index past the end answers `NVML_ERROR_INVALID_ARGUMENT`.
//!
//! # What this proves, and what it cannot
//! It proves llama-orch's side of NVML: that the library is found through the normal search
//! path, that nvml-wrapper's symbol loading, buffer sizes, struct layouts and two-call
//! protocols are used correctly, and that inventory, placement, health and the daemon react
//! to what NVML says — memory, processes, ECC, lost GPUs, init failures — end to end. It cannot
//! prove anything about NVIDIA's implementation: real drivers' timing, MIG, processes seen from
//! PID namespaces, what a real GPU reports under load, or that a container really gets a GPU
//! (`--gpus`/CDI). Its answers are what NVML documents, not what any driver was observed to do;
//! `scripts/gpu-proof.sh` on real hardware remains the only proof of that.

mod answers;
mod environ;
mod ffi;
mod install;
mod layout;
mod library;
mod state;

pub use install::{CDYLIB_FILE, NVML_SONAME, cdylib_near, install_as_libnvidia_ml};
pub use state::{DEFAULT_DRIVER_VERSION, InitMode, STATE_ENV, ShimDevice, ShimProcess, ShimState, StateError};
