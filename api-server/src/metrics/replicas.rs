//! Per-replica series and the counts of replicas in a state, from the snapshot's replica rows:
//! `kv_cache_usage_ratio{pool,replica}` and `llorch_pool_replicas_not_on_gpu{pool}` (replicas
//! out of service because their engine computes on the CPU, phase `NotOnGpu`; 0 for every
//! other Pool, so an alert can watch it).

use std::sync::atomic::AtomicU64;

use llorch_manifests::Kind;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ReplicaPhase;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Labels, U64Gauge};

/// Registers the replica series.
pub(super) fn register_replicas(registry: &mut Registry, snapshot: &Snapshot) {
    let kv = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for r in &snapshot.replicas {
        if let Some(ratio) = r.kv_cache_usage_ratio {
            kv.get_or_create(&vec![("pool", r.pool.clone()), ("replica", r.id.to_string())])
                .set(ratio);
        }
    }
    registry.register(
        "kv_cache_usage_ratio",
        "Share of the replica's engine KV cache in use, 0 to 1, as the engine last reported it (llama-server, vLLM; never TGI)",
        kv,
    );
    let not_on_gpu = Family::<Labels, U64Gauge>::default();
    for view in snapshot.objects.iter().filter(|o| o.object.kind == Kind::Pool) {
        let pool = view.object.name.clone();
        let n = snapshot
            .replicas
            .iter()
            .filter(|r| r.pool == pool && r.phase == ReplicaPhase::NotOnGpu)
            .count();
        not_on_gpu.get_or_create(&vec![("pool", pool)]).set(n as u64);
    }
    registry.register(
        "llorch_pool_replicas_not_on_gpu",
        "Replicas of the pool out of service because their engine's processes are not on their GPUs (NotOnGpu: it computes on the CPU)",
        not_on_gpu,
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use llorch_manifests::api::ObjectView;
    use llorch_manifests::status::{ObjectStatus, ReplicaStatus};
    use llorch_manifests::{ObjectRef, ReplicaId};

    use super::*;

    fn replica(pool: &str, index: u32, phase: ReplicaPhase) -> ReplicaStatus {
        ReplicaStatus {
            id: ReplicaId::new(pool, index),
            pool: pool.into(),
            index,
            phase,
            container_id: None,
            container_name: None,
            endpoint: None,
            gpus: vec![index],
            gpus_simulated: false,
            engine_version: "b1".into(),
            spec_hash: "h".into(),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio: None,
        }
    }

    #[test]
    fn replicas_not_on_their_gpu_are_counted_per_pool_and_other_pools_read_0() {
        let pool = |name: &str| ObjectView {
            object: ObjectRef::new(Kind::Pool, name),
            source: None,
            manifest: None,
            status: ObjectStatus::new(ObjectRef::new(Kind::Pool, name)),
        };
        let snapshot = Snapshot {
            objects: vec![pool("chat"), pool("coder")],
            replicas: vec![
                replica("chat", 0, ReplicaPhase::NotOnGpu),
                replica("chat", 1, ReplicaPhase::Ready),
                replica("chat", 2, ReplicaPhase::NotOnGpu),
                replica("coder", 0, ReplicaPhase::Ready),
            ],
            ..Snapshot::default()
        };
        let text = super::super::render(&snapshot).unwrap();
        for line in [
            "# TYPE llorch_pool_replicas_not_on_gpu gauge",
            r#"llorch_pool_replicas_not_on_gpu{pool="chat"} 2"#,
            r#"llorch_pool_replicas_not_on_gpu{pool="coder"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }
}
