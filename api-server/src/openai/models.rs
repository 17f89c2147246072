//! `GET /v1/models` in OpenAI's list shape: one entry per Pool whose engine and model are
//! declared, `id` = the Pool's name (what `model` in a request names), `root` = the Model it
//! serves, and a `meta` object with what a client may want to pick by (engine, context,
//! readiness). Read from the controller's snapshot; nothing here probes an engine.

use llorch_manifests::Kind;
use llorch_manifests::api::Snapshot;
use serde_json::{Value, json};

use crate::tasks::pool_view::PoolView;

/// `owned_by` of every entry.
pub const OWNED_BY: &str = "llama-orch";

/// Names of the declared Pools, sorted.
pub fn pool_names(snapshot: &Snapshot) -> Vec<&str> {
    let mut names: Vec<&str> = snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == Kind::Pool)
        .map(|o| o.object.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The entry of Pool `name`, if it can serve at all (its engine and model are declared).
pub fn entry(snapshot: &Snapshot, name: &str) -> Option<Value> {
    let view = PoolView::read(snapshot, name).ok()?;
    let ready = snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == Kind::Pool && o.object.name == name)
        .is_some_and(|o| o.status.is_ready());
    Some(json!({
        "id": view.name,
        "object": "model",
        // The snapshot keeps no creation time for a Pool.
        "created": 0,
        "owned_by": OWNED_BY,
        "root": view.model,
        "parent": null,
        "meta": {
            "pool": view.name,
            "model": view.model,
            "engine": view.engine,
            "engine_version": view.engine_version,
            "api": view.api,
            "ctx_max": view.ctx_size,
            "slots_per_replica": view.slots,
            "ready_replicas": view.replicas.len(),
            "ready": ready,
        },
    }))
}

/// The whole list.
pub fn list(snapshot: &Snapshot) -> Value {
    let data: Vec<Value> = pool_names(snapshot)
        .into_iter()
        .filter_map(|name| entry(snapshot, name))
        .collect();
    json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    use llorch_manifests::api::ObjectView;
    use llorch_manifests::meta::ObjectRef;
    use llorch_manifests::status::ObjectStatus;

    use super::*;

    fn object(kind: Kind, name: &str, spec: Value) -> ObjectView {
        let object = ObjectRef::new(kind, name);
        ObjectView {
            object: object.clone(),
            source: None,
            manifest: Some(json!({
                "apiVersion": "llama-orch.dev/v1alpha1",
                "kind": kind.as_str(),
                "metadata": {"name": name},
                "spec": spec,
            })),
            status: ObjectStatus::new(object),
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            objects: vec![
                object(
                    Kind::Engine,
                    "mock",
                    json!({"image": "llama-orch/mock-engine:dev", "version": "0.1.0"}),
                ),
                object(Kind::Model, "tiny", json!({"ref": "file:/m/tiny.gguf", "ctxMax": 4096})),
                object(
                    Kind::Pool,
                    "zeta",
                    json!({"engine": "mock", "model": "tiny", "replicas": 1}),
                ),
                object(
                    Kind::Pool,
                    "alpha",
                    json!({"engine": "mock", "model": "tiny", "replicas": 2}),
                ),
                object(
                    Kind::Pool,
                    "orphan",
                    json!({"engine": "gone", "model": "tiny", "replicas": 1}),
                ),
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn one_entry_per_servable_pool_sorted_with_the_model_it_serves() {
        let s = snapshot();
        let list = list(&s);
        assert_eq!(list["object"], "list");
        let data = list["data"].as_array().unwrap();
        let ids: Vec<&str> = data.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["alpha", "zeta"], "`orphan` has no engine, so it cannot serve");
        let alpha = &data[0];
        assert_eq!(alpha["object"], "model");
        assert_eq!(alpha["owned_by"], "llama-orch");
        assert_eq!(alpha["root"], "tiny");
        assert!(alpha["created"].is_u64());
        assert_eq!(alpha["meta"]["engine"], "mock");
        assert_eq!(alpha["meta"]["ctx_max"], 4096);
        assert_eq!(alpha["meta"]["ready_replicas"], 0);
        assert_eq!(alpha["meta"]["ready"], false);
        assert_eq!(pool_names(&s), ["alpha", "orphan", "zeta"]);
    }

    #[test]
    fn an_unknown_pool_has_no_entry() {
        assert_eq!(entry(&snapshot(), "nope"), None);
    }
}
