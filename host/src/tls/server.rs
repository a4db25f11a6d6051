//! The HTTPS listener's TLS: TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1` on one port,
//! session resumption (a server-side session cache and rotating ticket keys), certificates from
//! [`Certificates`]. A failed handshake is the client's business: logged at debug with the
//! reason, counted, never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certs::Certificates;
use crate::metrics::RegisterMetrics;

/// Sessions kept for resumption by session id.
const SESSION_CACHE: usize = 4096;

/// Handshake counts, for `/metrics` (`lbx_tls_handshakes_total{result="ok|failed"}`).
#[derive(Debug, Default)]
pub struct HandshakeMetrics {
    /// Completed handshakes.
    pub completed: AtomicU64,
    /// Failed or abandoned handshakes.
    pub failed: AtomicU64,
}

/// Encodes [`HandshakeMetrics`] on each scrape.
#[derive(Debug)]
struct HandshakeCollector(Arc<HandshakeMetrics>);

impl prometheus_client::collector::Collector for HandshakeCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let mut family = encoder.encode_descriptor(
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result (ok, failed)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, count) in [("ok", &self.0.completed), ("failed", &self.0.failed)] {
            ConstCounter::new(count.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}

impl RegisterMetrics for TlsTerminator {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(HandshakeCollector(self.metrics.clone())));
    }
}

/// The protocol a client chose by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    /// `h2`.
    Http2,
    /// `http/1.1`, or no ALPN at all.
    Http1,
}

/// Accepts TLS connections for the HTTPS listener.
#[derive(Clone)]
pub struct TlsTerminator {
    acceptor: TlsAcceptor,
    certificates: Arc<Certificates>,
    metrics: Arc<HandshakeMetrics>,
}

impl std::fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTerminator")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl TlsTerminator {
    /// A terminator presenting `certificates`.
    pub fn new(certificates: Arc<Certificates>) -> Result<Self, rustls::Error> {
        let provider = super::provider();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificates,
            metrics: Arc::default(),
        })
    }

    /// The certificates it presents (reloaded in place).
    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certificates
    }

    /// Its handshake counts.
    pub fn metrics(&self) -> &Arc<HandshakeMetrics> {
        &self.metrics
    }

    /// Complete the handshake on `stream` within `timeout`; `None` (logged and counted) if it
    /// fails.
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
        peer: std::net::SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Negotiated)> {
        let handshake = tokio::time::timeout(timeout, self.acceptor.accept(stream)).await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %peer, "TLS handshake not completed in time");
                return None;
            }
        };
        self.metrics.completed.fetch_add(1, Ordering::Relaxed);
        let negotiated = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Negotiated::Http2,
            _ => Negotiated::Http1,
        };
        Some((stream, negotiated))
    }
}
