//! The pass's evictions ([`crate::eviction`]): for each Pool that wakes (no replica running) with
//! a task waiting and does not fit, the idle Pools (sized by `scaling`, `minReplicas: 0`, nothing queued or
//! running) that go to sleep to make room — each with an `Evicted` event that says why. A Pool
//! with a task is never evicted: when only busy Pools hold the VRAM, the activation waits (its
//! tasks stay queued) and the data plane is asked to wake the controller when one goes idle.
//! Then each autoscaling step up is kept only if its replica places; it never evicts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use llorch_manifests::status::EventType;
use llorch_manifests::units::gib;
use llorch_manifests::{AnyObject, Kind, ObjectRef, Reason};

use super::Controller;
use super::pools::PlacementInputs;
use crate::eviction::{Candidate, Inputs, choose};
use crate::manifest_store::DesiredState;
use crate::placement::PoolDemand;
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::scaling::{Demand, Sized};

impl<R: ContainerRuntime> Controller<R> {
    /// Evicts idle Pools for the Pools that wake and do not fit; returns the evicted Pools,
    /// sized to zero in `sized` and gone from `inputs`.
    pub(super) fn evict_for_activations(
        &mut self,
        sized: &mut DesiredState,
        inputs: &mut PlacementInputs,
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> Vec<String> {
        let only = inputs.only();
        let (victims, watch) = self.choose_victims(sized, inputs, &only, by_pool);
        self.watch_busy(watch);
        self.evict(sized, inputs, &only, &victims);
        self.fit_scale_ups(sized, inputs);
        victims.into_iter().map(|v| v.pool).collect()
    }

    /// The idle Pools to evict for each waking Pool that does not fit, the most important
    /// waking Pool first; and the busy Pools that alone could make room for one that stays
    /// asleep.
    fn choose_victims(
        &self,
        sized: &DesiredState,
        inputs: &PlacementInputs,
        only: &[PoolDemand],
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> (Vec<Victim>, BTreeSet<String>) {
        let priority = |name: &str| match sized.get(Kind::Pool, name).map(|e| &e.object) {
            Some(AnyObject::Pool(p)) => p.spec.priority,
            _ => 0,
        };
        let running = |name: &str| {
            by_pool
                .get(name)
                .map_or(0, |c| c.iter().filter(|c| c.state.is_running()).count())
        };
        let demand: BTreeMap<String, Demand> = self
            .sizes
            .keys()
            .map(|name| (name.clone(), self.demand.demand(name)))
            .collect();
        let busy = |name: &str| demand.get(name).is_some_and(|d| d.busy > 0);
        // Waking: sized awake, a task waiting (or a wake asked for), no replica running. The most
        // important first. (A Pool scaling up from one replica to two evicts nobody.)
        let mut waking: Vec<&String> = self
            .sizes
            .iter()
            .filter(|(name, s)| !s.asleep && s.replicas > 0 && demand[*name].wants_replica() && running(name) == 0)
            .map(|(name, _)| name)
            .collect();
        waking.sort_by_key(|name| (-priority(name), name.to_string()));

        let mut victims: Vec<Victim> = Vec::new();
        let mut watch: BTreeSet<String> = BTreeSet::new();
        for w in waking {
            let gone: Vec<&str> = victims.iter().map(|v| v.pool.as_str()).collect();
            let now_inputs = Inputs {
                devices: &inputs.devices,
                accounting: inputs.accounting,
                existing: &inputs.existing,
                pools: only,
            };
            if now_inputs.fits(w, &gone) {
                continue;
            }
            let after = now_inputs.without(&gone);
            let view = Inputs {
                devices: &after.devices,
                accounting: inputs.accounting,
                existing: &after.existing,
                pools: &after.pools,
            };
            let candidates: Vec<Candidate> = self
                .sizes
                .iter()
                .filter(|(name, s)| {
                    *name != w
                        && !gone.contains(&name.as_str())
                        && !s.asleep
                        && !demand[*name].wants_replica()
                        && running(name) > 0
                        && scales_to_zero(sized, name)
                })
                .map(|(name, _)| Candidate {
                    pool: name.clone(),
                    priority: priority(name),
                    last_active: self.scale.last_active(name),
                })
                .collect();
            let Some(chosen) = choose(&view, w, candidates) else {
                // Only busy Pools could make room: look again when one of them goes idle.
                watch.extend(
                    self.sizes
                        .keys()
                        .filter(|name| *name != w && busy(name) && running(name) > 0)
                        .cloned(),
                );
                continue;
            };
            let need = view.pools.iter().find(|p| p.name == *w).map_or(0, |p| p.need);
            let free = view.most_free(w);
            for c in chosen {
                let message = eviction_message(&c, w, need, free);
                victims.push(Victim {
                    pool: c.pool,
                    waking: w.clone(),
                    message,
                });
            }
        }
        (victims, watch)
    }

    /// Asks the data plane to wake the controller when one of `watch` goes idle.
    fn watch_busy(&self, watch: BTreeSet<String>) {
        let watched: Vec<String> = watch.into_iter().collect();
        self.demand.wake_when_idle(&watched);
        // One that went idle since its demand was read would never poke: look again at once.
        if watched.iter().any(|p| self.demand.demand(p).busy == 0) {
            self.wake.notify_one();
        }
    }

    /// Puts each victim to sleep: its VRAM freed in `inputs`, sized to zero in `sized` and
    /// `self.sizes`, with its `Evicted` event.
    fn evict(
        &mut self,
        sized: &mut DesiredState,
        inputs: &mut PlacementInputs,
        only: &[PoolDemand],
        victims: &[Victim],
    ) {
        let now = SystemTime::now();
        let names: Vec<&str> = victims.iter().map(|v| v.pool.as_str()).collect();
        let without = Inputs {
            devices: &inputs.devices,
            accounting: inputs.accounting,
            existing: &inputs.existing,
            pools: only,
        }
        .without(&names);
        inputs.devices = without.devices;
        inputs.existing = without.existing;
        for (demand, _) in &mut inputs.demands {
            if names.contains(&demand.name.as_str()) {
                demand.replicas = 0;
            }
        }
        for Victim {
            pool: victim,
            waking,
            message,
        } in victims
        {
            self.scale.evict(victim, waking, now);
            self.events.emit(
                Some(&ObjectRef::new(Kind::Pool, victim)),
                None,
                EventType::Normal,
                Reason::Evicted,
                message.clone(),
            );
            if let Some(entry) = sized.objects.get_mut(&ObjectRef::new(Kind::Pool, victim))
                && let AnyObject::Pool(pool) = &mut entry.object
            {
                pool.spec = pool.spec.sized(0);
            }
            self.sizes.insert(
                victim.clone(),
                Sized {
                    replicas: 0,
                    asleep: true,
                    idle_in: None,
                    event: None,
                    evicted_for: Some(waking.clone()),
                },
            );
        }
    }

    /// Keeps each scale-up (`ScaledUp`) that places, with its event; one that does not fit
    /// the VRAM is not made (it is tried again after the next wait for a slot).
    fn fit_scale_ups(&mut self, sized: &mut DesiredState, inputs: &mut PlacementInputs) {
        let ups: Vec<(String, u32, String)> = self
            .sizes
            .iter()
            .filter_map(|(name, s)| match &s.event {
                Some((Reason::ScaledUp, message)) => Some((name.clone(), s.replicas, message.clone())),
                _ => None,
            })
            .collect();
        for (name, replicas, message) in ups {
            let only = inputs.only();
            let fits = Inputs {
                devices: &inputs.devices,
                accounting: inputs.accounting,
                existing: &inputs.existing,
                pools: &only,
            }
            .fits(&name, &[]);
            let object = ObjectRef::new(Kind::Pool, &name);
            if fits {
                self.events
                    .emit(Some(&object), None, EventType::Normal, Reason::ScaledUp, message);
                continue;
            }
            let kept = replicas.saturating_sub(1);
            tracing::info!(pool = %name, replicas, "a scale-up does not fit the VRAM; staying at {kept}");
            self.scale.cap(&name, kept);
            if let Some(size) = self.sizes.get_mut(&name) {
                size.replicas = kept;
                size.event = None;
            }
            if let Some(entry) = sized.objects.get_mut(&object)
                && let AnyObject::Pool(pool) = &mut entry.object
            {
                pool.spec = pool.spec.sized(kept);
            }
            for (demand, _) in &mut inputs.demands {
                if demand.name == name {
                    demand.replicas = kept;
                }
            }
        }
    }
}

/// One Pool to evict: which, for which waking Pool, and its `Evicted` event's message.
struct Victim {
    pool: String,
    waking: String,
    message: String,
}

/// The `Evicted` event's message for `c`, evicted to fit `waking`.
fn eviction_message(c: &Candidate, waking: &str, need: u64, free: u64) -> String {
    let idle = c
        .last_active
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or_else(
            || "never used".to_string(),
            |d| format!("idle {}", llorch_manifests::duration::short(d)),
        );
    format!(
        "evicted ({idle}, priority {}) to fit pool/{waking}: it needs {} per replica, {} free on its GPUs; \
         the next task wakes this Pool",
        c.priority,
        gib(need),
        gib(free)
    )
}

/// Whether `name` is a Pool that may sleep (`scaling` with `minReplicas: 0`).
fn scales_to_zero(desired: &DesiredState, name: &str) -> bool {
    matches!(desired.get(Kind::Pool, name).map(|e| &e.object), Some(AnyObject::Pool(p)) if p.spec.scales_to_zero())
}
