//! The HTTPS listener's certificates: loaded from PEM files, each with the names its SAN entries
//! cover (wildcards included), chosen per handshake by SNI, and replaced as a whole, atomically,
//! when the files change. A set that does not load (a file unreadable or unparsable, a key that
//! does not match its certificate) is refused and the running one keeps serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::CertificateConfig;

/// Why a certificate set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file holds no usable PEM object of the expected kind.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the one the certificate was issued for (or cannot sign).
    #[error("{key} does not match the certificate in {cert}: {reason}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// One certificate chain and key, with the names it serves.
pub struct ServedCertificate {
    /// What rustls presents.
    pub key: Arc<CertifiedKey>,
    /// DNS names from the leaf's SAN (`*.example.com` for wildcards), lowercase.
    pub names: Vec<String>,
    /// Where it came from.
    pub cert_path: PathBuf,
}

impl fmt::Debug for ServedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedCertificate")
            .field("names", &self.names)
            .field("cert_path", &self.cert_path)
            .finish()
    }
}

impl ServedCertificate {
    /// Whether this certificate is valid for `server_name` (lowercase): an exact SAN, or a
    /// wildcard SAN covering exactly the first label (`*.example.com` covers `a.example.com`,
    /// not `example.com` nor `a.b.example.com`, as RFC 6125 §6.4.3 has it).
    pub fn serves(&self, server_name: &str) -> bool {
        let parent = server_name.split_once('.').map(|(_, parent)| parent);
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(suffix) => parent == Some(suffix),
            None => name == server_name,
        })
    }
}

/// A loaded set, with a fingerprint of the files it came from.
#[derive(Debug)]
struct CertSet {
    certificates: Vec<ServedCertificate>,
    fingerprint: [u8; 32],
}

/// The certificates in force; also rustls's certificate resolver.
#[derive(Debug)]
pub struct Certificates {
    current: ArcSwap<CertSet>,
    provider: Arc<CryptoProvider>,
}

impl Certificates {
    /// Load `pairs` (at least one; the first is the default).
    pub fn load(
        pairs: &[CertificateConfig],
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CertError> {
        let set = load_set(pairs, &provider)?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            provider,
        })
    }

    /// Load `pairs` again and put them in force if they changed. `Ok(true)`: replaced;
    /// `Ok(false)`: the files are unchanged. On error nothing changes.
    pub fn reload(&self, pairs: &[CertificateConfig]) -> Result<bool, CertError> {
        let fingerprint = fingerprint(pairs)?;
        if fingerprint == self.current.load().fingerprint {
            return Ok(false);
        }
        let set = load_set(pairs, &self.provider)?;
        self.current.store(Arc::new(set));
        Ok(true)
    }

    /// The names served, per certificate, for logs.
    pub fn describe(&self) -> Vec<(PathBuf, Vec<String>)> {
        self.current
            .load()
            .certificates
            .iter()
            .map(|c| (c.cert_path.clone(), c.names.clone()))
            .collect()
    }

    /// The certificate for a handshake naming `server_name` (or none): the first that serves
    /// it, else the first of all.
    pub fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        let wanted = server_name.map(str::to_ascii_lowercase);
        let chosen = wanted
            .as_deref()
            .and_then(|name| set.certificates.iter().find(|c| c.serves(name)))
            .or_else(|| set.certificates.first());
        chosen.map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

fn load_set(pairs: &[CertificateConfig], provider: &CryptoProvider) -> Result<CertSet, CertError> {
    let fingerprint = fingerprint(pairs)?;
    let certificates = pairs
        .iter()
        .map(|pair| load_pair(pair, provider))
        .collect::<Result<_, _>>()?;
    Ok(CertSet {
        certificates,
        fingerprint,
    })
}

fn load_pair(
    pair: &CertificateConfig,
    provider: &CryptoProvider,
) -> Result<ServedCertificate, CertError> {
    let chain = read_chain(&pair.cert)?;
    let key = read_key(&pair.key)?;
    let names = names_of(&chain[0]).map_err(|reason| CertError::Parse {
        path: pair.cert.clone(),
        reason,
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| CertError::KeyMismatch {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(ServedCertificate {
        key: Arc::new(key),
        names,
        cert_path: pair.cert.clone(),
    })
}

/// Every certificate in a PEM file, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path)?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Parse {
            path: path.to_path_buf(),
            reason: format!("not a PEM certificate file: {e}"),
        })?;
    if chain.is_empty() {
        return Err(CertError::Parse {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| CertError::Parse {
        path: path.to_path_buf(),
        reason: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) found: {e}"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| CertError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The SAN DNS names of a leaf certificate, lowercase.
fn names_of(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let cert =
        webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("invalid certificate: {e}"))?;
    // Listing the names to choose among is what this is for; verifying a name against a
    // certificate stays the client's job (webpki's `verify_is_valid_for_subject_name`).
    Ok(cert
        .valid_dns_names()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect())
}

/// A digest of every file of the set, to tell a real change from a touch.
fn fingerprint(pairs: &[CertificateConfig]) -> Result<[u8; 32], CertError> {
    let mut hasher = Sha256::new();
    for pair in pairs {
        hasher.update(read(&pair.cert)?);
        hasher.update(read(&pair.key)?);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(names: &[&str]) -> ServedCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            &provider,
        )
        .unwrap();
        ServedCertificate {
            key: Arc::new(certified),
            names: names.iter().map(|n| n.to_string()).collect(),
            cert_path: "x".into(),
        }
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        let wildcard = served(&["*.example.com"]);
        assert!(wildcard.serves("a.example.com"));
        assert!(!wildcard.serves("example.com"));
        assert!(!wildcard.serves("a.b.example.com"));
        assert!(!wildcard.serves("aexample.com"));
        let exact = served(&["example.com"]);
        assert!(exact.serves("example.com"));
        assert!(!exact.serves("www.example.com"));
    }
}
