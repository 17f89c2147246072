//! Which Models this daemon needs a file for. A Model that some Pool uses, but only Pools that
//! never run an engine here — Pools on `external` Engines, whose engine loads its own weights,
//! and under `gpus: none` every Pool — is not fetched, verified or measured: a gateway in
//! front of remote engines must not download gigabytes it never reads. A Model no Pool uses is
//! still fetched (that is how `orchctl models pull` pre-fetches), and so is one that any Pool
//! which may run here uses. Pure: it reads the manifests and decides; the controller acts.

use std::collections::BTreeMap;

use llorch_manifests::api::GpuSource;
use llorch_manifests::{AnyObject, Kind};

use crate::manifest_store::DesiredState;
use crate::serving::runs_locally;

/// The Models whose every user runs elsewhere, by name, with those Pools (sorted).
pub fn fetched_elsewhere(desired: &DesiredState, gpus: GpuSource) -> BTreeMap<String, Vec<String>> {
    let mut users: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for entry in desired.of_kind(Kind::Pool) {
        let AnyObject::Pool(pool) = &entry.object else { continue };
        let here = match desired.get(Kind::Engine, &pool.spec.engine).map(|e| &e.object) {
            Some(AnyObject::Engine(engine)) => runs_locally(gpus, engine.spec.provisioning),
            // An Engine not declared yet may be anything: keep today's behaviour where one could run.
            _ => gpus != GpuSource::None,
        };
        let (pools, any_here) = users.entry(pool.spec.model.clone()).or_default();
        pools.push(pool.name().to_string());
        *any_here |= here;
    }
    users
        .into_iter()
        .filter(|(_, (_, any_here))| !any_here)
        .map(|(model, (mut pools, _))| {
            pools.sort();
            (model, pools)
        })
        .collect()
}

/// The sentence a Model's status and a refused pull give: which Pools use it and why none of
/// them needs its file on this daemon.
pub fn not_fetched_message(pools: &[String], gpus: GpuSource) -> String {
    let list = pools.iter().map(|p| format!("pool/{p}")).collect::<Vec<_>>().join(", ");
    let why = if gpus == GpuSource::None {
        "this daemon has no GPUs (`gpus: none`), so only Pools on `external` Engines run here, and those engines \
         load their own weights"
    } else {
        "they run on `external` Engines, which load their own weights"
    };
    format!("not fetched or verified here: used only by {list}; {why}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifest_store::Entry;

    fn object(kind: &str, name: &str, spec: serde_json::Value) -> AnyObject {
        let json = serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec
        });
        match kind {
            "Engine" => AnyObject::Engine(serde_json::from_value(json).unwrap()),
            "Model" => AnyObject::Model(serde_json::from_value(json).unwrap()),
            _ => AnyObject::Pool(serde_json::from_value(json).unwrap()),
        }
    }

    fn desired(objects: Vec<AnyObject>) -> DesiredState {
        let mut d = DesiredState::default();
        for object in objects {
            d.objects.insert(
                object.object_ref(),
                Entry {
                    object,
                    file: "m.yaml".into(),
                    document: 0,
                    generation: "g".into(),
                    errors: Vec::new(),
                    actionable: true,
                },
            );
        }
        d
    }

    fn pool(name: &str, engine: &str, model: &str) -> AnyObject {
        object(
            "Pool",
            name,
            serde_json::json!({"engine": engine, "model": model, "replicas": 1}),
        )
    }

    fn manifests() -> DesiredState {
        desired(vec![
            object(
                "Engine",
                "remote",
                serde_json::json!({"provisioning": "external", "url": "http://10.0.0.5:8080", "version": "b1"}),
            ),
            object(
                "Engine",
                "local",
                serde_json::json!({"image": "img:dev", "version": "b1"}),
            ),
            // remote-only: two external Pools; shared: one external, one local; idle: no Pool;
            // orphaned: its Pool names an Engine that is not declared.
            pool("a", "remote", "remote-only"),
            pool("b", "remote", "remote-only"),
            pool("c", "remote", "shared"),
            pool("d", "local", "shared"),
            pool("e", "missing", "orphaned"),
        ])
    }

    #[test]
    fn with_gpus_only_a_model_that_every_user_serves_through_an_external_engine_is_not_fetched() {
        for gpus in [GpuSource::Nvml, GpuSource::Simulated] {
            let elsewhere = fetched_elsewhere(&manifests(), gpus);
            assert_eq!(
                elsewhere,
                BTreeMap::from([("remote-only".to_string(), vec!["a".to_string(), "b".to_string()])]),
                "{gpus}"
            );
        }
    }

    #[test]
    fn under_gpus_none_no_pool_needs_a_file_here_but_an_unused_model_is_still_fetched() {
        let elsewhere = fetched_elsewhere(&manifests(), GpuSource::None);
        assert_eq!(
            elsewhere.keys().collect::<Vec<_>>(),
            ["orphaned", "remote-only", "shared"],
            "a Model no Pool uses is not in the list: it is fetched as before"
        );
        assert_eq!(elsewhere["shared"], ["c", "d"]);
    }

    #[test]
    fn the_message_names_the_pools_and_why_none_needs_the_file() {
        let pools = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            not_fetched_message(&pools, GpuSource::Nvml),
            "not fetched or verified here: used only by pool/a, pool/b; they run on `external` Engines, which \
             load their own weights"
        );
        assert!(not_fetched_message(&pools, GpuSource::None).contains("no GPUs (`gpus: none`)"));
    }
}
