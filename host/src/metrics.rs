//! Prometheus metrics: what the request path and the reloader count, and the per-backend
//! figures read from the live backend set at scrape time.
//!
//! Hot-path counters are handles resolved once at start ([`DecisionMetrics`]), so counting a
//! decision is an atomic add, never a label lookup. Per-backend series are not kept twice:
//! a collector reads the backends' own [`LiveStats`](crate::upstream::LiveStats) on scrape,
//! which also makes backends removed by a reload disappear from the output.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::plugin::{DecidedBy, FailureKind};
use crate::upstream::Upstreams;

type Labels = Vec<(&'static str, &'static str)>;

/// Counters the router updates on every decision.
#[derive(Debug, Clone)]
pub struct DecisionMetrics {
    /// Time spent in plugin calls, in seconds.
    pub plugin_seconds: Histogram,
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
            // 1 µs to ~16 ms: a decision slower than that has hit its deadline anyway.
            plugin_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 15)),
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
}

impl ReloadMetrics {
    /// Count a reload of `what` that was applied (`ok`) or refused.
    pub fn record(&self, what: ReloadKind, ok: bool) {
        let what = match what {
            ReloadKind::Plugin => "plugin",
            ReloadKind::Config => "config",
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
        registry.register(
            "plugin_decision_seconds",
            "Time spent in routing plugin calls",
            decisions.plugin_seconds.clone(),
        );
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
        Self { registry }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
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
