//! `orchctl plan pool/<name>` (or `-f file.yaml`): what llama-orch will do for a Pool, before
//! anything runs (ORCH-3207) — the model (reference, resolved file, cache, digest check), its
//! VRAM need, the Engine's provisioning steps for its mode, and per replica the GPUs the
//! daemon's own placement code would give it (or its refusal, word for word) and the exact
//! container or process the runtime would receive (image or executable, arguments with
//! placeholders filled, environment, GPU devices).
//!
//! [`gather`] does all the reading — the manifests directory like `apply` does (plus `-f`
//! input, which wins), the daemon's snapshot when it answers, else the config's GPUs — and
//! records what it could not know. [`render`] is pure: the same [`PlanInput`] gives
//! byte-identical text. Nothing here starts, creates or writes anything.
//!
//! - [`gather`]: inputs from files, the daemon and the config;
//! - [`gpus`]: where the GPU inventory and the running replicas come from;
//! - [`model`]: the model section and the VRAM figures;
//! - [`engine`]: the provisioning section and the Engine as the daemon launches it;
//! - [`replicas`]: placement and each replica's container or process;
//! - [`render`]: the sections in order, and what was not known.

use std::path::PathBuf;

use llorch_controller::placement::{Existing, PoolDemand};
use llorch_controller::provision::os::OsRelease;
use llorch_manifests::config::Config;
use llorch_manifests::parse::Located;
use llorch_manifests::status::ModelState;
use llorch_manifests::{Engine, Model};

pub mod engine;
pub mod gather;
pub mod gpus;
pub mod model;
pub mod render;
pub mod replicas;

pub use gather::{declared, run};
pub use gpus::GpuSource;
pub use model::Figures;
pub use render::render;

/// Replaces the unique suffix of container names, which is chosen when the replica starts.
pub const NAME_SUFFIX: &str = "<unique>";

/// Everything one Pool's plan is made from.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The Pool and the file that declares it.
    pub pool: Located,
    /// Its Engine, if declared.
    pub engine: Option<Engine>,
    /// Its Model and the file that declares it, if declared.
    pub model: Option<(Model, PathBuf)>,
    /// The config.
    pub config: Config,
    /// GPUs.
    pub gpus: GpuSource,
    /// Our replicas that exist now (from the daemon), for sticky GPUs and reservations.
    pub existing: Vec<Existing>,
    /// What every other declared Pool asks of the GPUs: placement is one ledger for the host.
    pub others: Vec<PoolDemand>,
    /// The daemon's view of the Model, if it answered.
    pub model_status: Option<ModelState>,
    /// The Model's VRAM figures and where they came from.
    pub figures: Figures,
    /// Engine cache.
    pub engine_cache: PathBuf,
    /// Model cache.
    pub model_cache: PathBuf,
    /// This host's OS.
    pub os: OsRelease,
    /// Whether the daemon answered (and at which URL).
    pub daemon: Result<String, String>,
}

#[cfg(test)]
mod tests;
