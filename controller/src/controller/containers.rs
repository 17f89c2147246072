//! The pass's containers: listing this instance's containers (and saying once when the runtime
//! stops or starts answering), sorting them by declared Pool, and removing orphans — or keeping
//! them while a manifest that might declare their Pool cannot be read. It never touches a
//! container of a declared Pool: reconciling those is the pool step's job.

use std::collections::BTreeMap;

use llorch_manifests::identity::{ReplicaLabels, instance_selector, pool_of};
use llorch_manifests::status::EventType;
use llorch_manifests::{Kind, ObjectRef, Reason};

use super::Controller;
use crate::manifest_store::DesiredState;
use crate::runtime::{ContainerInfo, ContainerRuntime};

impl<R: ContainerRuntime> Controller<R> {
    /// Every container labelled with this instance; `None` when the runtime does not answer
    /// (`RuntimeUnavailable`, once, until it answers again: `RuntimeAvailable`).
    pub(super) async fn list_containers(&mut self) -> Option<Vec<ContainerInfo>> {
        let selector = instance_selector(&self.settings.instance);
        match self.runtime.list(&selector).await {
            Ok(c) => {
                if std::mem::take(&mut self.runtime_down) {
                    let msg = "the container runtime answers again".to_string();
                    self.events
                        .emit(None, None, EventType::Normal, Reason::RuntimeAvailable, msg);
                }
                Some(c)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list containers; nothing is changed until the runtime answers");
                if !std::mem::replace(&mut self.runtime_down, true) {
                    self.events.emit(
                        None,
                        None,
                        EventType::Warning,
                        Reason::RuntimeUnavailable,
                        e.to_string(),
                    );
                }
                None
            }
        }
    }

    /// The containers of declared Pools, by Pool. The others are orphans: removed, unless a
    /// manifest that cannot be read may declare their Pool (then kept, and said once).
    pub(super) async fn claim_containers(
        &mut self,
        desired: &DesiredState,
        containers: Vec<ContainerInfo>,
    ) -> BTreeMap<String, Vec<ContainerInfo>> {
        let mut by_pool: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
        for c in containers {
            match ReplicaLabels::read(&c.labels) {
                Some(l) if desired.get(Kind::Pool, &l.pool).is_some() => by_pool.entry(l.pool).or_default().push(c),
                Some(l) if !desired.unknown_sources.is_empty() => {
                    // A manifest we cannot read may declare this pool: keep its containers.
                    if self.kept_orphans.insert(c.id.clone()) {
                        let obj = ObjectRef::new(Kind::Pool, l.pool);
                        self.events.emit(
                            Some(&obj),
                            None,
                            EventType::Warning,
                            Reason::OrphanKept,
                            format!(
                                "keeping container {} although no readable manifest declares {obj}: {} cannot be read yet",
                                c.name,
                                desired.unknown_sources.join(", ")
                            ),
                        );
                    }
                }
                _ => self.remove_orphan(&c).await,
            }
        }
        by_pool
    }

    /// Removes a container no manifest declares (`OrphanRemoved`, or `RemoveFailed`).
    pub(super) async fn remove_orphan(&mut self, c: &ContainerInfo) {
        let obj = ObjectRef::new(Kind::Pool, pool_of(&c.labels).unwrap_or_default());
        match self.runtime.remove(&c.id).await {
            Ok(()) => self.events.emit(
                Some(&obj),
                None,
                EventType::Normal,
                Reason::OrphanRemoved,
                format!(
                    "removed {} {} ({}): no manifest declares it",
                    crate::pool::noun(c),
                    c.name,
                    crate::pool::short(&c.id)
                ),
            ),
            Err(e) => self.events.emit(
                Some(&obj),
                None,
                EventType::Warning,
                Reason::RemoveFailed,
                format!("cannot remove orphan {}: {e}", c.name),
            ),
        }
        self.slots.remove(&obj.name);
    }
}
