//! Which servers the client believes: the TLS configuration every connection shares.
//!
//! A client that trusts only a list compiled into it fails for exactly the people who most need
//! it to work: someone behind a company proxy that inspects HTTPS (its CA is in the operating
//! system's store), or someone pointing the tutorial at a local HTTPS server (its CA is in a
//! file). So the client trusts what curl, OpenSSL, Python and Go trust:
//!
//! - the Mozilla roots compiled in (`webpki-roots`), so the real API works on any machine;
//! - the CA certificates named by `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set, else the
//!   operating system's store (read by `rustls-native-certs`, which follows the same rule).
//!
//! The built-in emulator is different: the client trusts exactly the CA it made at start, and
//! nothing else ([`TlsRoots::Only`]), because no other server can be on the other end.
//!
//! The configuration is built once and shared by every connection of a client (and every
//! lane, see [`crate::pool`]): parsing a root store costs time and memory, and a hundred
//! connections do not need a hundred copies. It is rustls with the `ring` provider, the same
//! crypto reqwest uses; there is no OpenSSL in the build.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// The variable a user sets to trust another CA; named in every certificate error.
pub const CERT_FILE_VAR: &str = "SSL_CERT_FILE";

/// Where the trusted roots come from.
#[derive(Clone, Debug, Default)]
pub enum TlsRoots {
    /// The compiled-in web roots, plus `SSL_CERT_FILE`/`SSL_CERT_DIR` or the OS store.
    #[default]
    System,
    /// Only the certificates in this PEM text (the built-in emulator's CA).
    Only(String),
}

/// The shared rustls configuration for `roots`, offering HTTP/2 first (ALPN), then HTTP/1.1.
pub(crate) fn client_tls(roots: &TlsRoots) -> Result<rustls::ClientConfig> {
    let store = match roots {
        TlsRoots::System => system_roots()?.as_ref().clone(),
        TlsRoots::Only(pem) => pem_roots(pem)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("cannot configure TLS: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The web roots plus the user's: read once per process (the files do not change under a run).
fn system_roots() -> Result<Arc<RootCertStore>> {
    static ROOTS: OnceLock<std::result::Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(load_system_roots)
        .clone()
        .map_err(Error::Config)
}

fn load_system_roots() -> std::result::Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let native = rustls_native_certs::load_native_certs();
    let named_by_user = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .find(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    if let (Some(var), Some(error)) = (named_by_user, native.errors.first()) {
        // The user asked for these certificates: not finding them is an error, not a shrug.
        return Err(format!(
            "cannot read the CA certificates that {var} names: {error}; fix or unset {var}"
        ));
    }
    for error in &native.errors {
        tracing::debug!(%error, "skipping part of the system's certificate store");
    }
    let (added, ignored) = store.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        ignored,
        from = named_by_user.copied().unwrap_or("the system store"),
        "trusted CA certificates loaded"
    );
    Ok(Arc::new(store))
}

/// A root store of exactly the certificates in `pem`.
fn pem_roots(pem: &str) -> Result<RootCertStore> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("the CA certificate is not valid PEM: {e}")))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Config(
            "the CA certificate holds no usable certificate".into(),
        ));
    }
    Ok(store)
}

/// The hint added to a certificate error: the one thing a user can do about it.
pub(crate) fn untrusted_hint() -> String {
    format!(
        "the server's certificate is not signed by a CA this client trusts; to trust a private CA \
         (a local emulator, a company proxy), set {CERT_FILE_VAR}=/path/to/ca.pem"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_that_holds_no_certificate_is_refused() {
        assert!(pem_roots("").is_err());
        assert!(
            pem_roots("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n").is_err()
        );
    }

    #[test]
    fn the_system_roots_include_the_web_roots() {
        let roots = system_roots().expect("roots load");
        assert!(roots.len() >= webpki_roots::TLS_SERVER_ROOTS.len());
    }
}
