//! The inventory of `gpus: none`: a daemon that has no GPUs at all and only serves Pools on
//! `external` Engines (a gateway in front of engines that run elsewhere, e.g. on Kubernetes).
//! It lists no devices, is not simulated, and never fails: there is nothing to load or read.
//! It does not decide what may run; `serving::resolve` blocks every other Pool.

use llorch_manifests::api::{GpuSource, GpuView};

use super::{GpuError, GpuInventory};

/// No GPUs, by configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGpus;

impl GpuInventory for NoGpus {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        Ok(Vec::new())
    }

    fn simulated(&self) -> bool {
        false
    }

    fn source(&self) -> GpuSource {
        GpuSource::None
    }
}

#[cfg(test)]
mod tests {
    use llorch_manifests::config::GpuConfig;

    use super::*;

    #[test]
    fn gpus_none_opens_an_empty_inventory_that_is_not_simulated_and_never_fails() {
        let inventory = super::super::open(&GpuConfig::None).unwrap();
        assert_eq!(inventory.source(), GpuSource::None);
        assert!(!inventory.simulated());
        assert_eq!(inventory.devices().unwrap(), Vec::new());
        assert_eq!(inventory.devices().unwrap(), Vec::new(), "every read is the same");
    }
}
