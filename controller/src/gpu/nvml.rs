//! Real NVIDIA GPUs through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time,
//! so the binary builds and starts on machines without a driver). Each call to `devices` reads
//! the current memory use; nothing is cached.

use llorch_manifests::api::GpuView;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

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

    fn device(&self, index: u32) -> Result<GpuView, GpuError> {
        let query = |what: &'static str| move |source| GpuError::Query { index, what, source };
        let device = self.nvml.device_by_index(index).map_err(query("handle"))?;
        let memory = device.memory_info().map_err(query("memory"))?;
        Ok(GpuView {
            index,
            uuid: device.uuid().map_err(query("uuid"))?,
            name: device.name().map_err(query("name"))?,
            total_bytes: memory.total,
            used_bytes: memory.used,
            free_bytes: memory.free,
            // Not every board reports utilisation (some vGPU and MIG setups do not).
            utilization_pct: device.utilization_rates().ok().map(|u| u.gpu),
            simulated: false,
            processes: Vec::new(),
            errors: Vec::new(),
        })
    }
}

impl GpuInventory for NvmlGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        let count = self.nvml.device_count().map_err(|source| GpuError::Init { source })?;
        if count == 0 {
            return Err(GpuError::NoDevices);
        }
        (0..count).map(|index| self.device(index)).collect()
    }

    fn simulated(&self) -> bool {
        false
    }

    fn source(&self) -> &'static str {
        "nvml"
    }
}
