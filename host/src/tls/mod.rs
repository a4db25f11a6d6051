//! TLS: terminating HTTPS for clients ([`server`], with certificates chosen by SNI and
//! reloaded in place, [`certs`]) and connecting to `https://` backends ([`client`]).
//!
//! rustls with the aws-lc-rs crypto provider, chosen by measurement
//! (`bench/tls_provider`, both providers, same keys, one core): full handshakes per second,
//! ECDSA P-256, TLS 1.3 3,475–3,504 (aws-lc-rs) vs 3,096–3,122 (ring), TLS 1.2 4,320–4,443 vs
//! 3,487–3,507; RSA 2048, TLS 1.3 2,185–2,222 vs 1,230–1,238. A keep-alive exchange of small
//! records costs the same with either (666–690k vs 663–682k exchanges per second); ring moves
//! bulk 64 KiB records faster (~2.7 vs ~2.0 GiB/s), which no single proxy core gets near. New
//! connections are what an edge pays for, so aws-lc-rs; it is also rustls's default and builds
//! here without cmake.

pub mod certs;
pub mod client;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use certs::{CertError, Certificates};
pub use server::{HandshakeMetrics, TlsTerminator};

/// The crypto provider every TLS configuration of lbx uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
