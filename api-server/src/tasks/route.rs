//! Which Pool a request goes to, read from the controller's serving view
//! ([`Snapshot::serving`]): its pin (never another), else the Pool serving its model with the
//! most Ready replicas (name breaks ties), else the only Pool. Nothing here deserializes a
//! manifest or decides admission.

use llorch_manifests::ServingPool;
use llorch_manifests::api::Snapshot;
use llorch_manifests::task::ErrorCode;

use crate::error::ApiError;

fn unavailable(message: String) -> ApiError {
    ApiError::new(ErrorCode::PoolUnavailable, message)
}

/// The Pool `pool` (a pin) or `model` names, or the only one.
pub fn choose<'s>(
    snapshot: &'s Snapshot,
    pool: Option<&str>,
    model: Option<&str>,
) -> Result<&'s ServingPool, ApiError> {
    if let Some(pin) = pool {
        return snapshot.serving(pin).ok_or_else(|| {
            unavailable(format!(
                "no pool `{pin}` is declared; see `orchctl get pools` (a pinned task never runs elsewhere)"
            ))
        });
    }
    if let Some(model) = model {
        return snapshot
            .serving
            .iter()
            .filter(|p| p.model == model)
            // Most Ready replicas first; the list is sorted by name, and `max_by_key` keeps the
            // last maximum, so walk it backwards to let the first name win a tie.
            .rev()
            .max_by_key(|p| p.replicas.len())
            .ok_or_else(|| unavailable(format!("no pool serves model `{model}`; see `orchctl get pools`")));
    }
    match snapshot.serving.as_slice() {
        [only] => Ok(only),
        [] => Err(unavailable(
            "no pool is declared; apply one with `orchctl apply -f`".into(),
        )),
        _ => Err(ApiError::invalid(
            "several pools exist: name one with `pool` or a `model`",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use llorch_manifests::identity::{Endpoint, ReplicaId};
    use llorch_manifests::{QueueSpec, ServingReplica, SessionSpec};

    use super::*;

    fn pool(name: &str, model: &str, ready: u32) -> ServingPool {
        ServingPool {
            pool: name.into(),
            model: model.into(),
            engine: "mock".into(),
            contract: None,
            blocked: None,
            slots_per_replica: 1,
            queue: QueueSpec::default(),
            sessions: SessionSpec::default(),
            replicas: (0..ready)
                .map(|i| ServingReplica {
                    id: ReplicaId::new(name, i),
                    endpoint: Endpoint::loopback(9000 + i as u16),
                    container_id: None,
                    gpus: Vec::new(),
                    free_vram_bytes: 0,
                })
                .collect(),
            ..ServingPool::default()
        }
    }

    fn snapshot(pools: Vec<ServingPool>) -> Snapshot {
        Snapshot {
            serving: pools,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_pin_is_never_placed_elsewhere() {
        let s = snapshot(vec![pool("a", "m", 1), pool("b", "m", 2)]);
        assert_eq!(choose(&s, Some("a"), Some("m")).unwrap().pool, "a");
        let e = choose(&s, Some("c"), None).unwrap_err();
        assert_eq!((e.code(), e.http_status().as_u16()), (ErrorCode::PoolUnavailable, 404));
        assert!(e.message().contains("no pool `c`"), "{}", e.message());
    }

    #[test]
    fn a_model_goes_to_the_pool_with_the_most_ready_replicas_then_the_first_name() {
        let s = snapshot(vec![
            pool("a", "m", 1),
            pool("b", "m", 2),
            pool("c", "m", 2),
            pool("d", "x", 5),
        ]);
        assert_eq!(choose(&s, None, Some("m")).unwrap().pool, "b");
        let s = snapshot(vec![pool("a", "m", 0), pool("b", "m", 0)]);
        assert_eq!(choose(&s, None, Some("m")).unwrap().pool, "a");
        assert!(
            choose(&s, None, Some("nope"))
                .unwrap_err()
                .message()
                .contains("no pool serves model `nope`")
        );
    }

    #[test]
    fn without_pool_or_model_only_a_single_pool_is_chosen() {
        assert_eq!(
            choose(&snapshot(vec![pool("a", "m", 0)]), None, None).unwrap().pool,
            "a"
        );
        let e = choose(&snapshot(vec![pool("a", "m", 0), pool("b", "m", 0)]), None, None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParams);
        let e = choose(&snapshot(vec![]), None, None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::PoolUnavailable);
    }
}
