//! The labels llama-orch puts on every engine container. They are the whole of the link
//! between a container and the manifests: a restarted daemon rebuilds its view from them.

use std::collections::BTreeMap;

/// Present on every container llama-orch creates (value [`OWNER`]).
pub const OWNER_KEY: &str = "dev.llama-orch.owner";
/// The owner value.
pub const OWNER: &str = "llama-orch";
/// The daemon instance that owns the container; other instances' containers are never touched.
pub const INSTANCE_KEY: &str = "dev.llama-orch.instance";
/// The Pool.
pub const POOL_KEY: &str = "dev.llama-orch.pool";
/// The replica index within the Pool.
pub const REPLICA_KEY: &str = "dev.llama-orch.replica";
/// Hash of everything the container was created from; a change means "outdated".
pub const SPEC_HASH_KEY: &str = "dev.llama-orch.spec-hash";
/// The Engine's version label.
pub const ENGINE_VERSION_KEY: &str = "dev.llama-orch.engine-version";
/// GPU indices, comma-separated.
pub const GPUS_KEY: &str = "dev.llama-orch.gpus";
/// `true` when the GPUs are simulated.
pub const GPUS_SIMULATED_KEY: &str = "dev.llama-orch.gpus-simulated";

/// The label filter that selects all of one instance's containers.
pub fn instance_selector(instance: &str) -> Vec<(String, String)> {
    vec![
        (OWNER_KEY.to_string(), OWNER.to_string()),
        (INSTANCE_KEY.to_string(), instance.to_string()),
    ]
}

/// What a container's labels say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLabels {
    /// Pool name.
    pub pool: String,
    /// Replica index.
    pub index: u32,
    /// Spec hash.
    pub spec_hash: String,
}

/// Reads our labels back; `None` when they are missing or malformed (such a container is an
/// orphan of this instance and is removed).
pub fn read(labels: &BTreeMap<String, String>) -> Option<ReplicaLabels> {
    Some(ReplicaLabels {
        pool: labels.get(POOL_KEY)?.clone(),
        index: labels.get(REPLICA_KEY)?.parse().ok()?,
        spec_hash: labels.get(SPEC_HASH_KEY)?.clone(),
    })
}
