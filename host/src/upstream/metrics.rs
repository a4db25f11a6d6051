//! Per-backend series for `/metrics`, read from the backend set in force on each scrape: the
//! counters live in each backend's [`LiveStats`](super::LiveStats) (its
//! [`Traffic`](super::Traffic)), so nothing is kept twice and a backend removed by a reload
//! disappears from the output.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::traffic::{HttpHistogram, STATUS_CLASSES, Traffic};
use super::{Backend, Upstreams};
use crate::metrics::RegisterMetrics;

/// The per-backend metrics of a backend table.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    upstreams: Arc<Upstreams>,
}

impl BackendMetrics {
    /// Metrics of the backends of `upstreams` (whichever set is in force at scrape time).
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }
}

impl RegisterMetrics for BackendMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

/// A series per backend: name, help, and how to read it from the backend.
type Series<R> = (&'static str, &'static str, R);
/// Reads a counter from a backend.
type CounterReading = fn(&Backend) -> u64;
/// Reads a gauge from a backend.
type GaugeReading = fn(&Backend) -> i64;
/// Picks one of a backend's histograms.
type HistogramReading = fn(&Traffic) -> &HttpHistogram;

/// Counters with only the `backend` label.
const COUNTERS: [Series<CounterReading>; 7] = [
    (
        "backend_requests",
        "Requests sent to each backend (attempts, retries included)",
        |b| b.stats.requests(),
    ),
    (
        "backend_errors",
        "Attempts that failed by the backend's fault (refused, reset, timed out, bad framing)",
        |b| b.stats.traffic().backend_errors(),
    ),
    (
        "backend_retries",
        "Failed attempts on each backend that were retried on another",
        |b| b.stats.traffic().retries(),
    ),
    (
        "backend_ejections",
        "Times outlier detection ejected each backend",
        |b| b.stats.traffic().ejections(),
    ),
    (
        "backend_health_transitions",
        "Times active health checks took each backend out of rotation or back",
        |b| b.stats.traffic().health_transitions(),
    ),
    (
        "backend_request_body_bytes",
        "Request body bytes sent to each backend",
        |b| b.stats.traffic().request_body_bytes(),
    ),
    (
        "backend_response_body_bytes",
        "Response body bytes received from each backend",
        |b| b.stats.traffic().response_body_bytes(),
    ),
];

/// Gauges with only the `backend` label.
const GAUGES: [Series<GaugeReading>; 2] = [
    (
        "backend_in_flight",
        "Requests each backend is serving now",
        |b| i64::from(b.stats.in_flight()),
    ),
    (
        "backend_usable",
        "1 if the backend may receive requests (healthy and not ejected), else 0",
        |b| i64::from(b.is_usable()),
    ),
];

/// Latency histograms with only the `backend` label.
const HISTOGRAMS: [Series<HistogramReading>; 2] = [
    (
        "backend_upstream_latency_seconds",
        "Time from sending a request to each backend to its response head",
        Traffic::upstream_latency,
    ),
    (
        "backend_total_latency_seconds",
        "Time from a request's arrival to the end of its response, by the backend that \
         served it",
        Traffic::total_latency,
    ),
];

impl Collector for BackendMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.upstreams.snapshot();
        let backends = &set.backends;
        for (name, help, reading) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for backend in backends {
                let labels = [("backend", backend.spec.id.as_str())];
                ConstCounter::new(reading(backend)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut responses = encoder.encode_descriptor(
            "backend_responses",
            "Responses to clients from each backend's last attempt, by status class (lbx's own \
             answer when that attempt failed)",
            None,
            MetricType::Counter,
        )?;
        for backend in backends {
            let counts = backend.stats.traffic().responses();
            for (class, count) in STATUS_CLASSES.iter().zip(counts) {
                let labels = [("backend", backend.spec.id.as_str()), ("class", class)];
                ConstCounter::new(count).encode(responses.encode_family(&labels)?)?;
            }
        }
        for (name, help, reading) in GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for backend in backends {
                let labels = [("backend", backend.spec.id.as_str())];
                ConstGauge::new(reading(backend)).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, histogram) in HISTOGRAMS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for backend in backends {
                let labels = [("backend", backend.spec.id.as_str())];
                histogram(backend.stats.traffic()).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
