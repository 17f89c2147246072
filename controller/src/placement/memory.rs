//! Placement across passes, for the controller: turning Pools and containers into the
//! planner's inputs, and remembering each replica's last decision so that a refusal is one
//! `PlacementRefused` event (not one per pass), `placement_decisions_total` counts changes, and
//! each Pool's `status.vram` and the simulated inventory's use come from the latest plan.

use std::collections::{BTreeMap, HashMap, HashSet};

use llorch_manifests::api::GpuView;
use llorch_manifests::identity::ReplicaLabels;
use llorch_manifests::status::{EventType, ModelVram, PoolVram};
use llorch_manifests::{Kind, Model, ObjectRef, Pool, Reason, ReplicaId};

use super::{Existing, Plan, PoolDemand, vram};
use crate::runtime::ContainerInfo;
use crate::state_dir::EventLog;

/// One of our containers as the planner sees it; `allocated` says whether its engine has
/// been Ready (so has loaded its model).
pub fn existing(c: &ContainerInfo, allocated: bool) -> Option<Existing> {
    let l = ReplicaLabels::read(&c.labels)?;
    Some(Existing {
        pool: l.pool,
        index: l.index,
        gpus: l.gpus,
        running: c.state.is_running(),
        allocated,
    })
}

/// What `pool` asks of the GPUs, and its VRAM breakdown. `figures` is the Model's
/// `status.model.vram`, when its manager has sized it; `place` is false for a Pool that is
/// not reconciled this pass.
pub fn demand(
    pool: &Pool,
    model: Option<&Model>,
    figures: Option<&ModelVram>,
    devices: &[GpuView],
    place: bool,
) -> (PoolDemand, PoolVram) {
    let available: Vec<u32> = devices.iter().map(|d| d.index).collect();
    let pool_vram = match model {
        Some(m) => vram::pool_vram(
            m.spec.vram_bytes,
            figures,
            pool.spec.effective_ctx(&m.spec),
            pool.spec.slots_per_replica,
        ),
        None => vram::pool_vram(None, None, 0, 0),
    };
    let demand = PoolDemand {
        name: pool.name().to_string(),
        mask: pool.spec.gpus.select(&available),
        gpus_per_replica: pool.spec.gpus_per_replica,
        tensor_split: pool.spec.tensor_split.clone(),
        replicas: pool.spec.replica_count(),
        need: pool_vram.per_replica_bytes,
        place,
    };
    (demand, pool_vram)
}

/// What the controller keeps between passes.
#[derive(Debug, Default)]
pub struct PlacementMemory {
    last: HashMap<(String, u32), Result<Vec<u32>, String>>,
    decisions: BTreeMap<String, BTreeMap<String, u64>>,
    vram: BTreeMap<String, PoolVram>,
    warned: HashSet<String>,
    reserved: BTreeMap<u32, u64>,
}

impl PlacementMemory {
    /// Takes in one pass's plan: counts and reports the decisions that changed, warns once per
    /// Pool whose need is unknown, and keeps each Pool's VRAM figures.
    pub fn record(&mut self, plan: &Plan, demands: &[(PoolDemand, PoolVram)], events: &EventLog) {
        for (demand, v) in demands {
            if demand.place && v.source == vram::SOURCE_UNKNOWN && self.warned.insert(demand.name.clone()) {
                tracing::warn!(
                    pool = %demand.name,
                    "VRAM need unknown (no GGUF figures and no `vramBytes` on its Model): placed as needing 0 bytes"
                );
            } else if v.source != vram::SOURCE_UNKNOWN {
                self.warned.remove(&demand.name);
            }
        }
        let mut seen = HashSet::new();
        for (pool, placements) in &plan.pools {
            let obj = ObjectRef::new(Kind::Pool, pool.clone());
            for (index, placement) in placements {
                let key = (pool.clone(), *index);
                seen.insert(key.clone());
                if self.last.get(&key) == Some(placement) {
                    continue;
                }
                let outcome = if placement.is_ok() { "placed" } else { "refused" };
                *self
                    .decisions
                    .entry(pool.clone())
                    .or_default()
                    .entry(outcome.to_string())
                    .or_default() += 1;
                if let Err(why) = placement {
                    let replica = ReplicaId::new(pool, *index);
                    events.emit(
                        Some(&obj),
                        Some(&replica),
                        EventType::Warning,
                        Reason::PlacementRefused,
                        why.clone(),
                    );
                }
                self.last.insert(key, placement.clone());
            }
        }
        self.last.retain(|k, _| seen.contains(k));
        let declared: HashSet<&str> = demands.iter().map(|(d, _)| d.name.as_str()).collect();
        self.decisions.retain(|pool, _| declared.contains(pool.as_str()));
        self.vram = demands
            .iter()
            .map(|(d, v)| {
                let mut v = v.clone();
                v.decisions = self.decisions.get(&d.name).cloned().unwrap_or_default();
                (d.name.clone(), v)
            })
            .collect();
        self.reserved = plan.reserved.clone();
    }

    /// `status.vram` of `pool`, with its decision counts.
    pub fn vram(&self, pool: &str) -> Option<PoolVram> {
        self.vram.get(pool).cloned()
    }

    /// The inventory to publish: simulated devices charged with what our replicas reserve.
    pub fn published(&self, devices: &[GpuView]) -> Vec<GpuView> {
        let mut out = devices.to_vec();
        crate::gpu::charge_reserved(&mut out, &self.reserved);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        (dir, log)
    }

    fn plan_of(placements: &[(u32, Result<Vec<u32>, String>)]) -> Plan {
        Plan {
            pools: BTreeMap::from([("chat".to_string(), placements.iter().cloned().collect())]),
            reserved: BTreeMap::from([(0, 3 << 30)]),
            free: BTreeMap::new(),
        }
    }

    fn demands() -> Vec<(PoolDemand, PoolVram)> {
        let d = PoolDemand {
            name: "chat".into(),
            mask: vec![0, 1],
            gpus_per_replica: 1,
            tensor_split: None,
            replicas: 2,
            need: 3 << 30,
            place: true,
        };
        vec![(d, vram::pool_vram(Some(3 << 30), None, 1, 1))]
    }

    #[test]
    fn a_refusal_is_one_event_however_many_passes_repeat_it_and_decisions_count_changes() {
        let (_dir, events) = log();
        let mut m = PlacementMemory::default();
        let refused = plan_of(&[(0, Ok(vec![0])), (1, Err("replica chat-1 needs …".into()))]);
        for _ in 0..3 {
            m.record(&refused, &demands(), &events);
        }
        let refusals: Vec<_> = events
            .recent(None, 100)
            .into_iter()
            .filter(|e| e.reason == Reason::PlacementRefused)
            .collect();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].replica, Some(ReplicaId::new("chat", 1)));
        let v = m.vram("chat").unwrap();
        assert_eq!(v.per_replica_bytes, 3 << 30);
        assert_eq!(
            v.decisions,
            BTreeMap::from([("placed".to_string(), 1), ("refused".to_string(), 1)])
        );
        // chat-1 fits later: one more decision, no new event.
        m.record(&plan_of(&[(0, Ok(vec![0])), (1, Ok(vec![1]))]), &demands(), &events);
        assert_eq!(m.vram("chat").unwrap().decisions["placed"], 2);
        assert_eq!(
            events
                .recent(None, 100)
                .iter()
                .filter(|e| e.reason == Reason::PlacementRefused)
                .count(),
            1
        );
    }

    #[test]
    fn simulated_devices_are_published_with_what_our_replicas_reserve() {
        let (_dir, events) = log();
        let mut m = PlacementMemory::default();
        m.record(&plan_of(&[(0, Ok(vec![0]))]), &demands(), &events);
        let devices = crate::gpu::fake::FakeGpus::uniform(1, 12);
        let published = m.published(&crate::gpu::GpuInventory::devices(&devices).unwrap());
        assert_eq!((published[0].used_bytes, published[0].free_bytes), (3 << 30, 9 << 30));
    }
}
