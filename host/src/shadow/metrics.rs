//! The shadows' series in `/metrics`, read from the running shadows on each scrape (so a
//! stopped shadow's series go with it): samples offered and dropped, decisions by how they
//! compared, the agreement ratio, each side's picks per choice, and time per decision.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Shadows;
use crate::metrics::RegisterMetrics;

/// Registers the shadows' collector.
#[derive(Debug, Clone)]
pub struct ShadowMetrics(pub Arc<Shadows>);

impl RegisterMetrics for ShadowMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for ShadowMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shadows = self.0.list();
        let reports: Vec<_> = shadows.iter().map(|s| (s, s.tally.report())).collect();

        let mut samples = encoder.encode_descriptor(
            "shadow_samples",
            "Sampled requests handed to each shadow plugin's queue (queued), dropped because \
             it was full (dropped), or skipped while its breaker paused it (paused)",
            None,
            MetricType::Counter,
        )?;
        for (shadow, report) in &reports {
            for (result, count) in [
                ("queued", report.offered),
                ("dropped", report.dropped),
                ("paused", report.paused),
            ] {
                let labels = [("shadow", shadow.name.as_str()), ("result", result)];
                ConstCounter::new(count).encode(samples.encode_family(&labels)?)?;
            }
        }

        let mut decisions = encoder.encode_descriptor(
            "shadow_decisions",
            "Shadow plugin decisions by how they compared with the live side's",
            None,
            MetricType::Counter,
        )?;
        for (shadow, report) in &reports {
            let errors: u64 = report.errors.values().sum();
            for (result, count) in [
                ("agree", report.agreed),
                ("disagree", report.compared - report.agreed),
                ("no_opinion", report.no_opinion),
                ("error", errors),
            ] {
                let labels = [("shadow", shadow.name.as_str()), ("result", result)];
                ConstCounter::new(count).encode(decisions.encode_family(&labels)?)?;
            }
        }

        let mut agreement = encoder.encode_descriptor(
            "shadow_agreement_ratio",
            "Share of compared decisions where the shadow chose as the live side did",
            None,
            MetricType::Gauge,
        )?;
        for (shadow, report) in &reports {
            if let Some(ratio) = report.agreement {
                let labels = [("shadow", shadow.name.as_str())];
                ConstGauge::new(ratio).encode(agreement.encode_family(&labels)?)?;
            }
        }

        let mut picks = encoder.encode_descriptor(
            "shadow_picks",
            "Compared decisions by choice (backend id or `reject N`), as the live side and as \
             the shadow made them",
            None,
            MetricType::Counter,
        )?;
        for (shadow, report) in &reports {
            for share in &report.shares {
                for (side, count) in [("live", share.live_count), ("shadow", share.shadow_count)] {
                    let labels = [
                        ("shadow", shadow.name.as_str()),
                        ("side", side),
                        ("choice", share.choice.as_str()),
                    ];
                    ConstCounter::new(count).encode(picks.encode_family(&labels)?)?;
                }
            }
        }

        let mut latency = encoder.encode_descriptor(
            "shadow_decision_seconds",
            "Time of each shadow plugin decision (off the request path)",
            None,
            MetricType::Histogram,
        )?;
        for shadow in shadows.iter() {
            let labels = [("shadow", shadow.name.as_str())];
            shadow
                .tally
                .latency
                .encode(latency.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
