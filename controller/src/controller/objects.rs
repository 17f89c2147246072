//! Models and Engines in a pass: each Model's artifact through the ModelManager (fetch,
//! verify, measure) and each Engine's provisioning preflight, into their status and events.
//! A Model whose every Pool runs elsewhere (`models::fetched_elsewhere`: `external` Engines,
//! or any Pool under `gpus: none`) is not observed at all: not fetched, not hashed. It reads
//! Pools only for that; it never looks at containers. Under `gpus: none` an Engine that is not
//! `external` is not checked or provisioned either: it cannot run here.

use llorch_manifests::status::{ConditionType, EventType, ModelPhase};
use llorch_manifests::{AnyObject, Kind, Reason};

use super::Controller;
use crate::conditions;
use crate::manifest_store::DesiredState;
use crate::runtime::ContainerRuntime;

impl<R: ContainerRuntime> Controller<R> {
    pub(super) async fn reconcile_models_and_engines(&mut self, desired: &DesiredState) {
        let entries: Vec<_> = desired
            .objects
            .values()
            .filter(|e| e.object.kind() != Kind::Pool)
            .cloned()
            .collect();
        let elsewhere = crate::models::fetched_elsewhere(desired, self.gpus.source());
        for entry in entries {
            let obj = entry.object.object_ref();
            let mut status = self.take_status(&obj);
            status.generation = Some(entry.generation.clone());
            status.observed_generation = Some(entry.generation.clone());
            status.manifest_errors = entry.errors.clone();
            let verdict = match &entry.object {
                AnyObject::Model(m) if elsewhere.contains_key(m.name()) => {
                    let pools = elsewhere.get(m.name()).map(Vec::as_slice).unwrap_or_default();
                    let why = crate::models::not_fetched_message(pools, self.gpus.source());
                    let state = self.models.not_fetched(m.name(), why.clone());
                    let was = status.model.as_ref().map(|s| s.phase);
                    if was != Some(ModelPhase::NotFetched) {
                        self.events
                            .emit(Some(&obj), None, EventType::Normal, Reason::NotFetchedHere, why.clone());
                    }
                    crate::models::set_not_fetched(&mut status, state, &why);
                    self.put_status(status);
                    continue;
                }
                AnyObject::Model(m) => {
                    let state = self.models.observe(m.name(), &m.spec, &entry.file);
                    let problem = self.models.problem(m.name());
                    let before = status.model.as_ref();
                    if let Some((kind, reason, message)) = crate::models::event(before, &state, problem.as_ref()) {
                        self.events.emit(Some(&obj), None, kind, reason, message);
                    }
                    crate::models::set_conditions(&mut status, state, problem.as_ref());
                    self.put_status(status);
                    continue;
                }
                // Under `gpus: none` nothing but an external engine runs here: no image check, pull,
                // build or install is started for one that cannot.
                AnyObject::Engine(e) if !crate::serving::servable_here(self.gpus.source(), e.spec.provisioning) => {
                    self.engine_checks.remove(e.name());
                    Err(crate::provision::NotReady {
                        reason: Reason::ProvisioningUnsupported,
                        message: format!(
                            "cannot run on this daemon: config `gpus: none` runs only `external` Engines, and this one is \
                             `provisioning: {}`; its Pools are blocked",
                            e.spec.provisioning.as_str()
                        ),
                    })
                }
                AnyObject::Engine(e) => {
                    let check = self.provisioner.check(&self.runtime, e.name(), &e.spec).await;
                    self.engine_checks.insert(e.name().to_string(), check.clone());
                    check.verdict
                }
                AnyObject::Pool(_) => continue,
            };
            match verdict {
                Ok(msg) => conditions::set_healthy(&mut status, Reason::Valid, msg),
                Err(e) => {
                    let failed_before = status.condition(ConditionType::Degraded).is_some_and(|c| c.status);
                    if !failed_before {
                        self.events
                            .emit(Some(&obj), None, EventType::Warning, e.reason, e.message.clone());
                    }
                    conditions::set_failed(&mut status, e.reason, e.message)
                }
            }
            self.put_status(status);
        }
        let models = desired
            .of_kind(Kind::Model)
            .map(|e| e.object.object_ref().name)
            .collect();
        self.models.retain(&models);
    }
}
