//! An in-memory GPU inventory for tests: the devices it is given, which a test can change
//! while the controller holds it — inject a driver or ECC error, take memory away — to see how
//! replicas react. Never used by the daemon.

use std::sync::{Arc, Mutex, PoisonError};

use llorch_manifests::api::{GpuSource, GpuView};

use super::{GpuError, GpuInventory};

/// A shared, mutable list of devices; clones share it.
#[derive(Clone, Debug)]
pub struct FakeGpus {
    devices: Arc<Mutex<Vec<GpuView>>>,
    simulated: bool,
}

impl FakeGpus {
    /// `count` simulated GPUs of `gib` GiB each, all free (`SIM-GPU-<i>`, `Fake GPU <i>`).
    pub fn uniform(count: u32, gib: u64) -> Self {
        Self::new(
            (0..count)
                .map(|index| GpuView {
                    index,
                    uuid: format!("SIM-GPU-{index}"),
                    name: format!("Fake GPU {index}"),
                    total_bytes: gib << 30,
                    used_bytes: 0,
                    free_bytes: gib << 30,
                    utilization_pct: None,
                    simulated: true,
                    processes: Vec::new(),
                    process_listing: Default::default(),
                    errors: Vec::new(),
                })
                .collect(),
            true,
        )
    }

    /// Exactly these devices.
    pub fn new(devices: Vec<GpuView>, simulated: bool) -> Self {
        Self {
            devices: Arc::new(Mutex::new(devices)),
            simulated,
        }
    }

    /// Replaces device `index`'s errors (empty: healthy again).
    pub fn set_errors(&self, index: u32, errors: &[&str]) {
        self.edit(index, |d| d.errors = errors.iter().map(|e| (*e).to_string()).collect());
    }

    /// Changes device `index` in place.
    pub fn edit(&self, index: u32, change: impl FnOnce(&mut GpuView)) {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = devices.iter_mut().find(|d| d.index == index) {
            change(d);
        }
    }
}

impl GpuInventory for FakeGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        Ok(self.devices.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    fn simulated(&self) -> bool {
        self.simulated
    }

    fn source(&self) -> GpuSource {
        if self.simulated {
            GpuSource::Simulated
        } else {
            GpuSource::Nvml
        }
    }
}
