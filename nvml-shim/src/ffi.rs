//! The exported NVML C functions — the only `unsafe` in the crate. Each one checks its pointers,
//! asks `library.rs` for the current state and `answers.rs` for the answer, and writes it
//! through the caller's pointers. No logic lives here beyond that plumbing.
//!
//! Exported: `nvmlInit_v2`, `nvmlInitWithFlags`, `nvmlShutdown`, `nvmlErrorString`,
//! `nvmlSystemGetDriverVersion`, `nvmlSystemGetNVMLVersion`, `nvmlDeviceGetCount_v2`,
//! `nvmlDeviceGetHandleByIndex_v2`, `nvmlDeviceGetUUID`, `nvmlDeviceGetName`,
//! `nvmlDeviceGetMemoryInfo`, `nvmlDeviceGetMemoryInfo_v2`, `nvmlDeviceGetUtilizationRates`,
//! `nvmlDeviceGetComputeRunningProcesses_v3`, `nvmlDeviceGetGraphicsRunningProcesses_v3`,
//! `nvmlDeviceGetTotalEccErrors`, `nvmlDeviceGetRetiredPagesPendingStatus`. Any other NVML
//! symbol is absent, which nvml-wrapper reports as `FailedToLoadSymbol`.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::path::Path;

use crate::answers::{self, Code, NVML_ERROR_ARGUMENT_VERSION_MISMATCH, NVML_ERROR_INVALID_ARGUMENT, NVML_SUCCESS};
use crate::environ;
use crate::layout::{NVML_MEMORY_V2, NvmlMemory, NvmlMemoryV2, NvmlProcessInfo, NvmlUtilization};
use crate::library::Library;
use crate::state::{ShimDevice, ShimState};

/// `nvmlDevice_t`: an opaque pointer; here the device index + 1, never dereferenced.
pub type NvmlDevice = *mut c_void;

static LIBRARY: Library = Library::new();

fn report(line: &str) {
    eprintln!("{line}");
}

fn state() -> Result<ShimState, Code> {
    LIBRARY.state(ShimState::from_env, &mut report)
}

/// Runs `f` on the device `handle` names, in a freshly read state.
fn on_device<T>(handle: NvmlDevice, f: impl FnOnce(&ShimDevice) -> Result<T, Code>) -> Result<T, Code> {
    let state = state()?;
    let index = answers::index_of(handle.addr()).ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
    let device = answers::device(&state, index)?;
    f(device)
}

fn resolved_processes(device: &ShimDevice) -> Vec<answers::Process> {
    answers::processes(device, &|entries| {
        environ::pids_with_entries(Path::new("/proc"), entries)
    })
}

/// Writes `value` through `out`, or `NVML_ERROR_INVALID_ARGUMENT` for a null or misaligned one.
///
/// # Safety
/// A non-null, aligned `out` must be valid for writes of `T` (the NVML calling contract).
unsafe fn put<T>(out: *mut T, value: Result<T, Code>) -> Code {
    if out.is_null() || !out.is_aligned() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    match value {
        Ok(v) => {
            // SAFETY: non-null and aligned (checked above); valid for writes by the caller's contract.
            unsafe { out.write(v) };
            NVML_SUCCESS
        }
        Err(code) => code,
    }
}

/// Copies `text` and its NUL into `buf` if it fits in `length` bytes.
///
/// # Safety
/// A non-null `buf` must be valid for writes of `length` bytes.
unsafe fn put_string(buf: *mut c_char, length: u32, text: Result<String, Code>) -> Code {
    if buf.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    match text.and_then(|t| answers::c_string(&t, length)) {
        Ok(bytes) => {
            // SAFETY: `bytes.len() <= length` (c_string checked it) and `buf` holds `length`
            // bytes by the caller's contract; a Rust Vec never overlaps the caller's buffer.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len()) };
            NVML_SUCCESS
        }
        Err(code) => code,
    }
}

/// The `(unsigned int *infoCount, nvmlProcessInfo_t *infos)` protocol: too small a count gets
/// `NVML_ERROR_INSUFFICIENT_SIZE` and the needed count; otherwise the entries and their count.
///
/// # Safety
/// `count` must be null or valid for reads and writes; a non-null `infos` must hold `*count`
/// entries.
unsafe fn put_processes(
    count: *mut u32,
    infos: *mut NvmlProcessInfo,
    list: Result<Vec<answers::Process>, Code>,
) -> Code {
    if count.is_null() || !count.is_aligned() || !infos.is_aligned() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let list = match list {
        Ok(l) => l,
        Err(code) => return code,
    };
    // SAFETY: `count` is non-null and aligned, valid by the caller's contract.
    let capacity = unsafe { count.read() };
    let (code, n) = match answers::list_fits(capacity, list.len()) {
        Ok(n) if n > 0 && infos.is_null() => return NVML_ERROR_INVALID_ARGUMENT,
        Ok(n) => {
            for (i, p) in list.into_iter().enumerate() {
                // SAFETY: `i < n <= capacity`, and `infos` holds `capacity` entries.
                unsafe { infos.add(i).write(NvmlProcessInfo::from(p)) };
            }
            (NVML_SUCCESS, n)
        }
        Err(code) => (code, u32::try_from(list.len()).unwrap_or(u32::MAX)),
    };
    // SAFETY: as for the read above.
    unsafe { count.write(n) };
    code
}

/// Reads the state file; fails as its `init` says, or with `NVML_ERROR_UNKNOWN` (and one line on
/// stderr) when it cannot be read.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Code {
    LIBRARY.init(ShimState::from_env(), &mut report)
}

/// Flags are ignored: the shim has no GPUs to skip or attach.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: u32) -> Code {
    nvmlInit_v2()
}

/// One `init` fewer.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Code {
    LIBRARY.shutdown()
}

/// A static, NUL-terminated description of `code`.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(code: Code) -> *const c_char {
    answers::error_string(code).as_ptr()
}

/// # Safety
/// `version` must be null or hold `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: u32) -> Code {
    // SAFETY: forwarded contract.
    unsafe { put_string(version, length, state().map(|s| s.driver_version)) }
}

/// # Safety
/// `version` must be null or hold `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: u32) -> Code {
    // SAFETY: forwarded contract.
    unsafe { put_string(version, length, state().map(|s| answers::nvml_version(&s))) }
}

/// # Safety
/// `count` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut u32) -> Code {
    let n = state().map(|s| u32::try_from(s.devices.len()).unwrap_or(u32::MAX));
    // SAFETY: forwarded contract.
    unsafe { put(count, n) }
}

/// # Safety
/// `device` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: u32, device: *mut NvmlDevice) -> Code {
    let handle = state()
        .and_then(|s| answers::device(&s, index).map(|_| ()))
        .map(|()| std::ptr::without_provenance_mut(answers::handle_addr(index)));
    // SAFETY: forwarded contract.
    unsafe { put(device, handle) }
}

/// # Safety
/// `uuid` must be null or hold `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(device: NvmlDevice, uuid: *mut c_char, length: u32) -> Code {
    // SAFETY: forwarded contract.
    unsafe { put_string(uuid, length, on_device(device, |d| Ok(d.uuid.clone()))) }
}

/// # Safety
/// `name` must be null or hold `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(device: NvmlDevice, name: *mut c_char, length: u32) -> Code {
    // SAFETY: forwarded contract.
    unsafe { put_string(name, length, on_device(device, |d| Ok(d.name.clone()))) }
}

/// # Safety
/// `memory` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(device: NvmlDevice, memory: *mut NvmlMemory) -> Code {
    let m = on_device(device, |d| Ok(answers::memory(d, &resolved_processes(d)).into()));
    // SAFETY: forwarded contract.
    unsafe { put(memory, m) }
}

/// # Safety
/// `memory` must be null or valid for reads and writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: NvmlDevice, memory: *mut NvmlMemoryV2) -> Code {
    if memory.is_null() || !memory.is_aligned() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null and aligned; the caller sets `version` before the call, as nvml.h requires.
    if unsafe { (*memory).version } != NVML_MEMORY_V2 {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    let m = on_device(device, |d| Ok(answers::memory(d, &resolved_processes(d)).into()));
    // SAFETY: forwarded contract.
    unsafe { put(memory, m) }
}

/// # Safety
/// `utilization` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(device: NvmlDevice, utilization: *mut NvmlUtilization) -> Code {
    let u = on_device(device, |d| {
        Ok(NvmlUtilization {
            gpu: d.utilization_pct,
            memory: 0,
        })
    });
    // SAFETY: forwarded contract.
    unsafe { put(utilization, u) }
}

/// Every process the state lists for the device.
///
/// # Safety
/// `count` must be null or valid for reads and writes; a non-null `infos` must hold `*count`
/// entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: NvmlDevice,
    count: *mut u32,
    infos: *mut NvmlProcessInfo,
) -> Code {
    let list = on_device(device, |d| answers::process_list(d, resolved_processes(d)));
    // SAFETY: forwarded contract.
    unsafe { put_processes(count, infos, list) }
}

/// Always empty: the state's processes are all compute processes (llama-orch merges both lists).
///
/// # Safety
/// As [`nvmlDeviceGetComputeRunningProcesses_v3`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    device: NvmlDevice,
    count: *mut u32,
    infos: *mut NvmlProcessInfo,
) -> Code {
    let list = on_device(device, |d| answers::process_list(d, Vec::new()));
    // SAFETY: forwarded contract.
    unsafe { put_processes(count, infos, list) }
}

/// # Safety
/// `count` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: NvmlDevice,
    error_type: u32,
    counter_type: u32,
    count: *mut u64,
) -> Code {
    let n = on_device(device, |d| answers::total_ecc_errors(d, error_type, counter_type));
    // SAFETY: forwarded contract.
    unsafe { put(count, n) }
}

/// `NVML_FEATURE_ENABLED` (1) when pages are pending retirement, else `NVML_FEATURE_DISABLED`.
///
/// # Safety
/// `is_pending` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPagesPendingStatus(device: NvmlDevice, is_pending: *mut u32) -> Code {
    let state = on_device(device, |d| answers::pages_pending(d).map(u32::from));
    // SAFETY: forwarded contract.
    unsafe { put(is_pending, state) }
}
