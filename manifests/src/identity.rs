//! A replica's identity, made and read in this one place: its id (`<pool>-<index>`), the
//! endpoint its engine answers on, the labels llama-orch puts on its container (the whole of
//! the link between a container and the manifests: a restarted daemon rebuilds its view from
//! them), and the container's name.
//!
//! Pure string work: no I/O. The controller writes labels and names through
//! [`ReplicaLabels`] and [`container_name`], and reads them back with [`ReplicaLabels::read`];
//! the data plane only sees [`ReplicaId`] and [`Endpoint`].

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// Every container name llama-orch makes starts with this.
pub const NAME_PREFIX: &str = "llorch";

/// How many characters of the spec hash a container name carries.
const NAME_HASH_CHARS: usize = 6;

/// A replica of a Pool: `<pool>-<index>`, as the API, metrics, logs and events show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ReplicaId(String);

impl ReplicaId {
    /// Replica `index` of Pool `pool`.
    pub fn new(pool: &str, index: u32) -> Self {
        Self(format!("{pool}-{index}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(pool, index)`, when `text` is shaped like an id (the index follows the last `-`).
    pub fn parse(text: &str) -> Option<(&str, u32)> {
        let (pool, index) = text.rsplit_once('-')?;
        if pool.is_empty() {
            return None;
        }
        Some((pool, index.parse().ok()?))
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for ReplicaId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<str> for ReplicaId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl AsRef<str> for ReplicaId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ReplicaId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Where a replica's engine answers: a base URL without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Endpoint(String);

impl Endpoint {
    /// The host address engines are published on: loopback only.
    pub const LOOPBACK: &'static str = "127.0.0.1";

    /// An engine published (or listening) on loopback at `port`.
    pub fn loopback(port: u16) -> Self {
        Self(format!("http://{}:{port}", Self::LOOPBACK))
    }

    /// An engine at base URL `url`: one someone else runs (an `external` Engine), or one a
    /// test started; a trailing `/` is dropped.
    pub fn external(url: &str) -> Self {
        Self(url.trim_end_matches('/').to_string())
    }

    /// The base URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The label filter that selects all of one instance's containers.
pub fn instance_selector(instance: &str) -> Vec<(String, String)> {
    vec![
        (OWNER_KEY.to_string(), OWNER.to_string()),
        (INSTANCE_KEY.to_string(), instance.to_string()),
    ]
}

/// What llama-orch's labels on a container say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLabels {
    /// Pool name.
    pub pool: String,
    /// Replica index.
    pub index: u32,
    /// Spec hash.
    pub spec_hash: String,
    /// The Engine's version label (empty when the label is missing).
    pub engine_version: String,
    /// GPU indices.
    pub gpus: Vec<u32>,
    /// Whether those GPUs are simulated.
    pub gpus_simulated: bool,
}

impl ReplicaLabels {
    /// The replica's id.
    pub fn id(&self) -> ReplicaId {
        ReplicaId::new(&self.pool, self.index)
    }

    /// The labels to put on the container of `instance`.
    pub fn to_labels(&self, instance: &str) -> BTreeMap<String, String> {
        let gpus = self.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        [
            (OWNER_KEY, OWNER.to_string()),
            (INSTANCE_KEY, instance.to_string()),
            (POOL_KEY, self.pool.clone()),
            (REPLICA_KEY, self.index.to_string()),
            (SPEC_HASH_KEY, self.spec_hash.clone()),
            (ENGINE_VERSION_KEY, self.engine_version.clone()),
            (GPUS_KEY, gpus),
            (GPUS_SIMULATED_KEY, self.gpus_simulated.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Reads the labels back; `None` when the pool, index or spec hash is missing or malformed
    /// (such a container is an orphan of this instance and is removed). The engine version and
    /// GPUs default to empty.
    pub fn read(labels: &BTreeMap<String, String>) -> Option<Self> {
        Some(Self {
            pool: labels.get(POOL_KEY)?.clone(),
            index: labels.get(REPLICA_KEY)?.parse().ok()?,
            spec_hash: labels.get(SPEC_HASH_KEY)?.clone(),
            engine_version: labels.get(ENGINE_VERSION_KEY).cloned().unwrap_or_default(),
            gpus: gpus_of(labels),
            gpus_simulated: labels.get(GPUS_SIMULATED_KEY).is_some_and(|v| v == "true"),
        })
    }

    /// Replaces the spec hash (a reload folds its counter into it), in the labels and in the
    /// container `name` made from the old one.
    pub fn rehash(&mut self, name: &mut String, hash: &str) {
        let (old, new) = (name_hash(&self.spec_hash), name_hash(hash));
        if let Some(at) = name.rfind(&format!("-{old}-")) {
            name.replace_range(at + 1..at + 1 + old.len(), new);
        }
        self.spec_hash = hash.to_string();
    }
}

/// The GPU indices a container's labels name (none when the label is missing).
pub fn gpus_of(labels: &BTreeMap<String, String>) -> Vec<u32> {
    labels
        .get(GPUS_KEY)
        .map(|g| g.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The pool a container's labels name, even when the rest of its labels are unreadable.
pub fn pool_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(POOL_KEY).map(String::as_str)
}

fn name_hash(hash: &str) -> &str {
    hash.get(..NAME_HASH_CHARS).unwrap_or(hash)
}

/// The name of a replica's container: `llorch-<instance>-<pool>-<index>-<hash6>-<suffix>`;
/// `suffix` makes it unique across restarts of the same replica.
pub fn container_name(labels: &ReplicaLabels, instance: &str, suffix: &str) -> String {
    format!(
        "{NAME_PREFIX}-{instance}-{}-{}-{}-{suffix}",
        labels.pool,
        labels.index,
        name_hash(&labels.spec_hash)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels() -> ReplicaLabels {
        ReplicaLabels {
            pool: "chat-big".into(),
            index: 3,
            spec_hash: "abcdef123456".into(),
            engine_version: "b5000".into(),
            gpus: vec![0, 2],
            gpus_simulated: true,
        }
    }

    #[test]
    fn labels_read_back_what_was_written() {
        let l = labels();
        let written = l.to_labels("home");
        assert_eq!(written[OWNER_KEY], "llama-orch");
        assert_eq!(written[INSTANCE_KEY], "home");
        assert_eq!(written[GPUS_KEY], "0,2");
        assert_eq!(ReplicaLabels::read(&written), Some(l));
    }

    #[test]
    fn a_container_without_pool_index_or_hash_has_no_identity() {
        let mut written = labels().to_labels("home");
        written.insert(REPLICA_KEY.into(), "x".into());
        assert_eq!(ReplicaLabels::read(&written), None);
        written.remove(REPLICA_KEY);
        assert_eq!(ReplicaLabels::read(&written), None);
        assert_eq!(pool_of(&written), Some("chat-big"));
    }

    #[test]
    fn replica_ids_parse_at_the_last_dash() {
        let id = ReplicaId::new("chat-big", 3);
        assert_eq!(id.as_str(), "chat-big-3");
        assert_eq!(ReplicaId::parse(id.as_str()), Some(("chat-big", 3)));
        assert_eq!(ReplicaId::parse("chat"), None);
        assert_eq!(ReplicaId::parse("-3"), None);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"chat-big-3\"");
    }

    #[test]
    fn names_carry_six_hash_characters_and_a_rehash_replaces_them() {
        let mut l = labels();
        let mut name = container_name(&l, "home", "1f2e");
        assert_eq!(name, "llorch-home-chat-big-3-abcdef-1f2e");
        l.rehash(&mut name, "0123456789ab");
        assert_eq!(name, "llorch-home-chat-big-3-012345-1f2e");
        assert_eq!(l.spec_hash, "0123456789ab");
    }

    #[test]
    fn endpoints_are_loopback_urls_or_external_ones_without_a_trailing_slash() {
        assert_eq!(Endpoint::loopback(8080).as_str(), "http://127.0.0.1:8080");
        assert_eq!(
            Endpoint::external("http://gpu-box:8000/").as_str(),
            "http://gpu-box:8000"
        );
    }
}
