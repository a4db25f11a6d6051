//! Discovery's metrics: `lbx_discovery_resolutions_total{name,result}` (result `ok`,
//! `no_records`, `error`) and `lbx_discovery_targets{name}`, the backends a name contributes
//! now. A name's series go when its `[[discovery.dns]]` does.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::RegisterMetrics;

type Labels = Vec<(&'static str, String)>;

/// The results a lookup is counted under.
const RESULTS: [&str; 3] = ["ok", "no_records", "error"];

/// Counted once per lookup (every `interval`), off the request path: a label lookup is fine.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryMetrics {
    resolutions: Family<Labels, Counter>,
    targets: Family<Labels, Gauge>,
}

impl DiscoveryMetrics {
    /// Create `name`'s series at 0, so they are exposed before its first lookup ends.
    pub fn add_name(&self, name: &str) {
        for result in RESULTS {
            drop(self.resolutions.get_or_create(&resolution(name, result)));
        }
        drop(self.targets.get_or_create(&target(name)));
    }

    /// Drop `name`'s series.
    pub fn remove_name(&self, name: &str) {
        for result in RESULTS {
            self.resolutions.remove(&resolution(name, result));
        }
        self.targets.remove(&target(name));
    }

    /// Count one lookup of `name`.
    pub fn resolved(&self, name: &str, result: &'static str) {
        self.resolutions
            .get_or_create(&resolution(name, result))
            .inc();
    }

    /// How many backends `name` contributes now.
    pub fn set_targets(&self, name: &str, count: usize) {
        self.targets
            .get_or_create(&target(name))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

fn resolution(name: &str, result: &'static str) -> Labels {
    vec![("name", name.to_string()), ("result", result.to_string())]
}

fn target(name: &str) -> Labels {
    vec![("name", name.to_string())]
}

impl RegisterMetrics for DiscoveryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "discovery_resolutions",
            "DNS discovery lookups, by name and result (ok, no_records: NXDOMAIN or no \
             address, error: no usable answer)",
            self.resolutions.clone(),
        );
        registry.register(
            "discovery_targets",
            "Backends each DNS discovery name contributes now",
            self.targets.clone(),
        );
    }
}
