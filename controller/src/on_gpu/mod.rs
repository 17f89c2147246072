//! "The engine is on its GPU": whether a Ready replica's processes show up in NVML's process
//! list of every GPU it was placed on — and, past a grace period, what to do when they do not.
//! An engine that answers its health probe but holds nothing on its GPU computes on the CPU
//! (llama.cpp without `--n-gpu-layers`, a container without GPU access, a build without CUDA),
//! and llama-orch never serves CPU inference.
//!
//! Pure: [`look`] reads the pids and the inventory, [`decide`] the grace, [`fix`] the engine.
//! The pool reconcile (`pool::on_gpu`) asks the runtime for the pids, keeps the per-container
//! memory, emits the events and takes the replica out of service. Only for GPUs from NVML:
//! a simulated inventory has no processes and `gpus: none` no GPUs, so neither is checked.

mod fix;

use std::time::Duration;

use llorch_manifests::ReplicaId;
use llorch_manifests::api::{GpuView, ProcessListing};

pub use fix::Fix;

/// Why a GPU cannot be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unchecked {
    /// NVML gives no process list for it.
    Listing(ProcessListing),
    /// The GPU is not in the inventory at all.
    NotInInventory,
}

impl std::fmt::Display for Unchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unchecked::Listing(l) => f.write_str(l.why_not().unwrap_or("its processes are listed")),
            Unchecked::NotInInventory => f.write_str("it is not in the GPU inventory"),
        }
    }
}

/// What NVML shows of one replica on one of its GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDevice {
    /// One of its pids is listed there (with memory, when NVML reports the amount).
    Found {
        /// The pid NVML lists.
        pid: u32,
        /// The memory it holds, when reported.
        used_bytes: Option<u64>,
    },
    /// None of its pids is listed there with memory.
    Missing,
    /// It cannot be told.
    Unchecked(Unchecked),
}

/// One GPU of the replica and what is seen there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Device index.
    pub index: u32,
    /// Device UUID (empty when not in the inventory).
    pub uuid: String,
    /// What NVML shows.
    pub on: OnDevice,
}

/// For each GPU in `placed`, whether one of `pids` is in its NVML process list. A pid listed
/// with 0 bytes does not count (a CUDA context that holds nothing computes nothing there); a
/// pid listed without an amount does (some drivers never report one).
pub fn look(pids: &[u32], placed: &[u32], gpus: &[GpuView]) -> Vec<Finding> {
    placed
        .iter()
        .map(|&index| {
            let Some(g) = gpus.iter().find(|g| g.index == index) else {
                return Finding {
                    index,
                    uuid: String::new(),
                    on: OnDevice::Unchecked(Unchecked::NotInInventory),
                };
            };
            let on = if !g.process_listing.is_listed() {
                OnDevice::Unchecked(Unchecked::Listing(g.process_listing))
            } else {
                g.processes
                    .iter()
                    .find(|p| pids.contains(&p.pid) && p.used_bytes != Some(0))
                    .map_or(OnDevice::Missing, |p| OnDevice::Found {
                        pid: p.pid,
                        used_bytes: p.used_bytes,
                    })
            };
            Finding {
                index,
                uuid: g.uuid.clone(),
                on,
            }
        })
        .collect()
}

/// What becomes of a Ready replica this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Found on every GPU that can be checked: it serves.
    OnGpu,
    /// Missing somewhere, but within the grace period (`left` of it): it serves for now.
    Unconfirmed {
        /// Grace left.
        left: Duration,
    },
    /// Missing on these GPUs past the grace period: out of service.
    NotOnGpu {
        /// The GPUs it is missing on.
        missing: Vec<Finding>,
    },
}

/// Decides from the findings, how long the replica has been Ready and the grace period.
/// GPUs that cannot be checked never count against it.
pub fn decide(findings: &[Finding], ready_for: Duration, grace: Duration) -> Decision {
    let missing: Vec<Finding> = findings.iter().filter(|f| f.on == OnDevice::Missing).cloned().collect();
    if missing.is_empty() {
        Decision::OnGpu
    } else if ready_for < grace {
        Decision::Unconfirmed {
            left: grace - ready_for,
        }
    } else {
        Decision::NotOnGpu { missing }
    }
}

/// `GPU 0 (GPU-…)`.
pub fn gpu_name(index: u32, uuid: &str) -> String {
    if uuid.is_empty() {
        format!("GPU {index}")
    } else {
        format!("GPU {index} ({uuid})")
    }
}

/// What a NotOnGpu replica's event and its Pool's condition say: the replica, the GPUs, the
/// pids looked for, and the fix.
pub fn not_on_gpu_message(replica: &ReplicaId, pool: &str, missing: &[Finding], pids: &[u32], fix: Fix) -> String {
    let gpus: Vec<String> = missing.iter().map(|f| gpu_name(f.index, &f.uuid)).collect();
    let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    format!(
        "replica {replica} of Pool {pool} is not on its GPU: none of its processes (pids {pids}) holds memory on {} \
         in NVML's process list, so its engine computes on the CPU, which llama-orch never serves; it takes no \
         tasks and is left running so its logs can be read (`orchctl logs {replica}`). Fix: {fix}",
        gpus.join(", ")
    )
}

#[cfg(test)]
mod tests;
