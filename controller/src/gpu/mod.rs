//! The GPU inventory edge (trait only for now; the NVML and simulated implementations are
//! being written alongside — extend this file, keep the trait).

use llorch_manifests::api::GpuView;

/// Errors from a GPU inventory.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// Placeholder until the real variants land.
    #[error("{0}")]
    Other(String),
}

/// Where the daemon learns which GPUs exist.
pub trait GpuInventory: Send + Sync {
    /// The devices, as of now.
    fn devices(&self) -> Result<Vec<GpuView>, GpuError>;
    /// True for the simulated inventory.
    fn simulated(&self) -> bool;
    /// `nvml` or `simulated`.
    fn source(&self) -> &'static str;
}
