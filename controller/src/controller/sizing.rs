//! The pass's sizing of Pools with `spec.scaling` ([`crate::scaling`]): each one's replica
//! count from the data plane's demand, an event for each scale-to-zero and activation, and a
//! copy of the desired state in which those Pools carry the count as `replicas`, for
//! placement and reconcile. The desired state itself (what the snapshot publishes) is left as
//! written. Also the timing of wakes ([`crate::cold_start`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use llorch_manifests::status::{ConditionType, EventType, ObjectStatus, ReplicaPhase, ReplicaStatus, ScalingStatus};
use llorch_manifests::{AnyObject, Kind, Pool, Reason};

use super::Controller;
use super::pools::PlacementInputs;
use crate::conditions;
use crate::manifest_store::DesiredState;
use crate::placement::Plan;
use crate::runtime::{ContainerInfo, ContainerRuntime};

impl<R: ContainerRuntime> Controller<R> {
    /// Sizes every Pool with `spec.scaling`; returns the desired state with those Pools sized.
    pub(super) fn size_pools(
        &mut self,
        desired: &DesiredState,
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> DesiredState {
        let now = SystemTime::now();
        let mut sized = desired.clone();
        self.sizes.clear();
        for entry in sized.objects.values_mut() {
            let AnyObject::Pool(pool) = &mut entry.object else {
                continue;
            };
            let has_containers = by_pool.get(pool.name()).is_some_and(|c| !c.is_empty());
            let demand = self.demand.demand(pool.name());
            let Some(size) = self.scale.size(pool, demand, has_containers, now) else {
                continue;
            };
            // A scale-up's event waits for the VRAM check (`eviction.rs`).
            if let Some((reason, message)) = size.event.as_ref().filter(|(r, _)| *r != Reason::ScaledUp) {
                let object = entry.object.object_ref();
                self.events
                    .emit(Some(&object), None, EventType::Normal, *reason, message.clone());
            }
            if let AnyObject::Pool(pool) = &mut entry.object {
                pool.spec = pool.spec.sized(size.replicas);
                self.sizes.insert(pool.name().to_string(), size);
            }
        }
        self.scale.retain(&|name| desired.get(Kind::Pool, name).is_some());
        sized
    }

    /// A sleeping Pool's conditions when it could serve (`servable`: it resolved, so its
    /// Engine and Model are usable): Ready (a task is admitted and wakes it), with the reason
    /// saying it is scaled to zero. A blocked one keeps the conditions that say why. Also how
    /// soon an awake one must be looked at again.
    pub(super) fn sized_status(
        &self,
        pool: &Pool,
        servable: bool,
        status: &mut ObjectStatus,
    ) -> Option<std::time::Duration> {
        if pool.spec.scaling.is_none() {
            status.scaling = None;
        }
        let size = self.sizes.get(pool.name())?;
        if let Some(scaling) = &pool.spec.scaling {
            let (activations, evictions) = self.scale.counts(pool.name());
            status.scaling = Some(ScalingStatus {
                min_replicas: scaling.min_replicas,
                max_replicas: scaling.max_replicas,
                replicas: size.replicas,
                asleep: size.asleep,
                last_active: self.scale.last_active(pool.name()).map(rfc3339),
                evicted_for: size.evicted_for.clone(),
                activations,
                evictions,
                cold_start_ms: self.cold.expected_ms(pool.name()),
                wake_times: self.cold.wake_times(pool.name()),
            });
        }
        if size.asleep && servable {
            let scaling = pool.spec.scaling.as_ref()?;
            let message = match &size.evicted_for {
                Some(waking) => format!(
                    "scaled to zero: evicted to make room for pool/{waking}; the next task wakes it (a replica \
                     starts, then the task runs)"
                ),
                None => format!(
                    "scaled to zero: no task for {}; the next task wakes it (a replica starts, then the task runs)",
                    scaling.idle_timeout
                ),
            };
            conditions::set(
                status,
                ConditionType::Ready,
                true,
                Reason::ScaledToZero,
                message.clone(),
            );
            conditions::set(
                status,
                ConditionType::Progressing,
                false,
                Reason::ScaledToZero,
                message.clone(),
            );
            conditions::set(status, ConditionType::Degraded, false, Reason::ScaledToZero, message);
        }
        size.idle_in
    }

    /// Starts timing the wake of each Pool that may sleep, is awake, runs no replica and had
    /// its first one placed this pass; forgets the timing of those that sleep.
    pub(super) fn time_wakes(
        &mut self,
        inputs: &PlacementInputs,
        plan: &Plan,
        by_pool: &BTreeMap<String, Vec<ContainerInfo>>,
    ) {
        let now = SystemTime::now();
        for (demand, _) in &inputs.demands {
            let Some(size) = self.sizes.get(&demand.name) else {
                continue;
            };
            self.cold.declare(&demand.name, demand.need);
            if size.asleep {
                self.cold.abandoned(&demand.name);
                continue;
            }
            let running = by_pool
                .get(&demand.name)
                .is_some_and(|c| c.iter().any(|c| c.state.is_running()));
            let placed = plan
                .pools
                .get(&demand.name)
                .and_then(|p| p.get(&0))
                .is_some_and(Result::is_ok);
            if !running && placed {
                self.cold.began(&demand.name, now);
            }
        }
        let sized = &self.sizes;
        self.cold.retain(&|name| sized.contains_key(name));
    }

    /// Ends the timing of each waking Pool that now has a Ready replica, or whose replica
    /// failed during the wake.
    pub(super) fn time_ready(&mut self, replicas: &[ReplicaStatus]) {
        let now = SystemTime::now();
        let waking: Vec<String> = self
            .sizes
            .iter()
            .filter(|(_, s)| !s.asleep)
            .map(|(n, _)| n.clone())
            .collect();
        for pool in waking {
            let Some(error) = self
                .statuses
                .get(&llorch_manifests::ObjectRef::new(Kind::Pool, &pool))
                .and_then(|s| s.last_error.clone())
            else {
                continue;
            };
            if self.cold.failure(&pool, &error) {
                tracing::warn!(pool = %pool, error = %error.message, "pool failed to wake");
            }
        }
        for r in replicas.iter().filter(|r| r.phase == ReplicaPhase::Ready) {
            if let Some(took) = self.cold.ready(&r.pool, now) {
                tracing::info!(pool = %r.pool, took_ms = took.as_millis() as u64, "pool woke");
            }
        }
    }

    /// What a wake of `pool` is expected to take, for the serving view.
    pub(super) fn expected_wake_ms(&self, pool: &str) -> Option<u64> {
        self.cold.expected_ms(pool)
    }

    /// The failure that ended `pool`'s wake, for the serving view.
    pub(super) fn wake_error(&self, pool: &str) -> Option<llorch_manifests::status::LastError> {
        self.cold.wake_error(pool).cloned()
    }
}

/// `t` as RFC 3339, to the millisecond.
fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .ok()
        .and_then(|t| t.round(jiff::Unit::Millisecond).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}
