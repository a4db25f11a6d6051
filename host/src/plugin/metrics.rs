//! The router's own metrics: decisions by who made them, failed plugin calls by kind, times the
//! breaker disabled the plugin, and the time of decisions that asked the plugin. Registered by
//! this module ([`RegisterMetrics`]); read by the admin API for `GET /admin/plugin`.
//!
//! Every series is created when the router is, so counting a decision is one relaxed atomic
//! add on a handle resolved then, never a label lookup.

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{DecidedBy, FailureKind};
use crate::metrics::{DECISION_BOUNDS, LatencyHistogram, RegisterMetrics};

type Labels = Vec<(&'static str, &'static str)>;

/// Time of the decisions that asked the plugin.
pub type DecisionHistogram = LatencyHistogram<{ DECISION_BOUNDS.len() }>;

/// Counters the router updates on every decision.
#[derive(Debug, Clone)]
pub struct DecisionMetrics {
    /// Time of decisions that asked the plugin (the call and checking its answer).
    pub plugin_latency: Arc<DecisionHistogram>,
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
            plugin_latency: Arc::new(LatencyHistogram::new(&DECISION_BOUNDS)),
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

    /// Decisions so far, by who made them, in [`DecidedBy::ALL`] order.
    pub fn decided_counts(&self) -> [(DecidedBy, u64); DecidedBy::ALL.len()] {
        std::array::from_fn(|i| (DecidedBy::ALL[i], self.by_handles[i].get()))
    }
}

impl RegisterMetrics for DecisionMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(LatencyCollector(self.plugin_latency.clone())));
        registry.register(
            "decisions",
            "Routing decisions, by who made them (plugin, plugin_alternate, builtin, \
             fallback_no_opinion, fallback_after_error, fallback_plugin_disabled, host)",
            self.decided_by.clone(),
        );
        registry.register(
            "plugin_failures",
            "Failed plugin calls, by kind (trap, timeout, memory, setup, invalid_answer)",
            self.failures.clone(),
        );
        registry.register(
            "plugin_disabled",
            "Times the plugin was disabled after consecutive failures",
            self.plugin_disabled.clone(),
        );
    }
}

/// The decision-latency histogram, read on each scrape.
#[derive(Debug)]
struct LatencyCollector(Arc<DecisionHistogram>);

impl prometheus_client::collector::Collector for LatencyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric = encoder.encode_descriptor(
            "plugin_decision_seconds",
            "Time to decide when the plugin is asked (the plugin call and checking its answer)",
            None,
            MetricType::Histogram,
        )?;
        self.0.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_under_who_made_them() {
        let metrics = DecisionMetrics::default();
        metrics.decided(DecidedBy::Plugin);
        metrics.decided(DecidedBy::Plugin);
        metrics.decided(DecidedBy::FallbackPluginDisabled);
        let counts = metrics.decided_counts();
        assert_eq!(counts[0], (DecidedBy::Plugin, 2));
        let disabled = counts
            .iter()
            .find(|(by, _)| *by == DecidedBy::FallbackPluginDisabled);
        assert_eq!(disabled, Some(&(DecidedBy::FallbackPluginDisabled, 1)));
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 3);
        let mut registry = Registry::with_prefix("lbx");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("lbx_decisions_total{by=\"plugin\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("lbx_plugin_decision_seconds_count 0"),
            "{text}"
        );
    }
}
