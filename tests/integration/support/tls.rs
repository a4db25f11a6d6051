//! TLS test kit: a CA that issues certificates into a temporary directory, and an HTTPS client
//! that reports which certificate it was shown and whether the session was resumed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::TempDir;

/// A certificate authority for one test, writing PEM files into its own directory.
pub struct TestCa {
    /// Where its files go.
    pub dir: TempDir,
    /// The CA certificate, PEM.
    pub ca_pem: PathBuf,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

/// A certificate issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM chain (leaf only).
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
    /// The leaf, DER, to compare with what a client was shown.
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A new CA.
    pub fn new(label: &str) -> Self {
        let dir = TempDir::new(label);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("lbx test CA {label}"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).unwrap();
        Self {
            dir,
            ca_pem,
            params,
            key,
        }
    }

    /// Issue a certificate for `names` (DNS names or IP addresses), written as
    /// `<file>.pem` and `<file>.key`.
    pub fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or(file),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let issued = Issued {
            cert: self.dir.join(&format!("{file}.pem")),
            key: self.dir.join(&format!("{file}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// Like [`TestCa::client_config`], without session resumption: every connection is a full
    /// handshake, so it sees the certificate the server presents now.
    pub fn fresh_client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut config = (*self.client_config(alpn)).clone();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }

    /// A rustls client configuration trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca_pem).unwrap();
        for cert in rustls_pemfile_certs(&pem) {
            roots.add(cert).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The `[tls]` config section of an HTTPS listener on 127.0.0.1:0 serving `certificates` (the
/// first is the default).
pub fn tls_section(certificates: &[&Issued]) -> String {
    let mut toml = String::from("[tls]\nlisten = \"127.0.0.1:0\"\n");
    for issued in certificates {
        toml.push_str(&format!(
            "[[tls.certificate]]\ncert = {:?}\nkey = {:?}\n",
            issued.cert.to_str().unwrap(),
            issued.key.to_str().unwrap()
        ));
    }
    toml
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct HttpsAnswer {
    /// The whole response, as text.
    pub response: String,
    /// The leaf certificate the server presented.
    pub leaf: CertificateDer<'static>,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
}

/// Connect to `addr` as `server_name` with `config`, send `GET <path>` (HTTP/1.1, close) and
/// read the answer. `Err` with the reason if the handshake or the exchange fails.
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<HttpsAnswer, String> {
    let mut tls = https_connect(addr, server_name, config).await?;
    let (leaf, resumed) = {
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or("no certificate")?;
        (
            leaf,
            session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        )
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // A server may end the TLS session without close_notify; what arrived still counts.
    let _ = tls.read_to_end(&mut response).await;
    Ok(HttpsAnswer {
        response: String::from_utf8_lossy(&response).into_owned(),
        leaf,
        resumed,
    })
}

/// A TLS connection to `addr` as `server_name`, handshake done.
pub async fn https_connect(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}
