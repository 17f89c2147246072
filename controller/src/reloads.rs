//! Explicit reloads (`POST /v2/pools/{id}/reload` without a new model): a per-pool counter that
//! the controller folds into every replica's spec hash, so bumping it makes every replica
//! outdated and the rolling replacement in [`crate::rollout`] runs for an unchanged spec.
//!
//! The counters are persisted in `<state>/reloads.json` (written atomically): a restarted daemon
//! computes the same hashes as before and adopts its containers instead of replacing them. A
//! counter of 0 leaves the hash exactly as it was before reloads existed.
//! It never triggers a pass or touches a container itself: the changed hash does the rest.

use std::path::Path;

use llorch_manifests::hash::short_hash;
use llorch_manifests::identity::ReplicaLabels;

use crate::runtime::ContainerSpec;
pub use crate::state_map::SaveError;
use crate::state_map::StateMap;

/// Reload counters by pool name.
#[derive(Debug, Default)]
pub struct ReloadCounters(StateMap<u64>);

impl ReloadCounters {
    /// Counters kept in memory only (tests, a controller without a state directory).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Counters persisted in `<state_dir>/reloads.json`; a missing or unreadable file starts
    /// every pool at 0 (an unreadable one is logged).
    pub fn open(state_dir: &Path) -> Self {
        Self(StateMap::open(state_dir, "reloads.json"))
    }

    /// The counter of `pool` (0 when never reloaded).
    pub fn get(&self, pool: &str) -> u64 {
        self.0.get(pool).unwrap_or(0)
    }

    /// Increments `pool`'s counter, persists it, and returns the new value.
    pub fn bump(&self, pool: &str) -> Result<u64, SaveError> {
        let next = self
            .0
            .update(pool, |n| Some(n.copied().unwrap_or(0).saturating_add(1)))?;
        Ok(next.unwrap_or(0))
    }
}

/// `hash` with the reload counter folded in; `hash` itself when the counter is 0.
pub fn fold(hash: &str, reload: u64) -> String {
    if reload == 0 {
        hash.to_string()
    } else {
        short_hash(&(hash, reload))
    }
}

/// Rewrites a container spec of `instance` to carry `hash` (the folded one) in its labels and
/// name; a spec that already carries it is left as it is.
pub fn relabel(spec: &mut ContainerSpec, instance: &str, hash: &str) {
    let Some(mut identity) = ReplicaLabels::read(&spec.labels) else {
        return;
    };
    if identity.spec_hash == hash {
        return;
    }
    identity.rehash(&mut spec.name, hash);
    spec.labels.extend(identity.to_labels(instance));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counters_persist_and_zero_keeps_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let c = ReloadCounters::open(dir.path());
        assert_eq!(c.get("chat"), 0);
        assert_eq!(c.bump("chat").unwrap(), 1);
        assert_eq!(c.bump("chat").unwrap(), 2);
        assert_eq!(
            ReloadCounters::open(dir.path()).get("chat"),
            2,
            "a restart reads it back"
        );
        assert_eq!(fold("abcdef123456", 0), "abcdef123456");
        assert_ne!(fold("abcdef123456", 1), fold("abcdef123456", 2));
    }

    #[test]
    fn the_hash_in_the_name_and_the_label_is_replaced() {
        let identity = ReplicaLabels {
            pool: "chat".into(),
            index: 0,
            spec_hash: "abcdef123456".into(),
            engine_version: "1".into(),
            gpus: vec![0],
            gpus_simulated: true,
        };
        let mut spec = ContainerSpec {
            name: llorch_manifests::identity::container_name(&identity, "t", "1f2e"),
            image: "img".into(),
            launch: crate::runtime::Launch::Image,
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            labels: identity.to_labels("t"),
            container_port: 8080,
            gpus: crate::runtime::GpuAttachment::Simulated(vec![0]),
        };
        spec.labels.insert("other".into(), "kept".into());
        relabel(&mut spec, "t", "0123456789ab");
        assert_eq!(spec.name, "llorch-t-chat-0-012345-1f2e");
        assert_eq!(spec.labels[llorch_manifests::identity::SPEC_HASH_KEY], "0123456789ab");
        assert_eq!(spec.labels["other"], "kept");
    }
}
