//! A simulated GPU inventory, exactly as listed in `gpus: {simulate: [...]}`: uuids
//! `SIM-GPU-<index>`, flagged `simulated` everywhere it shows. Lets tests and demos exercise
//! placement on a machine without GPUs; nothing ever runs on these devices. It reports all
//! VRAM free and 0 % utilisation: no process really uses it. Its use is what llama-orch's own replicas reserve,
//! which the controller charges after placement (`gpu::charge_reserved`).

use llorch_manifests::api::{GpuSource, GpuView};
use llorch_manifests::config::SimulatedGpu;

use super::{GpuError, GpuInventory};

/// The simulated inventory.
#[derive(Clone, Debug)]
pub struct SimulatedGpus {
    devices: Vec<GpuView>,
}

impl SimulatedGpus {
    /// From the config's list; empty lists and GPUs without VRAM are errors.
    pub fn new(gpus: &[SimulatedGpu]) -> Result<Self, GpuError> {
        if gpus.is_empty() {
            return Err(GpuError::EmptySimulation);
        }
        let mut devices = Vec::with_capacity(gpus.len());
        for (index, gpu) in gpus.iter().enumerate() {
            if gpu.vram_bytes == 0 {
                return Err(GpuError::SimulatedWithoutVram {
                    index,
                    name: gpu.name.clone(),
                });
            }
            devices.push(GpuView {
                index: index as u32,
                uuid: format!("SIM-GPU-{index}"),
                name: gpu.name.clone(),
                total_bytes: gpu.vram_bytes,
                used_bytes: 0,
                free_bytes: gpu.vram_bytes,
                utilization_pct: Some(0),
                simulated: true,
                processes: Vec::new(),
                process_listing: Default::default(),
                errors: Vec::new(),
            });
        }
        Ok(SimulatedGpus { devices })
    }
}

impl GpuInventory for SimulatedGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        Ok(self.devices.clone())
    }

    fn simulated(&self) -> bool {
        true
    }

    fn source(&self) -> GpuSource {
        GpuSource::Simulated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, gib: u64) -> SimulatedGpu {
        SimulatedGpu {
            name: name.into(),
            vram_bytes: gib << 30,
        }
    }

    #[test]
    fn the_reference_24_plus_12_gb_workstation_is_listed_in_order_all_free_and_flagged_simulated() {
        let inv = SimulatedGpus::new(&[gpu("Simulated RTX 3090", 24), gpu("Simulated RTX 3060", 12)]).unwrap();
        let devices = inv.devices().unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(
            devices[1],
            GpuView {
                index: 1,
                uuid: "SIM-GPU-1".into(),
                name: "Simulated RTX 3060".into(),
                total_bytes: 12 << 30,
                used_bytes: 0,
                free_bytes: 12 << 30,
                utilization_pct: Some(0),
                simulated: true,
                processes: Vec::new(),
                process_listing: Default::default(),
                errors: Vec::new(),
            }
        );
        assert_eq!(devices[0].uuid, "SIM-GPU-0");
        assert!(inv.simulated());
        assert_eq!(inv.source(), GpuSource::Simulated);
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert!(matches!(SimulatedGpus::new(&[]), Err(GpuError::EmptySimulation)));
    }

    #[test]
    fn a_gpu_without_vram_is_refused_by_position_and_name() {
        let err = SimulatedGpus::new(&[gpu("a", 1), gpu("b", 0)]).unwrap_err().to_string();
        assert_eq!(
            err,
            "`gpus.simulate[1]` (`b`) has `vramBytes: 0`; give it the VRAM it simulates, in bytes"
        );
    }
}
