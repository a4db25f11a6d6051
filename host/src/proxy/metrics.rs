//! The proxy's own metrics: client connections open now, by listener (`http`, `https`) and
//! protocol (`http1`, `h2`), `lbx_client_connections`. A connection is counted once its
//! protocol is known (after the first bytes or the TLS handshake) until it closes: one atomic
//! add each way per connection, nothing per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::metrics::RegisterMetrics;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The plain-HTTP port (proxying or redirecting).
    Http = 0,
    /// The HTTPS port.
    Https = 1,
}

/// The protocol a client connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProtocol {
    /// HTTP/1.1 or 1.0.
    Http1 = 0,
    /// HTTP/2.
    Http2 = 1,
}

const LISTENERS: [&str; 2] = ["http", "https"];
const PROTOCOLS: [&str; 2] = ["http1", "h2"];

/// Open client connections, by listener and protocol.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    open: [[AtomicI64; PROTOCOLS.len()]; LISTENERS.len()],
}

impl ConnectionMetrics {
    /// Count a connection as open until the returned guard is dropped.
    pub fn opened(
        self: &Arc<Self>,
        listener: ListenerKind,
        protocol: ClientProtocol,
    ) -> OpenConnection {
        self.slot(listener, protocol)
            .fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            metrics: self.clone(),
            listener,
            protocol,
        }
    }

    /// Connections open now on `listener` speaking `protocol`.
    pub fn open(&self, listener: ListenerKind, protocol: ClientProtocol) -> i64 {
        self.slot(listener, protocol).load(Ordering::Relaxed)
    }

    fn slot(&self, listener: ListenerKind, protocol: ClientProtocol) -> &AtomicI64 {
        &self.open[listener as usize][protocol as usize]
    }
}

/// One open client connection, counted until dropped.
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<ConnectionMetrics>,
    listener: ListenerKind,
    protocol: ClientProtocol,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .slot(self.listener, self.protocol)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Registers and encodes [`ConnectionMetrics`].
#[derive(Debug, Clone)]
pub struct ConnectionCollector(pub Arc<ConnectionMetrics>);

impl RegisterMetrics for ConnectionCollector {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "client_connections",
            "Client connections open now, by listener (http, https) and protocol (http1, h2)",
            None,
            MetricType::Gauge,
        )?;
        for (l, listener) in LISTENERS.iter().enumerate() {
            for (p, protocol) in PROTOCOLS.iter().enumerate() {
                let open = self.0.open[l][p].load(Ordering::Relaxed);
                let labels = [("listener", *listener), ("protocol", *protocol)];
                ConstGauge::new(open).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_until_its_guard_drops() {
        let metrics = Arc::new(ConnectionMetrics::default());
        let a = metrics.opened(ListenerKind::Https, ClientProtocol::Http2);
        let b = metrics.opened(ListenerKind::Https, ClientProtocol::Http2);
        assert_eq!(metrics.open(ListenerKind::Https, ClientProtocol::Http2), 2);
        assert_eq!(metrics.open(ListenerKind::Http, ClientProtocol::Http2), 0);
        drop((a, b));
        assert_eq!(metrics.open(ListenerKind::Https, ClientProtocol::Http2), 0);
    }
}
