//! The state file: what the shim's GPUs are, as the test wants them right now. Owns the serde
//! types, reading the file (path from [`STATE_ENV`]) and replacing it atomically. It does not
//! decide what NVML answers (`answers.rs`) and never looks at processes (`environ.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The environment variable naming the state file. Read by the shim in the process that loads
/// it (the daemon, `gpu-inventory`, a test) on every NVML call.
pub const STATE_ENV: &str = "LLORCH_NVML_SHIM_STATE";

/// The driver version reported when the state file names none. Below 580.82, so nvml-wrapper
/// keeps its CUDA 12 field-id scheme.
pub const DEFAULT_DRIVER_VERSION: &str = "580.00.shim";

/// Everything the shim reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShimState {
    /// What `nvmlInit_v2` answers.
    #[serde(default)]
    pub init: InitMode,
    /// `nvmlSystemGetDriverVersion`.
    #[serde(default = "default_driver_version")]
    pub driver_version: String,
    /// The GPUs, in index order.
    #[serde(default)]
    pub devices: Vec<ShimDevice>,
}

fn default_driver_version() -> String {
    DEFAULT_DRIVER_VERSION.to_string()
}

/// How `nvmlInit_v2` ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InitMode {
    /// NVML initialises.
    #[default]
    Ok,
    /// `NVML_ERROR_DRIVER_NOT_LOADED` (9): no kernel driver.
    DriverNotLoaded,
    /// `NVML_ERROR_LIB_RM_VERSION_MISMATCH` (18): the driver was upgraded without a reboot.
    LibRmVersionMismatch,
    /// `NVML_ERROR_NO_PERMISSION` (4): the device nodes are not readable.
    NoPermission,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShimDevice {
    /// `nvmlDeviceGetUUID`, e.g. `GPU-5f0e…`.
    pub uuid: String,
    /// `nvmlDeviceGetName`.
    pub name: String,
    /// Total memory in bytes.
    pub total_bytes: u64,
    /// Memory in use apart from the listed processes; the device reports the larger of this and
    /// the processes' sum.
    #[serde(default)]
    pub used_bytes: u64,
    /// GPU utilisation in percent.
    #[serde(default)]
    pub utilization_pct: u32,
    /// Uncorrected ECC errors (volatile and aggregate counters alike).
    #[serde(default)]
    pub ecc_uncorrected: u64,
    /// `false`: a board without ECC — the ECC and retired-pages queries answer
    /// `NVML_ERROR_NOT_SUPPORTED`, as on GeForce cards.
    #[serde(default = "yes")]
    pub ecc_supported: bool,
    /// Memory pages pending retirement.
    #[serde(default)]
    pub pages_pending_retirement: bool,
    /// The GPU fell off the bus: every query on it answers `NVML_ERROR_GPU_IS_LOST`.
    #[serde(default)]
    pub lost: bool,
    /// Compute processes on it.
    #[serde(default)]
    pub processes: Vec<ShimProcess>,
    /// `false`: the process-list queries answer `NVML_ERROR_NOT_SUPPORTED`, as on some vGPU
    /// setups, so a caller cannot tell which processes use the GPU.
    #[serde(default = "yes")]
    pub processes_supported: bool,
}

fn yes() -> bool {
    true
}

impl ShimDevice {
    /// A healthy, idle GPU with ECC and process lists, as the defaults of the file format.
    pub fn new(uuid: &str, name: &str, total_bytes: u64) -> Self {
        ShimDevice {
            uuid: uuid.to_string(),
            name: name.to_string(),
            total_bytes,
            used_bytes: 0,
            utilization_pct: 0,
            ecc_uncorrected: 0,
            ecc_supported: true,
            pages_pending_retirement: false,
            lost: false,
            processes: Vec::new(),
            processes_supported: true,
        }
    }
}

impl ShimState {
    /// A working driver (the default version) with `devices`.
    pub fn with_devices(devices: Vec<ShimDevice>) -> Self {
        ShimState {
            init: InitMode::Ok,
            driver_version: default_driver_version(),
            devices,
        }
    }
}

/// A process on a GPU: one literal PID, or every host process with an environment entry.
/// `usedBytes` absent or `null` is memory NVML cannot tell (`NVML_VALUE_NOT_AVAILABLE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields, rename_all_fields = "camelCase")]
pub enum ShimProcess {
    /// `{"pid": 1234, "usedBytes": 1073741824}`.
    Pid {
        /// The host PID.
        pid: u32,
        /// GPU memory it uses.
        used_bytes: Option<u64>,
    },
    /// `{"environ": ["KEY=VALUE", …], "usedBytes": …}`: every process whose
    /// `/proc/<pid>/environ` holds every one of these entries, exactly.
    Environ {
        /// `KEY=VALUE` entries, all required.
        environ: Vec<String>,
        /// GPU memory each such process uses.
        used_bytes: Option<u64>,
    },
}

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The environment variable is not set.
    #[error("{STATE_ENV} is not set: the NVML shim needs it to name its JSON state file")]
    EnvUnset,
    /// The file cannot be read.
    #[error("cannot read the NVML shim state file {path} (from {STATE_ENV}): {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid state.
    #[error("the NVML shim state file {path} (from {STATE_ENV}) does not parse: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a state file failed.
    #[error("cannot write the NVML shim state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ShimState {
    /// Parses a state document.
    pub fn parse(path: &Path, text: &str) -> Result<Self, StateError> {
        serde_json::from_str(text).map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let text = std::fs::read_to_string(path).map_err(|source| StateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Reads the file [`STATE_ENV`] names.
    pub fn from_env() -> Result<Self, StateError> {
        let path = std::env::var_os(STATE_ENV).ok_or(StateError::EnvUnset)?;
        Self::load(Path::new(&path))
    }

    /// Replaces the file at `path` by renaming a complete sibling over it, so a reader never
    /// sees half a document.
    pub fn write_atomically(&self, path: &Path) -> Result<(), StateError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let write_err = |source| StateError::Write {
            path: path.to_path_buf(),
            source,
        };
        let name = path
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let text = serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?;
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(write_err(e));
        }
        Ok(())
    }
}

impl InitMode {
    /// The NVML return code `nvmlInit_v2` gives.
    pub fn return_code(self) -> u32 {
        match self {
            InitMode::Ok => crate::answers::NVML_SUCCESS,
            InitMode::DriverNotLoaded => crate::answers::NVML_ERROR_DRIVER_NOT_LOADED,
            InitMode::LibRmVersionMismatch => crate::answers::NVML_ERROR_LIB_RM_VERSION_MISMATCH,
            InitMode::NoPermission => crate::answers::NVML_ERROR_NO_PERMISSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"init": "ok", "driverVersion": "580.00.shim",
        "devices": [{"uuid": "GPU-1", "name": "NVML Shim 24G", "totalBytes": 25769803776,
                     "usedBytes": 0, "utilizationPct": 3, "eccUncorrected": 0,
                     "pagesPendingRetirement": false, "lost": false,
                     "processes": [{"pid": 1234, "usedBytes": 1073741824},
                                   {"environ": ["LLORCH_TEST_ON_GPU=1"], "usedBytes": 1073741824},
                                   {"pid": 7}]}]}"#;

    fn parse(text: &str) -> Result<ShimState, StateError> {
        ShimState::parse(Path::new("/t/state.json"), text)
    }

    #[test]
    fn the_documented_example_parses_into_typed_processes() {
        let s = parse(EXAMPLE).unwrap();
        assert_eq!(s.init, InitMode::Ok);
        let d = &s.devices[0];
        assert_eq!((d.total_bytes, d.utilization_pct, d.ecc_supported), (24 << 30, 3, true));
        assert_eq!(
            d.processes,
            [
                ShimProcess::Pid {
                    pid: 1234,
                    used_bytes: Some(1 << 30)
                },
                ShimProcess::Environ {
                    environ: vec!["LLORCH_TEST_ON_GPU=1".into()],
                    used_bytes: Some(1 << 30)
                },
                ShimProcess::Pid {
                    pid: 7,
                    used_bytes: None
                },
            ]
        );
    }

    #[test]
    fn omitted_fields_take_their_defaults() {
        let s = parse(r#"{"devices": [{"uuid": "GPU-1", "name": "n", "totalBytes": 1}]}"#).unwrap();
        assert_eq!(
            (s.init, s.driver_version.as_str()),
            (InitMode::Ok, DEFAULT_DRIVER_VERSION)
        );
        let d = &s.devices[0];
        assert!(d.ecc_supported && !d.lost && !d.pages_pending_retirement && d.processes.is_empty());
    }

    #[test]
    fn init_modes_are_camel_case_and_map_to_nvml_codes() {
        for (word, code) in [
            ("ok", 0),
            ("driverNotLoaded", 9),
            ("libRmVersionMismatch", 18),
            ("noPermission", 4),
        ] {
            let s = parse(&format!(r#"{{"init": "{word}"}}"#)).unwrap();
            assert_eq!(s.init.return_code(), code, "{word}");
        }
        assert!(parse(r#"{"init": "DriverNotLoaded"}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        assert!(parse(r#"{"devics": []}"#).is_err());
        assert!(parse(r#"{"devices": [{"uuid": "u", "name": "n", "totalBytes": 1, "total": 2}]}"#).is_err());
        let bad_process = r#"{"devices": [{"uuid": "u", "name": "n", "totalBytes": 1,
                              "processes": [{"pid": 1, "usedbytes": 2}]}]}"#;
        assert!(parse(bad_process).is_err());
        let both = r#"{"devices": [{"uuid": "u", "name": "n", "totalBytes": 1,
                       "processes": [{"pid": 1, "environ": ["A=B"]}]}]}"#;
        assert!(parse(both).is_err());
    }

    #[test]
    fn a_parse_error_names_the_variable_the_path_and_the_position() {
        let e = parse("{\"devices\": [").unwrap_err().to_string();
        assert!(
            e.contains(STATE_ENV) && e.contains("/t/state.json") && e.contains("line 1"),
            "{e}"
        );
        let e = ShimState::load(Path::new("/nonexistent/state.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(STATE_ENV) && e.contains("/nonexistent/state.json"), "{e}");
    }

    #[test]
    fn write_atomically_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = parse(EXAMPLE).unwrap();
        s.write_atomically(&path).unwrap();
        s.devices[0].lost = true;
        s.write_atomically(&path).unwrap();
        assert_eq!(ShimState::load(&path).unwrap(), s);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }
}
