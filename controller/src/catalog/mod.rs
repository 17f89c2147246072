//! The model catalog: where model artifacts live on this host and how they get there.
//!
//! - [`index`]: the catalog's index file (one JSON document with a `schemaVersion`, written
//!   atomically) listing every artifact, its digest, size, path, references and lifecycle.
//! - [`cache`]: the content-addressed cache layout (`blobs/sha256/<hex>`, `partial/`) and the
//!   atomic move of a verified download into it.
//! - [`policy`]: the download policy (`models.downloads`, `models.allowHosts`).
//! - [`hf`]: turning `hf:` references into the hub's URLs.
//! - [`fetch`]: resumable, verified HTTP downloads with manual, policy-checked redirects.
//! - [`progress`]: bytes done/total of a running fetch, and a throttled wake-up.
//! - [`http`]: the download client (hyper over rustls).
//! - [`tls`]: rustls with the `ring` provider and the system roots, for that client alone.
//! - [`secret`]: the hub token, which never prints.
//!
//! It knows nothing of Pools or the reconcile loop: [`crate::models`] drives it.

pub mod cache;
pub mod error;
pub mod fetch;
pub mod hf;
pub mod http;
pub mod index;
pub mod policy;
pub mod progress;
pub mod secret;
pub mod tls;

#[cfg(test)]
pub(crate) mod testserver;

pub use error::FetchError;
