//! The `[tls]` section: the HTTPS listener and its certificates, and what the plain listener
//! does when HTTPS is on.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;

/// `[tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN on one port).
    pub listen: Option<String>,
    /// Certificate chains and keys. The names each serves come from its SAN entries; the
    /// first is served when SNI matches none (or is absent).
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateConfig>,
    /// Answer every request on the plain `listen` with `308` to the same URL on `https://`.
    #[serde(default)]
    pub redirect_http: bool,
}

/// One `[[tls.certificate]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file: the certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsConfig {
    /// Whether an HTTPS listener is configured.
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// The HTTPS address (call after validation).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    /// Problems with this section, each under its key.
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });
        match &self.listen {
            Some(listen) => {
                if let Err(e) = listen.parse::<SocketAddr>() {
                    problem(
                        "tls.listen".into(),
                        format!("{listen:?} is not an address like 0.0.0.0:8443 ({e})"),
                    );
                }
                if self.certificates.is_empty() {
                    problem(
                        "tls.certificate".into(),
                        "an HTTPS listener needs at least one [[tls.certificate]] with cert and key"
                            .into(),
                    );
                }
            }
            None => {
                if !self.certificates.is_empty() {
                    problem(
                        "tls.listen".into(),
                        "certificates are configured but no HTTPS listen address".into(),
                    );
                }
                if self.redirect_http {
                    problem(
                        "tls.redirect_http".into(),
                        "redirecting to https:// needs tls.listen".into(),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(tls: &TlsConfig) -> Vec<String> {
        let mut problems = Vec::new();
        tls.validate(&mut problems);
        problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_listener_and_certificates_come_together() {
        let certificate = CertificateConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        };
        let only_listen = TlsConfig {
            listen: Some("127.0.0.1:8443".into()),
            ..TlsConfig::default()
        };
        assert_eq!(problems(&only_listen), ["tls.certificate"]);
        let only_certificates = TlsConfig {
            certificates: vec![certificate.clone()],
            redirect_http: true,
            ..TlsConfig::default()
        };
        assert_eq!(
            problems(&only_certificates),
            ["tls.listen", "tls.redirect_http"]
        );
        let both = TlsConfig {
            listen: Some("127.0.0.1:8443".into()),
            certificates: vec![certificate],
            redirect_http: true,
        };
        assert!(problems(&both).is_empty());
    }
}
