//! The serving certificate: from files (what the Helm chart mounts) or generated at start-up
//! (a CA of our own and a certificate it signs, whose PEM goes into the webhook
//! configurations as their `caBundle`).

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why no serving certificate could be set up.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Generating a certificate failed.
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS configuration and, when known, the CA that signed its certificate.
#[derive(Debug)]
pub struct Serving {
    /// The rustls server configuration.
    pub config: Arc<ServerConfig>,
    /// The PEM of the CA to put in the webhook configurations (`caBundle`).
    pub ca_pem: Option<Vec<u8>>,
}

fn file_error(path: &Path, reason: impl ToString) -> CertError {
    CertError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Reads a PEM certificate chain and key, and optionally the CA's PEM for `caBundle`.
pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> Result<Serving, CertError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no CERTIFICATE in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let ca_pem = match ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| file_error(p, e))?),
        None => None,
    };
    Ok(Serving {
        config: config(chain, key_der)?,
        ca_pem,
    })
}

/// Generates a CA and a serving certificate for `names` (DNS names and IP addresses).
pub fn generate(names: &[String]) -> Result<Serving, CertError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "spiderpool-controller webhook CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "spidernet.io");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    Ok(Serving {
        config: config(vec![leaf_cert.der().clone()], key)?,
        ca_pem: Some(ca_cert.pem().into_bytes()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_and_file_certificates_load() {
        let s = generate(&[
            "spiderpool-controller.kube-system.svc".into(),
            "127.0.0.1".into(),
        ])
        .unwrap();
        assert!(
            String::from_utf8(s.ca_pem.unwrap())
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&c, "not a pem").unwrap();
        std::fs::write(&k, "").unwrap();
        let e = from_files(&c, &k, None).unwrap_err().to_string();
        assert!(e.contains("tls.crt"), "{e}");
    }
}
