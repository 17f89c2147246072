//! `GET /v1/models` in OpenAI's list shape: one entry per Pool that can serve (the controller
//! resolved its engine and model), `id` = the Pool's name (what `model` in a request names),
//! `root` = the Model it serves, and a `meta` object with what a client may want to pick by
//! (engine, context, readiness). Read from the controller's serving view; nothing here probes
//! an engine.

use llorch_manifests::api::Snapshot;
use llorch_manifests::{Kind, ServingPool};
use serde_json::{Value, json};

/// `owned_by` of every entry.
pub const OWNED_BY: &str = "llama-orch";

/// Names of the declared Pools, sorted.
pub fn pool_names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.serving.iter().map(|p| p.pool.as_str()).collect()
}

fn entry_of(snapshot: &Snapshot, pool: &ServingPool) -> Option<Value> {
    let contract = pool.contract.as_ref()?;
    let ready = snapshot
        .objects
        .iter()
        .find(|o| o.object.kind == Kind::Pool && o.object.name == pool.pool)
        .is_some_and(|o| o.status.is_ready());
    Some(json!({
        "id": pool.pool,
        "object": "model",
        // The snapshot keeps no creation time for a Pool.
        "created": 0,
        "owned_by": OWNED_BY,
        "root": pool.model,
        "parent": null,
        "meta": {
            "pool": pool.pool,
            "model": pool.model,
            "engine": pool.engine,
            "engine_version": contract.engine_version,
            "api": contract.api,
            "ctx_max": contract.ctx_size,
            "slots_per_replica": pool.slots_per_replica,
            "ready_replicas": pool.replicas.len(),
            "ready": ready,
        },
    }))
}

/// The entry of Pool `name`, if it can serve at all.
pub fn entry(snapshot: &Snapshot, name: &str) -> Option<Value> {
    entry_of(snapshot, snapshot.serving(name)?)
}

/// The whole list.
pub fn list(snapshot: &Snapshot) -> Value {
    let data: Vec<Value> = snapshot.serving.iter().filter_map(|p| entry_of(snapshot, p)).collect();
    json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use llorch_manifests::{ApiFlavour, QueueSpec, ServingContract, SessionSpec};

    use super::*;

    fn pool(name: &str, replicas: u32, engine_declared: bool) -> ServingPool {
        ServingPool {
            pool: name.into(),
            model: "tiny".into(),
            engine: if engine_declared { "mock" } else { "gone" }.into(),
            contract: engine_declared.then(|| ServingContract {
                engine_version: "0.1.0".into(),
                api: ApiFlavour::Llamacpp,
                ctx_size: 4096,
                model_digest: None,
                model_file: Some("/m/tiny.gguf".into()),
            }),
            blocked: (!engine_declared).then(|| llorch_manifests::Blocked::EngineMissing { engine: "gone".into() }),
            slots_per_replica: replicas,
            queue: QueueSpec::default(),
            sessions: SessionSpec::default(),
            replicas: Vec::new(),
            ..ServingPool::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            serving: vec![pool("alpha", 2, true), pool("orphan", 1, false), pool("zeta", 1, true)],
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
