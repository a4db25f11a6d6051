//! Prometheus metrics: what the request path and the reloader count, and the per-backend
//! figures read from the live backend set at scrape time.
//!
//! Hot-path counters are handles resolved once at start ([`DecisionMetrics`]), so counting a
//! decision is an atomic add, never a label lookup. Per-backend series are not kept twice:
//! a collector reads the backends' own [`LiveStats`](crate::upstream::LiveStats) on scrape,
//! which also makes backends removed by a reload disappear from the output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::NoLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::plugin::{DecidedBy, FailureKind};
use crate::upstream::Upstreams;

type Labels = Vec<(&'static str, &'static str)>;

/// Upper bounds of the decision-latency buckets, in nanoseconds: 1 µs to ~16 ms, doubling (a
/// decision slower than that has hit its deadline anyway).
const LATENCY_BOUNDS_NS: [u64; 15] = {
    let mut bounds = [0u64; 15];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 1_000 << i;
        i += 1;
    }
    bounds
};

/// A latency histogram updated with three relaxed atomic adds, no lock: it is observed on
/// every plugin decision by every worker. (prometheus-client's `Histogram` takes a mutex per
/// observation.) Encoded by [`Metrics`] as a Prometheus histogram in seconds.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per-bucket counts; the last slot counts observations above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Record one duration.
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_NS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| (*bound as f64 / 1e9, count.load(Ordering::Relaxed)))
            .collect();
        let overflow = self.buckets[LATENCY_BOUNDS_NS.len()].load(Ordering::Relaxed);
        buckets.push((f64::INFINITY, overflow));
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let metric = encoder.encode_descriptor(
            "plugin_decision_seconds",
            "Time to decide when the plugin is asked (the plugin call and checking its answer)",
            None,
            MetricType::Histogram,
        )?;
        let mut metric = metric;
        metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Counters the router updates on every decision.
#[derive(Debug, Clone)]
pub struct DecisionMetrics {
    /// Time of decisions that asked the plugin.
    pub plugin_latency: Arc<LatencyHistogram>,
    decided_by: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    by_handles: [Counter; DecidedBy::ALL.len()],
    failure_handles: [Counter; FailureKind::ALL.len()],
    /// Times the breaker disabled the plugin.
    pub plugin_disabled: Counter,
}

impl Default for DecisionMetrics {
    fn default() -> Self {
        let decided_by = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let by_handles =
            DecidedBy::ALL.map(|by| decided_by.get_or_create(&vec![("by", by.as_str())]).clone());
        let failure_handles = FailureKind::ALL.map(|kind| {
            failures
                .get_or_create(&vec![("kind", kind.as_str())])
                .clone()
        });
        Self {
            plugin_latency: Arc::default(),
            decided_by,
            failures,
            by_handles,
            failure_handles,
            plugin_disabled: Counter::default(),
        }
    }
}

impl DecisionMetrics {
    /// Count one decision made by `by`.
    pub fn decided(&self, by: DecidedBy) {
        self.by_handles[by as usize].inc();
    }

    /// Count one failed plugin call.
    pub fn failed(&self, kind: FailureKind) {
        self.failure_handles[kind as usize].inc();
    }
}

/// Reload outcomes.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    outcomes: Family<Vec<(&'static str, &'static str)>, Counter>,
}

/// What was reloaded.
#[derive(Debug, Clone, Copy)]
pub enum ReloadKind {
    /// The routing plugin.
    Plugin,
    /// The configuration file.
    Config,
    /// The HTTPS listener's certificates.
    Certificates,
}

impl ReloadMetrics {
    /// Count a reload of `what` that was applied (`ok`) or refused.
    pub fn record(&self, what: ReloadKind, ok: bool) {
        let what = match what {
            ReloadKind::Plugin => "plugin",
            ReloadKind::Config => "config",
            ReloadKind::Certificates => "certificates",
        };
        let result = if ok { "ok" } else { "refused" };
        self.outcomes
            .get_or_create(&vec![("what", what), ("result", result)])
            .inc();
    }
}

/// The registry behind `GET /metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Register everything; `upstreams` is read on every scrape.
    pub fn new(
        decisions: &DecisionMetrics,
        reloads: &ReloadMetrics,
        upstreams: Arc<Upstreams>,
    ) -> Self {
        let mut registry = Registry::with_prefix("lbx");
        registry.register_collector(Box::new(LatencyCollector(decisions.plugin_latency.clone())));
        registry.register(
            "decisions",
            "Routing decisions, by who made them (plugin, fallback, fallback_after_error, \
             fallback_plugin_disabled, host)",
            decisions.decided_by.clone(),
        );
        registry.register(
            "plugin_failures",
            "Failed plugin calls, by kind (trap, timeout, memory, setup, invalid_answer)",
            decisions.failures.clone(),
        );
        registry.register(
            "plugin_disabled",
            "Times the plugin was disabled after consecutive failures",
            decisions.plugin_disabled.clone(),
        );
        registry.register(
            "reloads",
            "Plugin and config reloads, by what and result (ok, refused)",
            reloads.outcomes.clone(),
        );
        registry.register_collector(Box::new(BackendCollector { upstreams }));
        registry.register_collector(Box::new(crate::logging::DroppedLinesCollector));
        Self { registry }
    }

    /// Add the series of a component that encodes its own (read on every scrape).
    pub fn add_collector(&mut self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.registry.register_collector(collector);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The decision-latency histogram, read on each scrape.
#[derive(Debug)]
struct LatencyCollector(Arc<LatencyHistogram>);

impl prometheus_client::collector::Collector for LatencyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(&mut encoder)
    }
}

/// Per-backend series, read from the live set on each scrape.
#[derive(Debug)]
struct BackendCollector {
    upstreams: Arc<Upstreams>,
}

impl prometheus_client::collector::Collector for BackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.upstreams.snapshot();
        let mut requests = encoder.encode_descriptor(
            "backend_requests",
            "Requests sent to each backend (attempts, retries included)",
            None,
            MetricType::Counter,
        )?;
        for backend in &set.backends {
            let labels = [("backend", backend.id.as_str())];
            ConstCounter::new(backend.stats.requests()).encode(requests.encode_family(&labels)?)?;
        }
        let mut in_flight = encoder.encode_descriptor(
            "backend_in_flight",
            "Requests each backend is serving now",
            None,
            MetricType::Gauge,
        )?;
        for backend in &set.backends {
            let labels = [("backend", backend.id.as_str())];
            ConstGauge::new(i64::from(backend.stats.in_flight()))
                .encode(in_flight.encode_family(&labels)?)?;
        }
        let mut usable = encoder.encode_descriptor(
            "backend_usable",
            "1 if the backend may receive requests (healthy and not ejected), else 0",
            None,
            MetricType::Gauge,
        )?;
        for backend in &set.backends {
            let labels = [("backend", backend.id.as_str())];
            ConstGauge::new(i64::from(backend.is_usable()))
                .encode(usable.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_nanos(900)); // <= 1 µs
        histogram.observe(Duration::from_nanos(1_000)); // <= 1 µs (bounds are inclusive)
        histogram.observe(Duration::from_nanos(1_500)); // <= 2 µs
        histogram.observe(Duration::from_secs(1)); // above every bound
        let counts: Vec<u64> = histogram
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 2);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[LATENCY_BOUNDS_NS.len()], 1);
        assert_eq!(histogram.sum_ns.load(Ordering::Relaxed), 1_000_003_400);
    }
}
