//! Handshakes per second and bulk throughput of one rustls crypto provider, both ends in one
//! thread, bytes moved through memory. See Cargo.toml for the run commands.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

#[cfg(feature = "aws-lc-rs")]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Move bytes from one end to the other until neither has anything to say; returns the
/// plaintext bytes the client read (and discarded) on the way.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> usize {
    let mut received = 0;
    let mut sink = [0u8; 16 * 1024];
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let mut moved = false;
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut slice = &buf[..];
            while !slice.is_empty() {
                server.read_tls(&mut slice).unwrap();
                server.process_new_packets().unwrap();
            }
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut slice = &buf[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).unwrap();
                client.process_new_packets().unwrap();
                while let Ok(n) = client.reader().read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                    received += n;
                }
            }
        }
        if !moved {
            return received;
        }
    }
}

fn configs(
    key_type: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let dir = std::env::temp_dir().join(format!("tls-provider-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key_path, cert_path) = (dir.join("key.pem"), dir.join("cert.pem"));
    let newkey: &[&str] = match key_type {
        "ec" => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        _ => &["-newkey", "rsa:2048"],
    };
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=bench.example"])
        .args(["-addext", "subjectAltName=DNS:bench.example"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(newkey)
        .arg("-keyout")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let cert_der = CertificateDer::from_pem_file(&cert_path).unwrap();
    let key_der = PrivateKeyDer::from_pem_file(&key_path).unwrap();
    let provider = Arc::new(provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Full handshakes only: no resumption.
    client.resumption = rustls::client::Resumption::disabled();
    (Arc::new(server), Arc::new(client))
}

fn handshakes_per_second(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> f64 {
    let name = ServerName::try_from("bench.example").unwrap();
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run {
        let mut c = ClientConnection::new(client.clone(), name.clone()).unwrap();
        let mut s = ServerConnection::new(server.clone()).unwrap();
        pump(&mut c, &mut s);
        assert!(!c.is_handshaking() && !s.is_handshaking());
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn bulk_mib_per_second(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> f64 {
    let name = ServerName::try_from("bench.example").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    pump(&mut c, &mut s);
    let chunk = vec![0x5au8; 64 * 1024];
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let mut bytes = 0u64;
    while started.elapsed() < run {
        s.writer().write_all(&chunk).unwrap();
        let got = pump(&mut c, &mut s);
        assert_eq!(got, chunk.len());
        bytes += got as u64;
    }
    bytes as f64 / started.elapsed().as_secs_f64() / (1024.0 * 1024.0)
}

/// Round trips of a small request (200 B) and response (300 B), as a keep-alive HTTPS
/// exchange moves them: record encryption and decryption per message dominate.
fn small_exchanges_per_second(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> f64 {
    let name = ServerName::try_from("bench.example").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    pump(&mut c, &mut s);
    let (request, response) = (vec![b'q'; 200], vec![b'r'; 300]);
    let mut sink = [0u8; 1024];
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run {
        c.writer().write_all(&request).unwrap();
        pump(&mut c, &mut s);
        let mut got = 0;
        while got < request.len() {
            got += s.reader().read(&mut sink).unwrap();
        }
        s.writer().write_all(&response).unwrap();
        assert_eq!(pump(&mut c, &mut s), response.len());
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let name = if cfg!(feature = "aws-lc-rs") { "aws-lc-rs" } else { "ring" };
    for (label, key_type) in [("ECDSA P-256", "ec"), ("RSA 2048", "rsa")] {
        let (server, client) = configs(key_type, &[&rustls::version::TLS13]);
        let tls13 = handshakes_per_second(&server, &client);
        let bulk = bulk_mib_per_second(&server, &client);
        let small = small_exchanges_per_second(&server, &client);
        let (server, client) = configs(key_type, &[&rustls::version::TLS12]);
        let tls12 = handshakes_per_second(&server, &client);
        println!(
            "{name} {label}: TLS 1.3 full handshakes/s {tls13:.0}, TLS 1.2 {tls12:.0}; \
             bulk (AES-256-GCM, 64 KiB records) {bulk:.0} MiB/s; \
             200 B request + 300 B response exchanges/s {small:.0}"
        );
    }
}
