//! What exported objects are called and how they are labelled: made here only, so the
//! Deployment, its Service, the gateway's Engine URLs and the docs agree. Names are llama-orch
//! names (1–40 of `[a-z0-9-]`, starting with a letter) behind a fixed prefix, so every one is a
//! valid Kubernetes DNS-1035 label (at most 63 characters).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Every exported object's name starts with this (as llama-orch's containers do).
pub const PREFIX: &str = "llorch";

/// The Deployment and the Service of Pool `pool`: `llorch-<pool>`.
pub fn pool_object(pool: &str) -> String {
    format!("{PREFIX}-{pool}")
}

/// The PersistentVolumeClaim that holds Model `model`'s file: `llorch-model-<model>`.
pub fn model_claim(model: &str) -> String {
    format!("{PREFIX}-model-{model}")
}

/// The Secret an Engine's hidden environment values come from: `llorch-<engine>-env`.
pub fn engine_secret(engine: &str) -> String {
    format!("{PREFIX}-{engine}-env")
}

/// The Secret the model download's Hugging Face token comes from (optional).
pub const HF_TOKEN_SECRET: &str = "llorch-hf-token";

/// The gateway's Deployment, Service and ConfigMap.
pub const GATEWAY: &str = "llorch-gateway";

/// The Secret that holds the gateway's API token (key `token`).
pub const GATEWAY_TOKEN_SECRET: &str = "llorch-gateway-token";

/// Label keys: Kubernetes' recommended ones, plus llama-orch's own.
pub mod key {
    /// What the object is part of: always `llama-orch`.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// What made it: `orchctl`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The application: `llama-orch-engine` or `llama-orch-gateway`.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// The instance: the object's own name.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// The Pool, as on llama-orch's containers.
    pub const POOL: &str = llorch_manifests::identity::POOL_KEY;
    /// The Engine.
    pub const ENGINE: &str = "dev.llama-orch.engine";
    /// The Model.
    pub const MODEL: &str = "dev.llama-orch.model";
    /// The Engine's version label, as on llama-orch's containers (only when it is a valid
    /// label value; the annotation always carries it).
    pub const ENGINE_VERSION: &str = llorch_manifests::identity::ENGINE_VERSION_KEY;
    /// Annotation: the Model's declared digest.
    pub const MODEL_DIGEST: &str = "dev.llama-orch.model-digest";
}

/// `app.kubernetes.io/name` of engine workloads.
pub const ENGINE_APP: &str = "llama-orch-engine";
/// `app.kubernetes.io/name` of the gateway.
pub const GATEWAY_APP: &str = "llama-orch-gateway";

/// A label set under construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// The labels every exported object carries.
    pub fn common(app: &str, instance: &str) -> Labels {
        let mut l = Labels::default();
        l.set(key::PART_OF, "llama-orch");
        l.set(key::MANAGED_BY, "orchctl");
        l.set(key::NAME, app);
        l.set(key::INSTANCE, instance);
        l
    }

    /// Adds `k: v`, when `v` is a valid label value (else it is left out: annotations carry
    /// free text).
    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        if is_label_value(v) {
            self.0.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// Adds the user's own labels (theirs never replace ours).
    pub fn extend_user(&mut self, user: &BTreeMap<String, String>) -> &mut Self {
        for (k, v) in user {
            self.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
}

/// Kubernetes' rule for label values: at most 63 of `[A-Za-z0-9._-]`, starting and ending with
/// a letter or digit (or empty).
pub fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')))
}

/// Metadata for an object called `name` with `labels` and `annotations`, in `namespace`.
pub fn meta(name: &str, namespace: Option<&str>, labels: &Labels, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels.0.clone()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_llama_orch_name_still_makes_a_dns_label() {
        let forty = "a".repeat(40);
        assert!(model_claim(&forty).len() <= 63);
        assert!(engine_secret(&forty).len() <= 63);
        assert!(pool_object(&forty).len() <= 63);
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        assert!(is_label_value("v0.10.2"));
        assert!(is_label_value("server-cuda"));
        assert!(!is_label_value("1.0 beta"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn user_labels_never_replace_ours() {
        let mut l = Labels::common(ENGINE_APP, "llorch-chat");
        l.extend_user(&BTreeMap::from([
            ("team".to_string(), "demo".to_string()),
            (key::MANAGED_BY.to_string(), "me".to_string()),
        ]));
        assert_eq!(l.0[key::MANAGED_BY], "orchctl");
        assert_eq!(l.0["team"], "demo");
    }
}
