//! Where a plan's GPUs come from, and which of our replicas already hold some: the daemon's
//! inventory and replicas when it answers, else the config (a simulated list, `gpus: none`, or
//! NVML read here), else nothing — then the plan says the GPUs are unknown and shows the mask only.
//! It turns them into the placement planner's inputs exactly as the daemon does; it must not
//! place anything itself (that is `llorch_controller::placement`).

use llorch_controller::placement::{Accounting, Existing};
use llorch_manifests::api::GpuView;
use llorch_manifests::config::GpuConfig;
use llorch_manifests::status::{ReplicaPhase, ReplicaStatus};

/// Where the GPU list came from.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuSource {
    /// The daemon's inventory, as it publishes it (`/v2/gpus`: simulated devices already
    /// charged with what our replicas reserve).
    Daemon {
        /// The devices.
        devices: Vec<GpuView>,
        /// The inventory is simulated.
        simulated: bool,
    },
    /// The config's simulated list (the daemon did not answer).
    Config(Vec<GpuView>),
    /// NVML, read here (the daemon did not answer).
    Nvml(Vec<GpuView>),
    /// No GPUs by configuration (`gpus: none`, the daemon's or the config's): only Pools on
    /// `external` Engines run.
    NoGpus,
    /// Not known: why.
    Unknown(String),
}

impl GpuSource {
    /// Without the daemon: the inventory the config names, opened here as the daemon would.
    pub fn from_config(config: &GpuConfig) -> GpuSource {
        if *config == GpuConfig::None {
            return GpuSource::NoGpus;
        }
        let opened = llorch_controller::gpu::open(config).and_then(|inv| Ok((inv.devices()?, inv.simulated())));
        match opened {
            Ok((devices, true)) => GpuSource::Config(devices),
            Ok((devices, false)) => GpuSource::Nvml(devices),
            Err(e) => GpuSource::Unknown(e.to_string()),
        }
    }

    /// The devices as reported, when known.
    pub fn reported(&self) -> Option<&[GpuView]> {
        match self {
            GpuSource::Daemon { devices, .. } | GpuSource::Config(devices) | GpuSource::Nvml(devices) => Some(devices),
            GpuSource::NoGpus => Some(&[]),
            GpuSource::Unknown(_) => None,
        }
    }

    /// The inventory is simulated.
    pub fn simulated(&self) -> bool {
        match self {
            GpuSource::Daemon { simulated, .. } => *simulated,
            GpuSource::Config(_) => true,
            GpuSource::Nvml(_) | GpuSource::NoGpus | GpuSource::Unknown(_) => false,
        }
    }

    /// How the planner counts the devices' use (the daemon's rule).
    pub fn accounting(&self) -> Accounting {
        if self.simulated() {
            Accounting::Simulated
        } else {
            Accounting::Measured
        }
    }

    /// The devices as the daemon's planner reads them, when known. A simulated device it
    /// publishes is charged with our reservations; the planner starts from the bare device
    /// (all free) and charges the running replicas itself, so that charge is taken off here.
    pub fn for_planner(&self) -> Option<Vec<GpuView>> {
        let mut devices = self.reported()?.to_vec();
        for d in devices.iter_mut().filter(|d| d.simulated) {
            d.used_bytes = 0;
            d.free_bytes = d.total_bytes;
        }
        Some(devices)
    }

    /// One line saying where the list came from.
    pub fn describe(&self) -> String {
        match self {
            GpuSource::Daemon { simulated: true, .. } => "the daemon's inventory (simulated)".into(),
            GpuSource::Daemon { simulated: false, .. } => "the daemon's inventory (NVML)".into(),
            GpuSource::Config(_) => "the config's simulated list (the daemon did not answer)".into(),
            GpuSource::Nvml(_) => "NVML read here (the daemon did not answer)".into(),
            GpuSource::NoGpus => "none (config `gpus: none`: only Pools on external Engines run)".into(),
            GpuSource::Unknown(why) => format!("unknown ({why})"),
        }
    }
}

/// One of the daemon's replica rows as the planner sees its container: it exists when it has
/// one, runs unless it waits out a backoff, and has loaded its model once it has been Ready.
pub fn existing(r: &ReplicaStatus) -> Option<Existing> {
    r.container_id.as_ref()?;
    Some(Existing {
        pool: r.pool.clone(),
        index: r.index,
        gpus: r.gpus.clone(),
        running: !matches!(r.phase, ReplicaPhase::BackingOff | ReplicaPhase::CircuitOpen),
        allocated: r.phase == ReplicaPhase::Ready || r.ready_since.is_some(),
    })
}
