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
//! A variable the user set is read on its own, at start: one that names nothing readable, or a
//! file or directory with no certificate in it, is one line that names that variable (not the
//! other), before any request.
//!
//! The built-in emulator is different: the client trusts exactly the CA it made at start, and
//! nothing else ([`TlsRoots::Only`]), because no other server can be on the other end.
//!
//! The configuration is built once and shared by every connection of a client (and every
//! lane, see [`crate::pool`]): parsing a root store costs time and memory, and a hundred
//! connections do not need a hundred copies. It is rustls with the `ring` provider, the same
//! crypto reqwest uses; there is no OpenSSL in the build.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// The variable a user sets to trust another CA; named in every certificate error.
pub const CERT_FILE_VAR: &str = "SSL_CERT_FILE";

/// The variable naming directories of CA certificates (`:`-separated).
pub const CERT_DIR_VAR: &str = "SSL_CERT_DIR";

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
    let file = std::env::var_os(CERT_FILE_VAR).filter(|v| !v.is_empty());
    let dirs: Vec<PathBuf> = std::env::var_os(CERT_DIR_VAR)
        .map(|dirs| {
            std::env::split_paths(&dirs)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if file.is_none() && dirs.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipping part of the system's certificate store");
        }
        let (added, ignored) = store.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            ignored,
            "trusted CA certificates loaded from the system store"
        );
        return Ok(Arc::new(store));
    }
    // The user named these certificates: each variable is read on its own,
    // so that a fault is blamed on the one that has it, and finding nothing
    // is an error, not a shrug.
    let mut added = 0;
    if let Some(file) = &file {
        let certs = user_certs(CERT_FILE_VAR, Path::new(file), None)?;
        added += certs_into(&mut store, CERT_FILE_VAR, Path::new(file), certs)?;
    }
    for dir in &dirs {
        let certs = user_certs(CERT_DIR_VAR, dir, Some(dir))?;
        // A directory may be empty (OpenSSL allows it); all of them may not,
        // when no file is named.
        if !certs.is_empty() {
            added += certs_into(&mut store, CERT_DIR_VAR, dir, certs)?;
        }
    }
    if added == 0 {
        let shown = std::env::join_paths(&dirs).unwrap_or_default();
        return Err(format!(
            "{CERT_DIR_VAR}={} holds no CA certificate (no file in it has a -----BEGIN CERTIFICATE----- block): name a directory of PEM files, or unset {CERT_DIR_VAR}",
            shown.to_string_lossy()
        ));
    }
    tracing::debug!(
        added,
        "trusted CA certificates loaded from {CERT_FILE_VAR}/{CERT_DIR_VAR}"
    );
    Ok(Arc::new(store))
}

/// The certificates of the file `var` names (or, with `dir`, of the files
/// in that directory), or the one line that says why they cannot be read.
fn user_certs(
    var: &str,
    path: &Path,
    dir: Option<&Path>,
) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let file = if dir.is_some() { None } else { Some(path) };
    let loaded = rustls_native_certs::load_certs_from_paths(file, dir);
    if let Some(error) = loaded.errors.first() {
        return Err(format!(
            "cannot read the CA certificates that {var}={} names: {error}; fix or unset {var}",
            path.display()
        ));
    }
    Ok(loaded.certs)
}

/// Adds the certificates read from `path` (named by `var`) to `store`:
/// how many it took. A file with none it could use is an error.
fn certs_into(
    store: &mut RootCertStore,
    var: &str,
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
) -> std::result::Result<usize, String> {
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        let why = if ignored == 0 {
            "no -----BEGIN CERTIFICATE----- block"
        } else {
            "only certificates that cannot be parsed"
        };
        return Err(format!(
            "{var}={} holds no CA certificate ({why}): name a PEM file of CA certificates, or unset {var}",
            path.display()
        ));
    }
    Ok(added)
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
///
/// When `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, they were read and do not
/// hold the CA: saying "set SSL_CERT_FILE" would send the user round in a
/// circle, so the hint names what is set.
pub(crate) fn untrusted_hint() -> String {
    let named: Vec<String> = [CERT_FILE_VAR, CERT_DIR_VAR]
        .iter()
        .filter_map(|var| {
            let value = std::env::var_os(var).filter(|v| !v.is_empty())?;
            Some(format!("{var}={}", value.to_string_lossy()))
        })
        .collect();
    if named.is_empty() {
        return format!(
            "the server's certificate is not signed by a CA this client trusts; to trust a private CA \
             (a local emulator, a company proxy), set {CERT_FILE_VAR}=/path/to/ca.pem"
        );
    }
    let or_file = if named[0].starts_with(CERT_FILE_VAR) {
        ""
    } else {
        " (or name it with SSL_CERT_FILE=/path/to/ca.pem)"
    };
    format!(
        "the server's certificate is not signed by a CA this client trusts: neither the built-in \
         roots nor {} hold the CA that signed it; add that CA (a local emulator's, a company \
         proxy's) there{or_file}",
        named.join(" and ")
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
