//! The recorder's series in `/metrics`: sampled decisions by what became of them, files
//! rotated, and whether recording is on.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Recording;
use crate::metrics::RegisterMetrics;

/// Registers the recorder's collector.
#[derive(Debug, Clone)]
pub struct RecordMetrics(pub Arc<Recording>);

impl RegisterMetrics for RecordMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for RecordMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.0.status();
        let mut samples = encoder.encode_descriptor(
            "record_samples",
            "Sampled routing decisions written to the recording (written), dropped because \
             the writer's queue was full (dropped), or lost to a write error (failed)",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in [
            ("written", status.written),
            ("dropped", status.dropped),
            ("failed", status.failed),
        ] {
            ConstCounter::new(count).encode(samples.encode_family(&[("result", result)])?)?;
        }
        let rotations = encoder.encode_descriptor(
            "record_rotations",
            "Recording files rotated at [record] max_size",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(status.rotations).encode(rotations)?;
        let enabled = encoder.encode_descriptor(
            "record_enabled",
            "Whether routing decisions are being recorded (1) or not (0)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(status.enabled)).encode(enabled)?;
        Ok(())
    }
}
