//! `--format kubeai`: a Pool as KubeAI's `Model` custom resource (`kubeai.org/v1`), where the
//! Pool maps onto one. (Being written.)

/// What keeps a Pool from being a KubeAI `Model`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KubeAiGap {}
