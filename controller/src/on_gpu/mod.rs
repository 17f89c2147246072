//! "The engine is on its GPU": whether a Ready replica's processes show up in NVML's process
//! list of every GPU it was placed on — and, past a grace period, what to do when they do not.
//! An engine that answers its health probe but holds nothing on its GPU computes on the CPU
//! (llama.cpp without `--n-gpu-layers`, a container without GPU access, a build without CUDA),
//! and llama-orch never serves CPU inference.
//!
//! Being listed is not enough: a CUDA build of llama.cpp with `--n-gpu-layers 0` opens a CUDA
//! context and is listed with its compute buffers (0.59 GiB on an H200, docs/gpus.md) while
//! every weight stays in host memory. So when the model's weights are known from its GGUF
//! header, the replica's processes must also hold at least [`WEIGHTS_SHARE_PERCENT`] % of them
//! on its GPUs together, when NVML reports the amounts.
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

/// The share of a model's weights (percent) a replica's processes must hold on its GPUs.
/// Below 100 because NVML counts MiB pages and an engine may keep a small tensor (the token
/// embedding lookup, say) in host memory; far above what a CUDA context without layers holds.
pub const WEIGHTS_SHARE_PERCENT: u64 = 90;

/// What NVML shows of one replica on one of its GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDevice {
    /// One of its pids is listed there (with memory, when NVML reports the amount).
    Found {
        /// The first of its pids NVML lists.
        pid: u32,
        /// The memory its listed pids hold together, when NVML reports every amount.
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

/// For each GPU in `placed`, whether one of `pids` is in its NVML process list, and how much
/// memory its listed pids hold there together. A pid listed with 0 bytes does not count (a
/// CUDA context that holds nothing computes nothing there); a pid listed without an amount does
/// (some drivers never report one), and then the total is unknown.
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
                let ours: Vec<_> = g
                    .processes
                    .iter()
                    .filter(|p| pids.contains(&p.pid) && p.used_bytes != Some(0))
                    .collect();
                ours.first().map_or(OnDevice::Missing, |first| OnDevice::Found {
                    pid: first.pid,
                    used_bytes: ours.iter().map(|p| p.used_bytes).sum(),
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
    /// Not on its GPUs past the grace period: out of service.
    NotOnGpu(Shortfall),
}

/// Why a replica is not on its GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    /// None of its pids is listed (with memory) on these GPUs.
    Missing(Vec<Finding>),
    /// Listed on every GPU, but holding less than [`WEIGHTS_SHARE_PERCENT`] % of the model's
    /// weights there together: the weights are in host memory.
    Weights {
        /// What its pids hold on its GPUs together.
        held: u64,
        /// The model's weights (GGUF header).
        weights: u64,
        /// Where it is listed.
        found: Vec<Finding>,
    },
}

/// Decides from the findings, the model's weights when known (`None` for a `vramBytes`
/// override or a model without a header), how long the replica has been Ready and the grace
/// period. GPUs that cannot be checked never count against it, and neither does memory NVML
/// does not report.
pub fn decide(findings: &[Finding], weights: Option<u64>, ready_for: Duration, grace: Duration) -> Decision {
    let shortfall = shortfall(findings, weights);
    match shortfall {
        None => Decision::OnGpu,
        Some(_) if ready_for < grace => Decision::Unconfirmed {
            left: grace - ready_for,
        },
        Some(why) => Decision::NotOnGpu(why),
    }
}

fn shortfall(findings: &[Finding], weights: Option<u64>) -> Option<Shortfall> {
    let missing: Vec<Finding> = findings.iter().filter(|f| f.on == OnDevice::Missing).cloned().collect();
    if !missing.is_empty() {
        return Some(Shortfall::Missing(missing));
    }
    let weights = weights.filter(|w| *w > 0)?;
    let found: Vec<Finding> = findings
        .iter()
        .filter(|f| matches!(f.on, OnDevice::Found { .. }))
        .cloned()
        .collect();
    // Every amount must be known, and every GPU checkable: a part of the weights may sit on a
    // GPU whose processes NVML cannot list.
    if found.is_empty() || found.len() != findings.len() {
        return None;
    }
    let held = found
        .iter()
        .map(|f| match f.on {
            OnDevice::Found { used_bytes, .. } => used_bytes,
            _ => None,
        })
        .sum::<Option<u64>>()?;
    let enough = u128::from(held) * 100 >= u128::from(weights) * u128::from(WEIGHTS_SHARE_PERCENT);
    (!enough).then_some(Shortfall::Weights { held, weights, found })
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
/// pids looked for (and, for weights in host memory, the bytes), and the fix.
pub fn not_on_gpu_message(replica: &ReplicaId, pool: &str, why: &Shortfall, pids: &[u32], fix: Fix) -> String {
    let names = |fs: &[Finding]| {
        fs.iter()
            .map(|f| gpu_name(f.index, &f.uuid))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let what = match why {
        Shortfall::Missing(missing) => format!(
            "none of its processes (pids {pids}) holds memory on {} in NVML's process list",
            names(missing)
        ),
        Shortfall::Weights { held, weights, found } => format!(
            "its processes (pids {pids}) hold {} on {} in NVML's process list, less than {WEIGHTS_SHARE_PERCENT} % \
             of its model's {} of weights",
            gib(*held),
            names(found),
            gib(*weights)
        ),
    };
    format!(
        "replica {replica} of Pool {pool} is not on its GPU: {what}, so its engine computes on the CPU, which \
         llama-orch never serves; it takes no tasks and is left running so its logs can be read \
         (`orchctl logs {replica}`). Fix: {fix}"
    )
}

/// Bytes as GiB with two decimals.
fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests;
