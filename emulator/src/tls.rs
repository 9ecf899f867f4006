//! The emulator's own certificate authority, made fresh at every start.
//!
//! The real API is only ever served over HTTPS, so the emulator speaks HTTPS too -- but a
//! local server has no certificate from a public authority. Instead of shipping a key in the
//! repository (which anyone could then use to impersonate it) or asking the user to run
//! `openssl`, every start makes a new CA and a leaf certificate for `localhost`, `127.0.0.1`
//! and `::1`, signed by it, with [`rcgen`]. The CA's PEM is all a client needs to trust the
//! server: the in-process emulator hands it to the client directly, the standalone one writes
//! it to a file for `SSL_CERT_FILE`. Nothing private ever leaves the process.
//!
//! The server offers ALPN `h2` first, then `http/1.1`, as Google's front end does.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The names the leaf certificate is valid for: every way a local client may spell this machine.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A fresh CA and the TLS acceptor that serves its leaf certificate.
#[derive(Clone)]
pub struct Identity {
    /// The CA certificate in PEM: what a client adds to its trusted roots.
    pub ca_pem: String,
    /// Accepts TLS connections with the leaf certificate and ALPN `h2`, `http/1.1`.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

/// Why the certificates or the TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the parameters (should not happen with the fixed ones used here).
    #[error("cannot make the emulator's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the key or certificate.
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl Identity {
    /// Makes a new CA, a leaf for the local names signed by it, and the server configuration.
    pub fn generate() -> Result<Identity, TlsError> {
        let ca_key = KeyPair::generate()?;
        let ca_params = ca_params(&ca_key)?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf_params()?.signed_by(&leaf_key, &issuer)?;

        let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let acceptor = acceptor(chain, key)?;
        Ok(Identity {
            ca_pem: ca_cert.pem(),
            acceptor,
        })
    }
}

/// A CA that may sign only leaf certificates (path length 0).
///
/// Its name ends with a few bytes of its own public key: two emulators' CAs in one trust file
/// (say, SSL_CERT_FILE for two servers) must not share a name, or OpenSSL, which finds an
/// issuer by name, checks a certificate against the wrong one.
fn ca_params(key: &KeyPair) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let tag: String = key
        .public_key_raw()
        .iter()
        .rev()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = name(&format!("Gemini emulator local CA {tag}"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The server certificate for `localhost`, `127.0.0.1` and `::1`.
fn leaf_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(LOCAL_NAMES.map(String::from).to_vec())?;
    params.distinguished_name = name("Gemini emulator");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// rustls with the ring provider (the one reqwest uses: no second crypto library), ALPN h2 first.
fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_makes_a_new_ca() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.ca_pem, b.ca_pem);
        assert!(!a.ca_pem.contains("PRIVATE KEY"));
    }
}
