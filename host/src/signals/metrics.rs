//! Backend signals on `/metrics`, read from the backend set and the signals in force on each
//! scrape of lbx (as `upstream::metrics` does): nothing when no signals are configured.
//!
//! - `lbx_backend_signal_scrapes_total{backend,result="ok"|"error"}`;
//! - `lbx_backend_signal_age_seconds{backend}`: since the last successful scrape (absent
//!   before the first);
//! - `lbx_backend_signal_value{backend,signal}`: each signal's last value (absent while missing).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::{Scraper, age_ms};
use crate::metrics::RegisterMetrics;

/// The signal series of a [`Scraper`]'s backends.
#[derive(Debug, Clone)]
pub struct SignalMetrics {
    scraper: Arc<Scraper>,
}

impl SignalMetrics {
    /// Series for the signals `scraper` keeps.
    pub fn new(scraper: Arc<Scraper>) -> Self {
        Self { scraper }
    }
}

impl RegisterMetrics for SignalMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for SignalMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let signals = self.scraper.signals();
        if !signals.is_enabled() {
            return Ok(());
        }
        let set = self.scraper.upstreams().snapshot();
        let mut scrapes = encoder.encode_descriptor(
            "backend_signal_scrapes",
            "Scrapes of each backend's metrics for backend signals, by result",
            None,
            MetricType::Counter,
        )?;
        for backend in &set.backends {
            let id = backend.spec.id.as_str();
            for (result, count) in [
                ("ok", backend.signals.scrapes_ok()),
                ("error", backend.signals.scrapes_failed()),
            ] {
                let labels = [("backend", id), ("result", result)];
                ConstCounter::new(count).encode(scrapes.encode_family(&labels)?)?;
            }
        }
        let now = Instant::now();
        let readings: Vec<_> = set
            .backends
            .iter()
            .map(|b| (b.spec.id.as_str(), signals.reading(&b.signals)))
            .collect();
        let mut ages = encoder.encode_descriptor(
            "backend_signal_age_seconds",
            "Time since each backend's last successful signal scrape",
            None,
            MetricType::Gauge,
        )?;
        for (id, reading) in &readings {
            if let Some(reading) = reading {
                let age = age_ms(now, reading.at) / 1000.0;
                ConstGauge::new(age).encode(ages.encode_family(&[("backend", *id)])?)?;
            }
        }
        let mut values = encoder.encode_descriptor(
            "backend_signal_value",
            "Each backend signal's value in the backend's last successful scrape",
            None,
            MetricType::Gauge,
        )?;
        for (id, reading) in &readings {
            let Some(reading) = reading else { continue };
            for (name, value) in signals.names().iter().zip(reading.values.iter()) {
                if !value.is_nan() {
                    let labels = [("backend", *id), ("signal", name.as_str())];
                    ConstGauge::new(*value).encode(values.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
