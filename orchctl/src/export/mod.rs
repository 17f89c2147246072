//! `orchctl export`: the same manifests, rendered for a Kubernetes cluster (docs/kubernetes.md).
//! Pure renderers over parsed objects; the command gathers its input like `plan` does (the
//! manifests directory, `-f` input, or one `pool/NAME`) and writes YAML to stdout, with what a
//! user must still do (Secrets to create, files to place) on stderr.

pub mod kubeai;
mod parts;
mod refusal;

pub use parts::PoolParts;
pub use refusal::{Refusal, Unexportable};
