//! VRAM-aware placement: which GPUs each replica of each Pool runs on. Pure — the controller
//! gathers the inventory, the containers that exist and what each Pool needs, and gets back,
//! per Pool and replica index, either the GPU list or a refusal that says why. Nothing here
//! creates or removes anything; a refused replica is simply never started.
//!
//! One pass builds a ledger of every device's free VRAM: what the device reports free
//! (NVML), minus the share of each of our replicas that runs but has not allocated yet
//! (`Accounting::Measured`: a Ready engine has loaded its model, so NVML already counts it);
//! on a simulated inventory nothing is ever really allocated, so every running replica of ours
//! is charged (`Accounting::Simulated`: used = reserved). Then, Pools by name, indices in
//! order:
//! 1. **Sticky**: a replica keeps the GPUs its container already has (the `gpus` label), so
//!    spec hashes do not churn, while those GPUs are inside the Pool's mask and healthy. A
//!    running container is already charged; one that is not running must fit again.
//! 2. **Fresh**: otherwise `gpusPerReplica` healthy devices inside the mask, most free VRAM
//!    first, then fewer of our replicas (zero-need replicas spread out), then lower index. Each
//!    device must hold its share of the need (even, or by `tensorSplit`). A device with
//!    `errors` or outside the mask is never chosen.
//! 3. Otherwise the replica is **refused**, with the need, every GPU of the mask, its free
//!    VRAM and the shortfall.
//!
//! All sticky decisions are made before any fresh one: a replica that exists keeps its place
//! before new ones are packed around it.

use std::collections::BTreeMap;

use llorch_manifests::ReplicaId;
use llorch_manifests::api::GpuView;

pub mod memory;
pub mod refusal;
pub mod vram;

pub use memory::PlacementMemory;

/// A replica's GPUs, or why it cannot be placed.
pub type Placement = Result<Vec<u32>, String>;

/// How a device's reported free VRAM relates to our replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accounting {
    /// Real devices (NVML): what our Ready replicas hold is already in the reported use.
    Measured,
    /// The simulated inventory has no real use: all our running replicas are charged.
    Simulated,
}

/// A container of ours that exists now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Its Pool.
    pub pool: String,
    /// Its replica index.
    pub index: u32,
    /// The GPUs it was given (its `gpus` label).
    pub gpus: Vec<u32>,
    /// The container runs.
    pub running: bool,
    /// Its engine passed a probe, i.e. has loaded its model and allocated its VRAM.
    pub allocated: bool,
}

/// What one Pool asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDemand {
    /// Pool name.
    pub name: String,
    /// Device indices it may use (`spec.gpus`, resolved).
    pub mask: Vec<u32>,
    /// GPUs per replica.
    pub gpus_per_replica: u32,
    /// `spec.tensorSplit`.
    pub tensor_split: Option<Vec<u32>>,
    /// Replicas wanted.
    pub replicas: u32,
    /// VRAM one replica needs, over all its GPUs.
    pub need: u64,
    /// False for a Pool that is not reconciled (blocked): its containers are charged, nothing
    /// is placed for it.
    pub place: bool,
}

impl PoolDemand {
    /// One replica's share of [`PoolDemand::need`] on each of its `gpus` GPUs.
    pub fn shares(&self, gpus: usize) -> Vec<u64> {
        vram::shares(self.need, gpus, self.tensor_split.as_deref())
    }
}

/// The result of one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pool → replica index → placement.
    pub pools: BTreeMap<String, BTreeMap<u32, Placement>>,
    /// VRAM our replicas reserve per device: running ones and those placed in this pass.
    pub reserved: BTreeMap<u32, u64>,
    /// Each device's VRAM still free once everything above is placed: room for a rollout's
    /// new replica next to its old one.
    pub free: BTreeMap<u32, i128>,
}

/// Why a Pool cannot be placed at all ([`mask_problem`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaskProblem {
    /// The mask names a GPU this host does not have.
    #[error(
        "GPU {missing} does not exist; this host has {} (see `orchctl get gpus`)",
        have(available)
    )]
    NoSuchGpu {
        /// The first index that does not exist.
        missing: u32,
        /// The indices that do.
        available: Vec<u32>,
    },
    /// The mask cannot hold one replica.
    #[error("cannot place replicas: {0} (spec.gpus / spec.gpusPerReplica)")]
    Unplaceable(#[source] MaskError),
}

/// What is wrong with a mask for `gpusPerReplica` ([`check_mask`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// It selects no GPU.
    #[error("the Pool's GPU selection is empty")]
    Empty,
    /// It selects fewer GPUs than one replica needs.
    #[error("gpusPerReplica is {per_replica} but only {selected} GPU(s) are selected")]
    TooFew {
        /// `gpusPerReplica`.
        per_replica: u32,
        /// GPUs in the mask.
        selected: usize,
    },
}

fn have(available: &[u32]) -> String {
    if available.is_empty() {
        "none".to_string()
    } else {
        format!("{available:?}")
    }
}

/// Why a Pool cannot be placed at all on `devices` (the daemon blocks it; `orchctl plan` says
/// the same): its mask names a GPU this host does not have, or selects fewer GPUs than
/// `gpusPerReplica`.
pub fn mask_problem(devices: &[GpuView], mask: &[u32], per_replica: u32) -> Result<(), MaskProblem> {
    let available: Vec<u32> = devices.iter().map(|g| g.index).collect();
    if let Some(&missing) = mask.iter().find(|i| !available.contains(i)) {
        return Err(MaskProblem::NoSuchGpu { missing, available });
    }
    check_mask(mask, per_replica).map_err(MaskProblem::Unplaceable)
}

/// Checks a Pool's mask against its `gpusPerReplica` (a spec problem, not a VRAM one).
pub fn check_mask(mask: &[u32], per_replica: u32) -> Result<(), MaskError> {
    if mask.is_empty() {
        return Err(MaskError::Empty);
    }
    if per_replica as usize > mask.len() {
        return Err(MaskError::TooFew {
            per_replica,
            selected: mask.len(),
        });
    }
    Ok(())
}

/// What is wrong with `gpus`, as one line naming each device, when any has errors or is no
/// longer in the inventory at all (NVML lists fewer GPUs than when the replica was placed: a
/// GPU fallen off the bus after a driver reload is gone, not "lost").
pub fn gpu_errors(devices: &[GpuView], gpus: &[u32]) -> Option<String> {
    let bad: Vec<String> = gpus
        .iter()
        .filter_map(|&index| match devices.iter().find(|d| d.index == index) {
            Some(d) if d.errors.is_empty() => None,
            Some(d) => Some(format!("{}: {}", refusal::device_name(d), d.errors.join("; "))),
            None => Some(format!(
                "GPU {index}: no longer in the GPU inventory ({} GPU(s) listed now); check `nvidia-smi -L` and \
                 `dmesg` for Xid errors",
                devices.len()
            )),
        })
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

struct Ledger<'a> {
    devices: BTreeMap<u32, &'a GpuView>,
    free: BTreeMap<u32, i128>,
    reserved: BTreeMap<u32, u64>,
    ours: BTreeMap<u32, u32>,
}

impl<'a> Ledger<'a> {
    fn new(devices: &'a [GpuView]) -> Self {
        Ledger {
            devices: devices.iter().map(|d| (d.index, d)).collect(),
            free: devices.iter().map(|d| (d.index, i128::from(d.free_bytes))).collect(),
            reserved: BTreeMap::new(),
            ours: BTreeMap::new(),
        }
    }

    /// The ledger once every running replica of ours is charged: those that have not
    /// allocated yet (all of them, simulated) take their shares off the free VRAM.
    fn with_running(
        devices: &'a [GpuView],
        accounting: Accounting,
        existing: &[Existing],
        pools: &[PoolDemand],
    ) -> Self {
        let mut ledger = Ledger::new(devices);
        for e in existing.iter().filter(|e| e.running) {
            let shares = pools
                .iter()
                .find(|p| p.name == e.pool)
                .map_or_else(|| vec![0; e.gpus.len()], |p| p.shares(e.gpus.len()));
            let pending = accounting == Accounting::Simulated || !e.allocated;
            ledger.charge(&e.gpus, &shares, pending);
        }
        ledger
    }

    /// Records a replica on `gpus`; `pending` takes its shares off the free VRAM.
    fn charge(&mut self, gpus: &[u32], shares: &[u64], pending: bool) {
        for (gpu, share) in gpus.iter().zip(shares) {
            if pending && let Some(free) = self.free.get_mut(gpu) {
                *free -= i128::from(*share);
            }
            *self.reserved.entry(*gpu).or_default() += share;
            *self.ours.entry(*gpu).or_default() += 1;
        }
    }

    fn healthy(&self, gpu: u32) -> bool {
        self.devices.get(&gpu).is_some_and(|d| d.errors.is_empty())
    }

    fn fits(&self, gpus: &[u32], shares: &[u64]) -> bool {
        gpus.iter()
            .zip(shares)
            .all(|(g, s)| self.free.get(g).is_some_and(|f| *f >= i128::from(*s)))
    }
}

/// Each device's free VRAM before anything new is placed: what it reports, less what our
/// running replicas hold but the device does not count yet (see [`Accounting`]).
pub fn free_vram(
    devices: &[GpuView],
    accounting: Accounting,
    existing: &[Existing],
    pools: &[PoolDemand],
) -> BTreeMap<u32, i128> {
    Ledger::with_running(devices, accounting, existing, pools).free
}

/// Places every replica of every Pool. Pure and deterministic.
pub fn plan(devices: &[GpuView], accounting: Accounting, existing: &[Existing], pools: &[PoolDemand]) -> Plan {
    let mut ledger = Ledger::with_running(devices, accounting, existing, pools);
    let mut pools: Vec<&PoolDemand> = pools.iter().collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));

    // Sticky first: replicas that exist keep their GPUs before anything new is packed.
    let mut out: BTreeMap<String, BTreeMap<u32, Placement>> = BTreeMap::new();
    for pool in pools.iter().filter(|p| p.place) {
        let g = pool.gpus_per_replica as usize;
        for index in 0..pool.replicas {
            let mut candidates: Vec<&Existing> = existing
                .iter()
                .filter(|e| e.pool == pool.name && e.index == index)
                .collect();
            candidates.sort_by_key(|e| !e.running);
            let keep = candidates.into_iter().find_map(|e| {
                let usable = e.gpus.len() == g && e.gpus.iter().all(|i| pool.mask.contains(i) && ledger.healthy(*i));
                if !usable {
                    return None;
                }
                if e.running {
                    return Some(e.gpus.clone());
                }
                let shares = pool.shares(g);
                ledger.fits(&e.gpus, &shares).then(|| {
                    ledger.charge(&e.gpus, &shares, true);
                    e.gpus.clone()
                })
            });
            if let Some(gpus) = keep {
                out.entry(pool.name.clone()).or_default().insert(index, Ok(gpus));
            }
        }
    }

    for pool in pools.iter().filter(|p| p.place) {
        for index in 0..pool.replicas {
            let decided = out.get(&pool.name).is_some_and(|m| m.contains_key(&index));
            if !decided {
                let placement = place_fresh(&mut ledger, pool, index);
                out.entry(pool.name.clone()).or_default().insert(index, placement);
            }
        }
    }
    Plan {
        pools: out,
        reserved: ledger.reserved,
        free: ledger.free,
    }
}

fn place_fresh(ledger: &mut Ledger<'_>, pool: &PoolDemand, index: u32) -> Placement {
    let g = pool.gpus_per_replica as usize;
    let replica = ReplicaId::new(&pool.name, index);
    let mut eligible: Vec<u32> = pool.mask.iter().copied().filter(|i| ledger.healthy(*i)).collect();
    eligible.sort_by_key(|i| {
        let free = ledger.free.get(i).copied().unwrap_or(0);
        (std::cmp::Reverse(free), ledger.ours.get(i).copied().unwrap_or(0), *i)
    });
    let mask_devices: Vec<&GpuView> = pool
        .mask
        .iter()
        .filter_map(|i| ledger.devices.get(i).copied())
        .collect();
    if g == 0 || eligible.len() < g {
        let unhealthy: Vec<String> = mask_devices
            .iter()
            .filter(|d| !d.errors.is_empty())
            .map(|d| refusal::device_text(d, 0, None))
            .collect();
        return Err(format!(
            "replica {replica} needs {g} healthy GPU(s) but its mask {:?} has {}{}",
            pool.mask,
            eligible.len(),
            if unhealthy.is_empty() {
                String::new()
            } else {
                format!(": {}", unhealthy.join("; "))
            }
        ));
    }
    let shares = pool.shares(g);
    let ascending = |set: &[u32]| {
        let mut s = set.to_vec();
        s.sort_unstable();
        s
    };
    let best = ascending(&eligible[..g]);
    let chosen = if ledger.fits(&best, &shares) {
        Some(best.clone())
    } else {
        // Uneven shares: another set may fit where the most-free one does not.
        combinations(&eligible, g)
            .map(|set| ascending(&set))
            .find(|set| ledger.fits(set, &shares))
    };
    match chosen {
        Some(gpus) => {
            ledger.charge(&gpus, &shares, true);
            Ok(gpus)
        }
        None => {
            let with_shares: Vec<(u32, u64)> = best.iter().copied().zip(shares.iter().copied()).collect();
            Err(refusal::refusal(
                replica.as_str(),
                pool.need,
                pool.tensor_split.as_deref(),
                &with_shares,
                &mask_devices,
                &ledger.free,
            ))
        }
    }
}

/// All `k`-subsets of `items`, in lexicographic order of positions.
fn combinations(items: &[u32], k: usize) -> impl Iterator<Item = Vec<u32>> + '_ {
    let n = items.len();
    let mut idx: Vec<usize> = (0..k).collect();
    let mut done = k > n;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let out: Vec<u32> = idx.iter().map(|i| items[*i]).collect();
        // Advance to the next combination.
        let mut i = k;
        loop {
            if i == 0 {
                done = true;
                break;
            }
            i -= 1;
            if idx[i] < n - k + i {
                idx[i] += 1;
                for j in i + 1..k {
                    idx[j] = idx[j - 1] + 1;
                }
                break;
            }
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests;
