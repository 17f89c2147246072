//! The TLS settings of model downloads: rustls with the `ring` crypto provider (no cmake, no
//! long C build as with aws-lc-rs) and the system's root certificates. Built for the download
//! client alone: nothing process-wide is installed, so no other HTTP client is affected.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// Why no TLS client config could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The crypto provider refused the protocol versions.
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
}

/// A client config trusting the system's root certificates. With none found (no
/// `ca-certificates` package), https downloads fail with an unknown-issuer error, which
/// [`crate::catalog::fetch`] turns into advice; a warning says so at start.
pub fn client_config() -> Result<ClientConfig, TlsError> {
    client_config_with(system_roots())
}

/// A client config trusting exactly `roots` (a private mirror's CA; tests).
pub fn client_config_with(roots: RootCertStore) -> Result<ClientConfig, TlsError> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(TlsError::Setup)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            errors = ?found.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "no system root certificates found; https model downloads will fail (install `ca-certificates`)"
        );
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_backed_client_config_builds_without_a_process_default() {
        assert!(client_config().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
