//! Real NVIDIA GPUs through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time,
//! so the binary builds and starts on machines without a driver). Each call to `devices` reads
//! the current memory use, processes and ECC state; nothing is cached. What the answers mean
//! is decided in `readings.rs`.

use llorch_manifests::api::{GpuSource, GpuView};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError};
use nvml_wrapper::error::NvmlError;

use super::readings::{self, Readings};
use super::{GpuError, GpuInventory};

/// The shared library NVML lives in (what `nvml-wrapper` opens on Linux).
pub const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// The GPUs NVML reports.
pub struct NvmlGpus {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlGpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlGpus").finish_non_exhaustive()
    }
}

impl NvmlGpus {
    /// Loads NVML and checks that it sees at least one GPU.
    pub fn open() -> Result<Self, GpuError> {
        let nvml = Nvml::init().map_err(|source| match source {
            NvmlError::LibloadingError(_) => GpuError::LoadLibrary {
                library: NVML_LIBRARY,
                source,
            },
            source => GpuError::Init { source },
        })?;
        let count = nvml.device_count().map_err(|source| GpuError::Init { source })?;
        if count == 0 {
            return Err(GpuError::NoDevices);
        }
        Ok(NvmlGpus { nvml })
    }

    /// Reads one device; a device that cannot be read is listed with its problem rather than
    /// failing the whole inventory.
    fn device(&self, index: u32) -> GpuView {
        let device = match self.nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => return readings::unreadable(index, &e),
        };
        readings::view(
            index,
            Readings {
                uuid: device.uuid(),
                name: device.name(),
                memory: device.memory_info().map(|m| (m.total, m.used, m.free)),
                utilization: device.utilization_rates().map(|u| u.gpu),
                // The v3 process lists; a driver too old for them shows no processes.
                compute: device.running_compute_processes(),
                graphics: device.running_graphics_processes(),
                ecc_uncorrected_volatile: device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
                pages_pending_retirement: device.are_pages_pending_retired(),
            },
        )
    }
}

impl GpuInventory for NvmlGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        let count = self.nvml.device_count().map_err(|source| GpuError::Init { source })?;
        if count == 0 {
            return Err(GpuError::NoDevices);
        }
        Ok((0..count).map(|index| self.device(index)).collect())
    }

    fn simulated(&self) -> bool {
        false
    }

    fn source(&self) -> GpuSource {
        GpuSource::Nvml
    }
}
