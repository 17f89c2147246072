//! The GPU inventory edge: which NVIDIA GPUs this host has and how much VRAM each has free.
//! One narrow trait, [`GpuInventory`], with NVIDIA's management library behind it in
//! production (`nvml.rs`), an explicit, labelled simulation for tests and demos
//! (`simulated.rs`), and no GPUs at all for a daemon that only serves `external` Engines
//! (`none.rs`, `gpus: none`). It only reports; it never picks GPUs for anyone and never falls
//! back to CPU: without a usable GPU, [`open`] fails with what to fix — unless the config says
//! there are none.
//!
//! Used and free VRAM: NVML reports what the devices really hold. A simulated device holds
//! nothing, so its use is what llama-orch's own replicas reserve: the controller computes
//! those reservations during placement and applies them with [`charge_reserved`].

use llorch_manifests::api::{GpuSource, GpuView};
use llorch_manifests::config::GpuConfig;

use std::collections::BTreeMap;

pub mod fake;
mod none;
mod nvml;
mod readings;
mod simulated;

pub use none::NoGpus;
pub use nvml::NvmlGpus;
pub use simulated::SimulatedGpus;

/// What llama-orch says whenever no real GPU can be used: it never runs inference on CPU.
pub const NO_CPU_FALLBACK: &str = "llama-orch never falls back to CPU inference";

/// Errors from the GPU inventory.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The NVML library could not be opened: no NVIDIA driver is installed.
    #[error(
        "NVML could not be loaded ({library} not found): no NVIDIA driver on this host. Install the NVIDIA \
         driver (e.g. `apt install nvidia-driver`, then reboot) and check `nvidia-smi`, or for tests and demos \
         set `gpus: {{simulate: [...]}}` in config.yaml — {NO_CPU_FALLBACK}."
    )]
    LoadLibrary {
        /// The library looked for.
        library: &'static str,
        /// The loader's own words.
        #[source]
        source: nvml_wrapper::error::NvmlError,
    },
    /// NVML loaded but could not start (driver not loaded, version mismatch, no permission…).
    #[error(
        "NVML could not be initialised: {source}. The NVIDIA driver is installed but not usable: check that \
         `nvidia-smi` works (a reboot after a driver update, or `modprobe nvidia`, often fixes it) — \
         {NO_CPU_FALLBACK}."
    )]
    Init {
        /// NVML's error.
        #[source]
        source: nvml_wrapper::error::NvmlError,
    },
    /// NVML works but reports no GPU.
    #[error(
        "NVML reports no NVIDIA GPU on this host. Check `nvidia-smi -L`, or for tests and demos set \
         `gpus: {{simulate: [...]}}` in config.yaml — {NO_CPU_FALLBACK}."
    )]
    NoDevices,
    /// Reading one device failed.
    #[error("reading GPU {index} ({what}) through NVML failed: {source}")]
    Query {
        /// Device index.
        index: u32,
        /// What was being read: `handle`, `uuid`, `name`, `memory`.
        what: &'static str,
        /// NVML's error.
        #[source]
        source: nvml_wrapper::error::NvmlError,
    },
    /// `gpus: {simulate: []}`.
    #[error(
        "`gpus.simulate` is empty: list at least one simulated GPU, e.g. \
         `gpus: {{simulate: [{{name: Simulated RTX 3090, vramBytes: 25769803776}}]}}`, or use `gpus: nvml` \
         for real GPUs — {NO_CPU_FALLBACK}."
    )]
    EmptySimulation,
    /// A simulated GPU with no VRAM.
    #[error("`gpus.simulate[{index}]` (`{name}`) has `vramBytes: 0`; give it the VRAM it simulates, in bytes")]
    SimulatedWithoutVram {
        /// Position in the list.
        index: usize,
        /// Its name.
        name: String,
    },
}

/// The GPUs this host has, as the controller and the API show them.
pub trait GpuInventory: Send + Sync {
    /// Every GPU, ordered by index, with its current VRAM use.
    fn devices(&self) -> Result<Vec<GpuView>, GpuError>;

    /// True when the inventory is simulated: no inference can run on it.
    fn simulated(&self) -> bool;

    /// Where the devices come from: `nvml`, `simulated` or `none`.
    fn source(&self) -> GpuSource;
}

/// Opens the inventory the config asks for. Fails — never degrades — when it is unusable: no
/// NVIDIA driver, no GPU, or an empty simulation. `gpus: none` never fails: it lists nothing.
pub fn open(config: &GpuConfig) -> Result<Box<dyn GpuInventory>, GpuError> {
    match config {
        GpuConfig::Nvml => Ok(Box::new(NvmlGpus::open()?)),
        GpuConfig::Simulate(gpus) => Ok(Box::new(SimulatedGpus::new(gpus)?)),
        GpuConfig::None => Ok(Box::new(NoGpus)),
    }
}

/// A simulated inventory's use: `used` = what our replicas reserve on each device, `free` =
/// the rest. Only for simulated devices; NVML's figures are never overwritten.
pub fn charge_reserved(devices: &mut [GpuView], reserved: &BTreeMap<u32, u64>) {
    for d in devices.iter_mut().filter(|d| d.simulated) {
        let r = reserved.get(&d.index).copied().unwrap_or(0);
        d.used_bytes = r.min(d.total_bytes);
        d.free_bytes = d.total_bytes.saturating_sub(r);
    }
}

#[cfg(test)]
mod tests {
    use llorch_manifests::config::SimulatedGpu;

    use super::*;

    #[test]
    fn a_simulated_config_opens_a_simulated_inventory() {
        let config = GpuConfig::Simulate(vec![SimulatedGpu {
            name: "Simulated RTX 3090".into(),
            vram_bytes: 24 << 30,
        }]);
        let inventory = open(&config).unwrap();
        assert!(inventory.simulated());
        assert_eq!(inventory.source(), GpuSource::Simulated);
        assert_eq!(inventory.devices().unwrap().len(), 1);
    }

    #[test]
    fn reservations_become_the_use_of_simulated_gpus_only() {
        let mut devices = fake::FakeGpus::uniform(2, 12).devices().unwrap();
        devices[1].simulated = false;
        devices[1].used_bytes = 1;
        charge_reserved(&mut devices, &BTreeMap::from([(0, 5 << 30), (1, 3 << 30)]));
        assert_eq!((devices[0].used_bytes, devices[0].free_bytes), (5 << 30, 7 << 30));
        assert_eq!(devices[1].used_bytes, 1, "a real device keeps what NVML said");
        charge_reserved(&mut devices, &BTreeMap::from([(0, 20 << 30)]));
        assert_eq!(
            (devices[0].used_bytes, devices[0].free_bytes),
            (12 << 30, 0),
            "over-reserved reads full"
        );
    }

    #[test]
    fn an_empty_simulation_is_an_error_that_shows_how_to_write_one() {
        let err = open(&GpuConfig::Simulate(vec![])).err().unwrap().to_string();
        assert!(err.starts_with("`gpus.simulate` is empty"), "{err}");
        assert!(err.contains("never falls back to CPU"), "{err}");
    }

    /// ORCH-1102: without a GPU the daemon fails fast with what to fix. This machine has no
    /// NVIDIA driver; on one that has, the inventory must list real devices instead.
    #[test]
    fn without_an_nvidia_driver_nvml_fails_with_what_is_missing_and_what_to_do() {
        match open(&GpuConfig::Nvml) {
            Err(GpuError::LoadLibrary { library, .. }) => {
                let err = open(&GpuConfig::Nvml).err().unwrap().to_string();
                assert_eq!(library, "libnvidia-ml.so.1");
                assert!(
                    err.starts_with(
                        "NVML could not be loaded (libnvidia-ml.so.1 not found): no NVIDIA driver on this host."
                    ),
                    "{err}"
                );
                assert!(err.contains("apt install nvidia-driver"), "{err}");
                assert!(err.contains("nvidia-smi"), "{err}");
                assert!(err.contains("gpus: {simulate: [...]}"), "{err}");
                assert!(err.contains("llama-orch never falls back to CPU inference."), "{err}");
            }
            Ok(inventory) => {
                let devices = inventory.devices().unwrap();
                assert!(!devices.is_empty() && !inventory.simulated() && inventory.source() == GpuSource::Nvml);
            }
            Err(other) => panic!("an unexpected NVML error on this host: {other}"),
        }
    }
}
