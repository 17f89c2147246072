//! What NVML answers to each query, from a [`ShimState`]: return codes, device lookup by handle,
//! memory arithmetic, the process lists, ECC and retired pages, and the C-string and
//! buffer-size rules NVML's callers rely on. Pure and safe: `ffi.rs` only moves these answers
//! through raw pointers. Nothing here reads files or `/proc` (process lookup is passed in).

use crate::state::{ShimDevice, ShimProcess, ShimState};

/// `NVML_SUCCESS`.
pub const NVML_SUCCESS: u32 = 0;
/// `NVML_ERROR_UNINITIALIZED`: a query before `nvmlInit_v2` or after the last `nvmlShutdown`.
pub const NVML_ERROR_UNINITIALIZED: u32 = 1;
/// `NVML_ERROR_INVALID_ARGUMENT`.
pub const NVML_ERROR_INVALID_ARGUMENT: u32 = 2;
/// `NVML_ERROR_NOT_SUPPORTED`.
pub const NVML_ERROR_NOT_SUPPORTED: u32 = 3;
/// `NVML_ERROR_NO_PERMISSION`.
pub const NVML_ERROR_NO_PERMISSION: u32 = 4;
/// `NVML_ERROR_INSUFFICIENT_SIZE`: the caller's buffer is too small (the needed size is
/// written back where the protocol has a place for it).
pub const NVML_ERROR_INSUFFICIENT_SIZE: u32 = 7;
/// `NVML_ERROR_DRIVER_NOT_LOADED`.
pub const NVML_ERROR_DRIVER_NOT_LOADED: u32 = 9;
/// `NVML_ERROR_GPU_IS_LOST`.
pub const NVML_ERROR_GPU_IS_LOST: u32 = 15;
/// `NVML_ERROR_LIB_RM_VERSION_MISMATCH`.
pub const NVML_ERROR_LIB_RM_VERSION_MISMATCH: u32 = 18;
/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`: a versioned struct with the wrong version field.
pub const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: u32 = 25;
/// `NVML_ERROR_UNKNOWN`: here, a state file that is missing or does not parse.
pub const NVML_ERROR_UNKNOWN: u32 = 999;

/// `NVML_VALUE_NOT_AVAILABLE` as a process's `usedGpuMemory`.
pub const VALUE_NOT_AVAILABLE: u64 = u64::MAX;
/// A process's GPU/compute instance id outside MIG.
pub const NO_INSTANCE: u32 = u32::MAX;

/// `NVML_MEMORY_ERROR_TYPE_CORRECTED`.
pub const MEMORY_ERROR_CORRECTED: u32 = 0;
/// `NVML_MEMORY_ERROR_TYPE_UNCORRECTED`.
pub const MEMORY_ERROR_UNCORRECTED: u32 = 1;
/// The ECC counter types, `NVML_VOLATILE_ECC` (0) and `NVML_AGGREGATE_ECC` (1).
const ECC_COUNTERS: [u32; 2] = [0, 1];

/// An NVML return code other than success.
pub type Code = u32;

/// A device's memory as NVML reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Total bytes.
    pub total: u64,
    /// Used bytes: the device's own figure or its processes' sum, whichever is larger.
    pub used: u64,
    /// `total - used`, never below zero.
    pub free: u64,
}

/// One entry of a process list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// Host PID.
    pub pid: u32,
    /// Bytes, or [`VALUE_NOT_AVAILABLE`].
    pub used_gpu_memory: u64,
}

/// The device a handle (index) names, if it answers queries.
pub fn device(state: &ShimState, index: u32) -> Result<&ShimDevice, Code> {
    let d = usize::try_from(index)
        .ok()
        .and_then(|i| state.devices.get(i))
        .ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
    if d.lost { Err(NVML_ERROR_GPU_IS_LOST) } else { Ok(d) }
}

/// A device handle's address for `index`: never null (NVML's handles are opaque pointers).
pub fn handle_addr(index: u32) -> usize {
    index as usize + 1
}

/// The index a handle's address names; `None` for null or out of range.
pub fn index_of(addr: usize) -> Option<u32> {
    addr.checked_sub(1).and_then(|i| u32::try_from(i).ok())
}

/// The processes on `d`, with `environ` entries resolved to PIDs by `find`.
pub fn processes(d: &ShimDevice, find: &dyn Fn(&[String]) -> Vec<u32>) -> Vec<Process> {
    let bytes = |used: &Option<u64>| used.unwrap_or(VALUE_NOT_AVAILABLE);
    let mut out = Vec::new();
    for p in &d.processes {
        match p {
            ShimProcess::Pid { pid, used_bytes } => out.push(Process {
                pid: *pid,
                used_gpu_memory: bytes(used_bytes),
            }),
            ShimProcess::Environ { environ, used_bytes } => {
                out.extend(find(environ).into_iter().map(|pid| Process {
                    pid,
                    used_gpu_memory: bytes(used_bytes),
                }));
            }
        }
    }
    out
}

/// The process list as `nvmlDeviceGetComputeRunningProcesses_v3` answers it: `processes`, or
/// `NVML_ERROR_NOT_SUPPORTED` when the state says the device cannot list them.
pub fn process_list(d: &ShimDevice, processes: Vec<Process>) -> Result<Vec<Process>, Code> {
    if d.processes_supported {
        Ok(processes)
    } else {
        Err(NVML_ERROR_NOT_SUPPORTED)
    }
}

/// `d`'s memory given its resolved processes.
pub fn memory(d: &ShimDevice, processes: &[Process]) -> Memory {
    let by_processes = processes
        .iter()
        .filter(|p| p.used_gpu_memory != VALUE_NOT_AVAILABLE)
        .fold(0u64, |sum, p| sum.saturating_add(p.used_gpu_memory));
    let used = d.used_bytes.max(by_processes);
    Memory {
        total: d.total_bytes,
        used,
        free: d.total_bytes.saturating_sub(used),
    }
}

/// How many entries a process-list call may write: all `n` when `capacity` holds them, else
/// `NVML_ERROR_INSUFFICIENT_SIZE` (the caller then learns `n`). An empty list always fits.
pub fn list_fits(capacity: u32, n: usize) -> Result<u32, Code> {
    let n = u32::try_from(n).map_err(|_| NVML_ERROR_INSUFFICIENT_SIZE)?;
    if n <= capacity {
        Ok(n)
    } else {
        Err(NVML_ERROR_INSUFFICIENT_SIZE)
    }
}

/// `nvmlDeviceGetTotalEccErrors`.
pub fn total_ecc_errors(d: &ShimDevice, error_type: u32, counter: u32) -> Result<u64, Code> {
    if !ECC_COUNTERS.contains(&counter) {
        return Err(NVML_ERROR_INVALID_ARGUMENT);
    }
    if !d.ecc_supported {
        return Err(NVML_ERROR_NOT_SUPPORTED);
    }
    match error_type {
        MEMORY_ERROR_CORRECTED => Ok(0),
        MEMORY_ERROR_UNCORRECTED => Ok(d.ecc_uncorrected),
        _ => Err(NVML_ERROR_INVALID_ARGUMENT),
    }
}

/// `nvmlDeviceGetRetiredPagesPendingStatus`.
pub fn pages_pending(d: &ShimDevice) -> Result<bool, Code> {
    if d.ecc_supported {
        Ok(d.pages_pending_retirement)
    } else {
        Err(NVML_ERROR_NOT_SUPPORTED)
    }
}

/// `text` as the NUL-terminated bytes a `char *buf, unsigned int length` call writes, or
/// `NVML_ERROR_INSUFFICIENT_SIZE` when it does not fit in `length`.
pub fn c_string(text: &str, length: u32) -> Result<Vec<u8>, Code> {
    if text.as_bytes().contains(&0) {
        return Err(NVML_ERROR_INVALID_ARGUMENT);
    }
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    if bytes.len() > length as usize {
        return Err(NVML_ERROR_INSUFFICIENT_SIZE);
    }
    Ok(bytes)
}

/// `nvmlSystemGetNVMLVersion`: the CUDA major version, then the driver version, as NVML does.
pub fn nvml_version(state: &ShimState) -> String {
    format!("12.{}", state.driver_version)
}

/// `nvmlErrorString`'s text for a code.
pub fn error_string(code: u32) -> &'static std::ffi::CStr {
    match code {
        NVML_SUCCESS => c"Success",
        NVML_ERROR_UNINITIALIZED => c"Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED => c"Not Supported",
        NVML_ERROR_NO_PERMISSION => c"Insufficient Permissions",
        NVML_ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        NVML_ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        NVML_ERROR_GPU_IS_LOST => c"GPU is lost",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH => c"RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH => c"Argument version mismatch",
        NVML_ERROR_UNKNOWN => c"Unknown Error",
        _ => c"Unknown Error (not modelled by the llama-orch NVML shim)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> ShimDevice {
        ShimDevice::new("GPU-1", "NVML Shim 24G", 24 << 30)
    }

    fn state(devices: Vec<ShimDevice>) -> ShimState {
        ShimState::with_devices(devices)
    }

    fn p(pid: u32, used: u64) -> Process {
        Process {
            pid,
            used_gpu_memory: used,
        }
    }

    #[test]
    fn used_memory_is_the_larger_of_the_device_figure_and_the_processes_sum() {
        let mut d = gpu();
        d.used_bytes = 3 << 30;
        let m = memory(&d, &[p(1, 1 << 30), p(2, 1 << 30)]);
        assert_eq!((m.used, m.free), (3 << 30, 21 << 30));
        let m = memory(&d, &[p(1, 2 << 30), p(2, 2 << 30), p(3, VALUE_NOT_AVAILABLE)]);
        assert_eq!((m.total, m.used, m.free), (24 << 30, 4 << 30, 20 << 30));
    }

    #[test]
    fn free_memory_never_goes_below_zero() {
        let m = memory(&gpu(), &[p(1, 20 << 30), p(2, 10 << 30)]);
        assert_eq!((m.total, m.used, m.free), (24 << 30, 30 << 30, 0));
    }

    #[test]
    fn environ_entries_become_one_process_per_matching_pid() {
        let mut d = gpu();
        d.processes = vec![
            ShimProcess::Pid {
                pid: 10,
                used_bytes: None,
            },
            ShimProcess::Environ {
                environ: vec!["ON_GPU=1".into()],
                used_bytes: Some(5),
            },
            ShimProcess::Environ {
                environ: vec!["NOBODY=1".into()],
                used_bytes: Some(7),
            },
        ];
        let find = |e: &[String]| if e == ["ON_GPU=1"] { vec![20, 21] } else { vec![] };
        assert_eq!(processes(&d, &find), [p(10, VALUE_NOT_AVAILABLE), p(20, 5), p(21, 5)]);
    }

    #[test]
    fn handles_name_devices_by_index_and_a_lost_one_answers_gpu_lost() {
        let mut lost = gpu();
        lost.lost = true;
        let s = state(vec![gpu(), lost]);
        assert_eq!(index_of(handle_addr(1)), Some(1));
        assert_eq!(index_of(0), None);
        assert!(device(&s, 0).is_ok());
        assert_eq!(device(&s, 1).err(), Some(NVML_ERROR_GPU_IS_LOST));
        assert_eq!(device(&s, 2).err(), Some(NVML_ERROR_INVALID_ARGUMENT));
    }

    #[test]
    fn a_process_list_fits_only_a_large_enough_buffer() {
        assert_eq!(list_fits(0, 0), Ok(0));
        assert_eq!(list_fits(0, 2), Err(NVML_ERROR_INSUFFICIENT_SIZE));
        assert_eq!(list_fits(7, 2), Ok(2));
    }

    #[test]
    fn ecc_answers_follow_the_board() {
        let mut d = gpu();
        d.ecc_uncorrected = 3;
        d.pages_pending_retirement = true;
        assert_eq!(total_ecc_errors(&d, MEMORY_ERROR_UNCORRECTED, 0), Ok(3));
        assert_eq!(total_ecc_errors(&d, MEMORY_ERROR_CORRECTED, 1), Ok(0));
        assert_eq!(total_ecc_errors(&d, 5, 0), Err(NVML_ERROR_INVALID_ARGUMENT));
        assert_eq!(total_ecc_errors(&d, 1, 2), Err(NVML_ERROR_INVALID_ARGUMENT));
        assert_eq!(pages_pending(&d), Ok(true));
        d.ecc_supported = false;
        assert_eq!(total_ecc_errors(&d, 1, 0), Err(NVML_ERROR_NOT_SUPPORTED));
        assert_eq!(pages_pending(&d), Err(NVML_ERROR_NOT_SUPPORTED));
    }

    #[test]
    fn a_device_that_cannot_list_processes_says_not_supported() {
        let mut d = gpu();
        assert_eq!(process_list(&d, vec![p(1, 2)]), Ok(vec![p(1, 2)]));
        d.processes_supported = false;
        assert_eq!(process_list(&d, vec![p(1, 2)]), Err(NVML_ERROR_NOT_SUPPORTED));
    }

    #[test]
    fn strings_need_room_for_their_terminator() {
        assert_eq!(c_string("abc", 4), Ok(b"abc\0".to_vec()));
        assert_eq!(c_string("abc", 3), Err(NVML_ERROR_INSUFFICIENT_SIZE));
        assert_eq!(c_string("a\0b", 80), Err(NVML_ERROR_INVALID_ARGUMENT));
    }

    #[test]
    fn every_code_the_shim_returns_has_its_own_error_string() {
        let codes = [0, 1, 2, 3, 4, 7, 9, 15, 18, 25, 999];
        let texts: std::collections::BTreeSet<_> = codes.iter().map(|c| error_string(*c)).collect();
        assert_eq!(texts.len(), codes.len());
        assert_eq!(error_string(15), c"GPU is lost");
        assert_eq!(nvml_version(&state(vec![])), "12.580.00.shim");
    }
}
