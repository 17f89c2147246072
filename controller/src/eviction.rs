//! Eviction: which idle Pools to put to sleep so that a waking Pool fits. Pure — the controller
//! (`controller/eviction.rs`) says which Pool wakes, which Pools may go and the planner's inputs;
//! this answers with the Pools to evict, or none when evicting every candidate would still not
//! make room (the activation then waits for a busy Pool to go idle).
//!
//! Candidates are tried lowest `spec.priority` first, then least recently used, and added one by
//! one until the waking Pool's replicas all place ([`crate::placement::plan`] on the inputs as they
//! will be once the candidates are gone). Then any chosen Pool the others already make room
//! without is kept: nothing is evicted that the activation does not need.

use std::time::SystemTime;

use llorch_manifests::api::GpuView;

use crate::placement::{self, Accounting, Existing, PoolDemand};

/// The planner's inputs for one pass.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The GPUs, as last read.
    pub devices: &'a [GpuView],
    /// How their free VRAM relates to our replicas.
    pub accounting: Accounting,
    /// Our containers.
    pub existing: &'a [Existing],
    /// What each Pool asks for this pass.
    pub pools: &'a [PoolDemand],
}

/// The planner's inputs as they will be once some Pools run nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Without {
    /// The GPUs, with what the gone Pools' allocated replicas hold counted as free (a real
    /// device reports it used until the engine exits).
    pub devices: Vec<GpuView>,
    /// Our containers but theirs.
    pub existing: Vec<Existing>,
    /// The demands, theirs at zero replicas.
    pub pools: Vec<PoolDemand>,
}

impl Inputs<'_> {
    /// These inputs once `gone` have no replica.
    pub fn without(&self, gone: &[&str]) -> Without {
        let mut devices = self.devices.to_vec();
        if self.accounting == Accounting::Measured {
            for e in self
                .existing
                .iter()
                .filter(|e| e.running && e.allocated && gone.contains(&e.pool.as_str()))
            {
                let Some(pool) = self.pools.iter().find(|p| p.name == e.pool) else {
                    continue;
                };
                let shares = placement::vram::shares(pool.need, e.gpus.len(), pool.tensor_split.as_deref());
                for (gpu, share) in e.gpus.iter().zip(shares) {
                    if let Some(d) = devices.iter_mut().find(|d| d.index == *gpu) {
                        d.free_bytes = d.free_bytes.saturating_add(share).min(d.total_bytes);
                    }
                }
            }
        }
        Without {
            devices,
            existing: self
                .existing
                .iter()
                .filter(|e| !gone.contains(&e.pool.as_str()))
                .cloned()
                .collect(),
            pools: self
                .pools
                .iter()
                .map(|p| PoolDemand {
                    replicas: if gone.contains(&p.name.as_str()) { 0 } else { p.replicas },
                    ..p.clone()
                })
                .collect(),
        }
    }

    /// Whether every replica of `pool` places once `gone` have no replica.
    pub fn fits(&self, pool: &str, gone: &[&str]) -> bool {
        let w = self.without(gone);
        let plan = placement::plan(&w.devices, self.accounting, &w.existing, &w.pools);
        let wanted = w.pools.iter().find(|p| p.name == pool).map_or(0, |p| p.replicas);
        plan.pools
            .get(pool)
            .is_some_and(|placed| placed.values().filter(|p| p.is_ok()).count() as u32 >= wanted)
    }

    /// The most VRAM free on any one GPU `pool` may use, before anything is evicted.
    pub fn most_free(&self, pool: &str) -> u64 {
        let Some(demand) = self.pools.iter().find(|p| p.name == pool) else {
            return 0;
        };
        let free = placement::free_vram(self.devices, self.accounting, self.existing, self.pools);
        demand
            .mask
            .iter()
            .filter_map(|g| free.get(g))
            .map(|f| u64::try_from((*f).max(0)).unwrap_or(0))
            .max()
            .unwrap_or(0)
    }
}

/// An idle Pool that may be evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its name.
    pub pool: String,
    /// Its `spec.priority` (lower goes first).
    pub priority: i32,
    /// When it last had a task (earlier goes first; never before ever).
    pub last_active: Option<SystemTime>,
}

/// The Pools to evict so that `waking` fits, in the order they were chosen; `None` when even all
/// of `candidates` would not make room.
pub fn choose(inputs: &Inputs<'_>, waking: &str, mut candidates: Vec<Candidate>) -> Option<Vec<Candidate>> {
    candidates.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(a.last_active.cmp(&b.last_active))
            .then(a.pool.cmp(&b.pool))
    });
    let mut chosen: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        chosen.push(candidate);
        let names: Vec<&str> = chosen.iter().map(|c| c.pool.as_str()).collect();
        if inputs.fits(waking, &names) {
            // Keep any Pool the rest already make room without, the most valuable first.
            let mut i = chosen.len();
            while i > 1 {
                i -= 1;
                let rest: Vec<&str> = chosen
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i - 1)
                    .map(|(_, c)| c.pool.as_str())
                    .collect();
                if inputs.fits(waking, &rest) {
                    chosen.remove(i - 1);
                }
            }
            return Some(chosen);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GIB: u64 = 1 << 30;

    fn gpu(total_gib: u64) -> GpuView {
        GpuView {
            index: 0,
            uuid: "GPU-0".into(),
            name: "Simulated".into(),
            total_bytes: total_gib * GIB,
            used_bytes: 0,
            free_bytes: total_gib * GIB,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        }
    }

    fn demand(name: &str, need_gib: u64, replicas: u32) -> PoolDemand {
        PoolDemand {
            name: name.into(),
            mask: vec![0],
            gpus_per_replica: 1,
            tensor_split: None,
            replicas,
            need: need_gib * GIB,
            place: true,
        }
    }

    fn running(pool: &str) -> Existing {
        Existing {
            pool: pool.into(),
            index: 0,
            gpus: vec![0],
            running: true,
            allocated: true,
        }
    }

    fn candidate(pool: &str, priority: i32, last: u64) -> Candidate {
        Candidate {
            pool: pool.into(),
            priority,
            last_active: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(last)),
        }
    }

    #[test]
    fn lowest_priority_goes_first_then_the_least_recently_used_and_only_as_many_as_needed() {
        let devices = [gpu(12)];
        let existing = [running("a"), running("b")];
        let pools = [demand("a", 4, 1), demand("b", 4, 1), demand("c", 7, 1)];
        let inputs = Inputs {
            devices: &devices,
            accounting: Accounting::Simulated,
            existing: &existing,
            pools: &pools,
        };
        assert!(!inputs.fits("c", &[]), "4 GiB free, 7 needed");
        assert_eq!(inputs.most_free("c"), 4 * GIB);
        let chosen = choose(&inputs, "c", vec![candidate("a", 0, 20), candidate("b", 0, 10)]).unwrap();
        assert_eq!(chosen, vec![candidate("b", 0, 10)], "b was used longer ago");
        let chosen = choose(&inputs, "c", vec![candidate("a", 0, 20), candidate("b", 5, 10)]).unwrap();
        assert_eq!(chosen, vec![candidate("a", 0, 20)], "higher priority stays");
    }

    #[test]
    fn no_eviction_when_even_all_candidates_would_not_make_room() {
        let devices = [gpu(12)];
        let existing = [running("busy"), running("idle")];
        let pools = [demand("busy", 8, 1), demand("idle", 2, 1), demand("c", 7, 1)];
        let inputs = Inputs {
            devices: &devices,
            accounting: Accounting::Simulated,
            existing: &existing,
            pools: &pools,
        };
        assert_eq!(choose(&inputs, "c", vec![candidate("idle", 0, 1)]), None);
    }

    #[test]
    fn a_small_first_choice_is_kept_when_the_next_alone_makes_room() {
        let devices = [gpu(12)];
        let existing = [running("small"), running("big")];
        let pools = [demand("small", 1, 1), demand("big", 9, 1), demand("c", 8, 1)];
        let inputs = Inputs {
            devices: &devices,
            accounting: Accounting::Simulated,
            existing: &existing,
            pools: &pools,
        };
        let chosen = choose(&inputs, "c", vec![candidate("small", 0, 1), candidate("big", 0, 2)]).unwrap();
        assert_eq!(chosen, vec![candidate("big", 0, 2)]);
    }

    #[test]
    fn on_real_devices_an_evicted_replicas_vram_counts_as_free() {
        let mut device = gpu(12);
        device.simulated = false;
        device.used_bytes = 7 * GIB;
        device.free_bytes = 5 * GIB;
        let devices = [device];
        let existing = [running("a")];
        let pools = [demand("a", 7, 1), demand("c", 7, 1)];
        let inputs = Inputs {
            devices: &devices,
            accounting: Accounting::Measured,
            existing: &existing,
            pools: &pools,
        };
        assert!(!inputs.fits("c", &[]));
        assert!(
            inputs.fits("c", &["a"]),
            "a's 7 GiB, counted used by the device, is given back"
        );
        assert_eq!(inputs.without(&["a"]).devices[0].free_bytes, 12 * GIB);
    }
}
