//! The C structs NVML's callers pass in, laid out as `nvml.h` declares them (and as
//! `nvml-wrapper-sys` 0.10's bindgen output does). Written by hand — a handful of plain structs
//! do not need bindgen — and pinned by compile-time size and offset checks. Data only; the
//! pointer writes happen in `ffi.rs`.

use std::mem::{offset_of, size_of};

use crate::answers::{Memory, NO_INSTANCE, Process};

/// `nvmlMemory_t` (`nvmlDeviceGetMemoryInfo`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NvmlMemory {
    /// `total`.
    pub total: u64,
    /// `free`.
    pub free: u64,
    /// `used`.
    pub used: u64,
}

/// `nvmlMemory_v2_t` (`nvmlDeviceGetMemoryInfo_v2`, what nvml-wrapper 0.13 calls).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NvmlMemoryV2 {
    /// `NVML_STRUCT_VERSION(Memory, 2)`, set by the caller.
    pub version: u32,
    /// `total`.
    pub total: u64,
    /// `reserved`: memory the driver and firmware hold; always 0 here.
    pub reserved: u64,
    /// `free`.
    pub free: u64,
    /// `used`.
    pub used: u64,
}

/// `nvmlMemory_v2` as `nvml.h`'s `NVML_STRUCT_VERSION(Memory, 2)`: the size, version 2 above it.
pub const NVML_MEMORY_V2: u32 = size_of::<NvmlMemoryV2>() as u32 | (2 << 24);

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NvmlUtilization {
    /// GPU busy percent.
    pub gpu: u32,
    /// Memory controller busy percent.
    pub memory: u32,
}

/// `nvmlProcessInfo_t`, the v2/v3 layout (`nvmlDeviceGet*RunningProcesses_v3`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NvmlProcessInfo {
    /// `pid`.
    pub pid: u32,
    /// `usedGpuMemory`, or `NVML_VALUE_NOT_AVAILABLE`.
    pub used_gpu_memory: u64,
    /// `gpuInstanceId` (MIG), `0xFFFFFFFF` outside MIG.
    pub gpu_instance_id: u32,
    /// `computeInstanceId` (MIG), `0xFFFFFFFF` outside MIG.
    pub compute_instance_id: u32,
}

const _: () = {
    assert!(size_of::<NvmlMemory>() == 24);
    assert!(size_of::<NvmlMemoryV2>() == 40 && offset_of!(NvmlMemoryV2, total) == 8);
    assert!(offset_of!(NvmlMemoryV2, used) == 32);
    assert!(size_of::<NvmlUtilization>() == 8);
    assert!(size_of::<NvmlProcessInfo>() == 24 && offset_of!(NvmlProcessInfo, used_gpu_memory) == 8);
    assert!(offset_of!(NvmlProcessInfo, compute_instance_id) == 20);
};

impl From<Memory> for NvmlMemory {
    fn from(m: Memory) -> Self {
        NvmlMemory {
            total: m.total,
            free: m.free,
            used: m.used,
        }
    }
}

impl From<Memory> for NvmlMemoryV2 {
    fn from(m: Memory) -> Self {
        NvmlMemoryV2 {
            version: NVML_MEMORY_V2,
            total: m.total,
            reserved: 0,
            free: m.free,
            used: m.used,
        }
    }
}

impl From<Process> for NvmlProcessInfo {
    fn from(p: Process) -> Self {
        NvmlProcessInfo {
            pid: p.pid,
            used_gpu_memory: p.used_gpu_memory,
            gpu_instance_id: NO_INSTANCE,
            compute_instance_id: NO_INSTANCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_v2_version_is_what_nvml_h_computes() {
        // NVML_STRUCT_VERSION(Memory, 2) = sizeof(nvmlMemory_v2_t) | 2 << 24 = 0x02000028.
        assert_eq!(NVML_MEMORY_V2, 0x0200_0028);
    }

    #[test]
    fn processes_outside_mig_carry_no_instance_ids() {
        let info = NvmlProcessInfo::from(Process {
            pid: 9,
            used_gpu_memory: 5,
        });
        assert_eq!((info.pid, info.used_gpu_memory), (9, 5));
        assert_eq!((info.gpu_instance_id, info.compute_instance_id), (u32::MAX, u32::MAX));
    }
}
