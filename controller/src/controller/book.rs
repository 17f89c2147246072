//! The loop's bookkeeping: per-object status kept in memory and in the state dir (written
//! only when it changes), Ready/NotReady and manifest-error events, forgetting deleted objects,
//! and publishing the [`Snapshot`] the API serves, with each Pool's serving view. It never
//! touches a container.

use std::collections::HashSet;
use std::sync::Arc;

use llorch_manifests::api::{ObjectView, RuntimeInfo, Snapshot, SourceRef};
use llorch_manifests::status::{ConditionType, EventType, ObjectStatus, ReplicaStatus, RolloutMethod, RolloutPhase};
use llorch_manifests::{AnyObject, Kind, ManifestError, ObjectRef, Reason};

use super::Controller;
use crate::manifest_store::DesiredState;
use crate::runtime::ContainerRuntime;
use crate::state_dir::now_rfc3339;

impl<R: ContainerRuntime> Controller<R> {
    /// The status of `obj` to update this pass: a copy of the one in memory (which stays, so
    /// [`put_status`](Self::put_status) can tell whether anything changed), else the stored one.
    pub(super) fn take_status(&mut self, obj: &ObjectRef) -> ObjectStatus {
        self.statuses
            .get(obj)
            .cloned()
            .or_else(|| self.status_files.load(obj))
            .unwrap_or_else(|| ObjectStatus::new(obj.clone()))
    }

    pub(super) fn put_status(&mut self, mut status: ObjectStatus) {
        // Becoming Ready, or losing it, is a state change people look for in the events.
        let ready = status.is_ready();
        let before = self.last_ready.insert(status.object.clone(), ready);
        if before != Some(ready) && (before.is_some() || ready) {
            let message = status
                .condition(ConditionType::Ready)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            let (kind, reason) = if ready {
                (EventType::Normal, Reason::Ready)
            } else {
                (EventType::Warning, Reason::NotReady)
            };
            self.events.emit(Some(&status.object), None, kind, reason, message);
        }
        let changed = match self.statuses.get(&status.object) {
            Some(old) => !same_ignoring_time(old, &status),
            None => true,
        };
        if changed {
            status.updated_at = now_rfc3339();
            if let Err(e) = self.status_files.store(&status) {
                tracing::error!(error = %e, "cannot persist status");
            }
        }
        self.statuses.insert(status.object.clone(), status);
    }

    pub(super) fn forget_deleted(&mut self, desired: &DesiredState) {
        let gone: Vec<ObjectRef> = self
            .statuses
            .keys()
            .filter(|r| !desired.objects.contains_key(*r))
            .cloned()
            .collect();
        for r in gone {
            self.statuses.remove(&r);
            self.last_ready.remove(&r);
            self.status_files.remove(&r);
            // Backoff and serving memory are a Pool's: a Model or Engine of the same name
            // going away must not wipe them.
            if r.kind == Kind::Pool {
                self.slots.remove(&r.name);
                self.serving.forget(&r.name);
            }
            self.events.emit(
                Some(&r),
                None,
                EventType::Normal,
                Reason::Deleted,
                format!("{r} is no longer declared"),
            );
        }
    }

    pub(super) fn report_new_errors(&mut self, desired: &DesiredState) {
        let all: Vec<&ManifestError> = desired
            .file_errors
            .iter()
            .chain(desired.objects.values().flat_map(|e| e.errors.iter()))
            .collect();
        let now: HashSet<String> = all.iter().map(|e| e.to_string()).collect();
        for e in all {
            let text = e.to_string();
            if !self.reported_errors.contains(&text) {
                let obj = match (e.kind, &e.name) {
                    (Some(k), Some(n)) => Some(ObjectRef::new(k, n.clone())),
                    _ => None,
                };
                self.events
                    .emit(obj.as_ref(), None, EventType::Warning, Reason::ManifestInvalid, text);
            }
        }
        self.reported_errors = now;
    }

    pub(super) fn publish(&self, desired: &DesiredState, mut replicas: Vec<ReplicaStatus>) {
        replicas.sort_by(|a, b| (&a.pool, a.index).cmp(&(&b.pool, b.index)));
        let objects = desired
            .objects
            .iter()
            .map(|(r, e)| ObjectView {
                object: r.clone(),
                source: Some(SourceRef {
                    file: e.file.display().to_string(),
                    document: e.document,
                }),
                // Engine env values that look like secrets are never published.
                manifest: Some(llorch_manifests::secrets::redact_manifest(e.object.to_json())),
                status: self
                    .statuses
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| ObjectStatus::new(r.clone())),
            })
            .collect();
        let gpus = self.placements.published(&self.gpu_view);
        let pools = desired.of_kind(Kind::Pool).filter_map(|e| match &e.object {
            AnyObject::Pool(p) => Some(p),
            _ => None,
        });
        let mut serving = self.serving.view(pools, &replicas, &gpus);
        for pool in serving.iter_mut() {
            if pool.scales_to_zero {
                pool.cold_start_ms = self.expected_wake_ms(&pool.pool);
                pool.wake_error = self.wake_error(&pool.pool);
            }
            pool.recreating = self
                .statuses
                .get(&ObjectRef::new(Kind::Pool, &pool.pool))
                .and_then(|s| s.rollout.as_ref())
                .is_some_and(|r| r.method == RolloutMethod::Recreate && r.phase == RolloutPhase::Progressing);
        }
        let id = self.runtime.identity();
        let snapshot = Snapshot {
            synced: true,
            instance: self.settings.instance.clone(),
            objects,
            replicas,
            serving,
            gpus,
            gpus_simulated: self.gpus.simulated(),
            gpu_source: self.gpus.source(),
            file_errors: desired.file_errors.clone(),
            runtime: RuntimeInfo {
                kind: id.kind,
                socket: id.socket,
                version: id.version,
            },
        };
        self.snapshot.send_if_modified(|cur| {
            if **cur == snapshot {
                false
            } else {
                *cur = Arc::new(snapshot);
                true
            }
        });
    }
}

fn same_ignoring_time(a: &ObjectStatus, b: &ObjectStatus) -> bool {
    let mut b = b.clone();
    b.updated_at = a.updated_at.clone();
    *a == b
}
