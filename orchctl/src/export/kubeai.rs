//! `--format kubeai`: a Pool as KubeAI's `Model` custom resource (`kubeai.org/v1`), where the
//! Pool maps onto one. (Being written.)

/// What keeps a Pool from being a KubeAI `Model`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KubeAiGap {}

/// Options of the KubeAI rendering (stub until the renderer lands).
#[derive(Clone, Debug, Default)]
pub struct KubeAiOptions {
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The resource profile's name, without the count.
    pub resource_profile: String,
}

/// A Pool as a KubeAI `Model` (stub).
pub fn model(
    _parts: &super::PoolParts<'_>,
    _options: &KubeAiOptions,
) -> Result<serde_json::Value, super::Unexportable> {
    Ok(serde_json::Value::Null)
}
