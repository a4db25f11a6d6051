//! The canary's series in `/metrics`, read on each scrape: the candidate's share and step while
//! one runs, each side's figures for the step in progress (they restart at each step, hence
//! gauges), and canaries ended by how.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{Canaries, State};
use crate::metrics::RegisterMetrics;

/// Registers the canary collector.
#[derive(Debug, Clone)]
pub struct CanaryMetrics(pub Arc<Canaries>);

impl RegisterMetrics for CanaryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for CanaryMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let running = self.0.running().filter(|c| c.state() == State::Running);
        let share = running
            .as_ref()
            .map_or(0.0, |c| f64::from(c.split.share()) / 10_000.0);
        let gauge = encoder.encode_descriptor(
            "canary_share_ratio",
            "Share of requests the canary plugin decides (0 when none runs)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(share).encode(gauge)?;
        if let Some(canary) = &running {
            let step = encoder.encode_descriptor(
                "canary_step",
                "The canary's step in progress (0 is the first)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(canary.step().0 as i64).encode(step)?;
            let figures = canary.figures();
            let sides = [
                ("live", figures.live.report()),
                ("canary", figures.candidate.report()),
            ];
            for (name, help, read) in [
                (
                    "canary_step_decisions",
                    "Requests each side decided in the step in progress",
                    0,
                ),
                (
                    "canary_step_attempts",
                    "Attempts each side's requests made in the step",
                    1,
                ),
                (
                    "canary_step_errors",
                    "Attempts that failed by the backend or answered 5xx",
                    2,
                ),
                (
                    "canary_step_fallbacks",
                    "Decisions answered by the fallback",
                    3,
                ),
            ] {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (arm, report) in &sides {
                    let value = [
                        report.decisions,
                        report.attempts,
                        report.errors,
                        report.fallbacks,
                    ][read];
                    ConstGauge::new(value as i64)
                        .encode(family.encode_family(&[("arm", *arm)])?)?;
                }
            }
        }
        let mut ended = encoder.encode_descriptor(
            "canaries_ended",
            "Canary plugins ended, by how (promoted, rolled_back, aborted)",
            None,
            MetricType::Counter,
        )?;
        for (how, count) in self.0.ended_counts() {
            ConstCounter::new(count).encode(ended.encode_family(&[("result", how)])?)?;
        }
        Ok(())
    }
}
