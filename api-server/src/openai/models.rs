//! `GET /v1/models` in OpenAI's list shape, and `GET /v1/models/{id}`: one entry per Pool that
//! can serve (`id` = the Pool's name; `root` = its Model), then one per Model that such a Pool
//! serves (`id` = the Model's name; `meta.pools` lists its Pools), unless a Pool has that name
//! already — the same rule a request's `model` follows ([`super::request::resolve_target`]), so
//! an id listed here resolves the same in a request and in `GET /v1/models/{id}`.
//!
//! `meta.ready` is real readiness: a Ready replica now. `meta.state` says more: `ready`,
//! `asleep` (no replica, but the Pool scales to zero and a request wakes it) or `unready`
//! (a request would get a 503). Read from the controller's serving view; nothing here probes
//! an engine.

use llorch_manifests::ServingPool;
use llorch_manifests::api::Snapshot;
use serde_json::{Value, json};

use super::request::{Target, resolve_target};

/// `owned_by` of every entry.
pub const OWNED_BY: &str = "llama-orch";

/// Names of the declared Pools, sorted.
pub fn pool_names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.serving.iter().map(|p| p.pool.as_str()).collect()
}

/// `ready`, `asleep` or `unready`.
fn state(pool: &ServingPool) -> &'static str {
    if !pool.replicas.is_empty() {
        "ready"
    } else if pool.scales_to_zero && pool.blocked.is_none() {
        "asleep"
    } else {
        "unready"
    }
}

/// The best state of several Pools.
fn best(states: impl Iterator<Item = &'static str>) -> &'static str {
    let rank = |s: &str| match s {
        "ready" => 2,
        "asleep" => 1,
        _ => 0,
    };
    states.max_by_key(|s| rank(s)).unwrap_or("unready")
}

fn pool_entry(pool: &ServingPool) -> Option<Value> {
    let contract = pool.contract.as_ref()?;
    let state = state(pool);
    Some(json!({
        "id": pool.pool,
        "object": "model",
        // The snapshot keeps no creation time for a Pool.
        "created": 0,
        "owned_by": OWNED_BY,
        "root": pool.model,
        "parent": null,
        "meta": {
            "kind": "pool",
            "workload": pool.workload,
            "pool": pool.pool,
            "model": pool.model,
            "engine": pool.engine,
            "engine_version": contract.engine_version,
            "api": contract.api,
            "ctx_max": contract.ctx_size,
            "slots_per_replica": pool.slots_per_replica,
            "ready_replicas": pool.replicas.len(),
            "ready": state == "ready",
            "state": state,
        },
    }))
}

/// The servable Pools of Model `model`, sorted by name.
fn pools_of<'s>(snapshot: &'s Snapshot, model: &'s str) -> impl Iterator<Item = &'s ServingPool> {
    snapshot
        .serving
        .iter()
        .filter(move |p| p.model == model && p.contract.is_some())
}

fn model_entry(snapshot: &Snapshot, model: &str) -> Option<Value> {
    let pools: Vec<&ServingPool> = pools_of(snapshot, model).collect();
    if pools.is_empty() {
        return None;
    }
    let state = best(pools.iter().map(|p| state(p)));
    Some(json!({
        "id": model,
        "object": "model",
        "created": 0,
        "owned_by": OWNED_BY,
        "root": model,
        "parent": null,
        "meta": {
            "kind": "model",
            "model": model,
            "pools": pools.iter().map(|p| p.pool.as_str()).collect::<Vec<_>>(),
            "ready_replicas": pools.iter().map(|p| p.replicas.len()).sum::<usize>(),
            "ready": state == "ready",
            "state": state,
        },
    }))
}

/// The entry `id` names, resolved as a request's `model` is: a Pool first, else a Model.
pub fn entry(snapshot: &Snapshot, id: &str) -> Option<Value> {
    match resolve_target(Some(id), pool_names(snapshot).into_iter()) {
        Target::Pool(p) => pool_entry(snapshot.serving(&p)?),
        Target::Model(m) => model_entry(snapshot, &m),
        Target::Any => None,
    }
}

/// The whole list: Pools, then Models not shadowed by a Pool of the same name.
pub fn list(snapshot: &Snapshot) -> Value {
    let mut data: Vec<Value> = snapshot.serving.iter().filter_map(pool_entry).collect();
    let names = pool_names(snapshot);
    let mut models: Vec<&str> = snapshot.serving.iter().map(|p| p.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    data.extend(
        models
            .into_iter()
            .filter(|m| !names.contains(m))
            .filter_map(|m| model_entry(snapshot, m)),
    );
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
        assert_eq!(
            ids,
            ["alpha", "zeta", "tiny"],
            "`orphan` has no engine, so it cannot serve; `tiny` is the model alpha and zeta serve"
        );
        assert_eq!(data[2]["meta"]["pools"], json!(["alpha", "zeta"]));
        assert_eq!(data[2]["meta"]["state"], "unready");
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

    #[test]
    fn readiness_is_a_ready_replica_now_and_a_sleeping_pool_is_asleep() {
        let mut s = snapshot();
        s.serving[2].scales_to_zero = true;
        assert_eq!(entry(&s, "zeta").unwrap()["meta"]["state"], "asleep");
        assert_eq!(entry(&s, "zeta").unwrap()["meta"]["ready"], false);
        s.serving[0].replicas.push(llorch_manifests::ServingReplica {
            id: llorch_manifests::identity::ReplicaId::new("alpha", 0),
            endpoint: llorch_manifests::identity::Endpoint::loopback(9000),
            container_id: None,
            gpus: Vec::new(),
            free_vram_bytes: 0,
        });
        let alpha = entry(&s, "alpha").unwrap();
        assert_eq!(
            (alpha["meta"]["ready"].clone(), alpha["meta"]["state"].clone()),
            (json!(true), json!("ready"))
        );
        let tiny = entry(&s, "tiny").unwrap();
        assert_eq!(
            tiny["meta"]["kind"], "model",
            "a model name resolves to the model, as in a request"
        );
        assert_eq!(
            (tiny["meta"]["state"].clone(), tiny["meta"]["ready_replicas"].clone()),
            (json!("ready"), json!(1))
        );
    }
}
