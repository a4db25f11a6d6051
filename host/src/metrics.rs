//! The registry behind `GET /metrics`, and the lock-free latency histogram components share.
//!
//! Each component owns its metrics and registers them itself ([`RegisterMetrics`], in the way
//! of linkerd2-proxy's `register` per metric family): plugin decisions (`plugin::metrics`),
//! reload outcomes (`reload::metrics`), per-backend traffic (`upstream::metrics`), client
//! connections (`proxy::metrics`), TLS handshakes (`tls::server`), dropped log lines
//! (`logging`). This module knows none of them: it only builds the registry and renders it.
//!
//! Hot-path rule for every component: counting is a relaxed atomic add on something resolved
//! before the request (a handle, or the backend's own stats), never a label lookup or a lock.
//! Series that describe live objects (backends) are read from those objects on each scrape by
//! a collector, so they are not kept twice and disappear with the object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};
pub use prometheus_client::registry::Registry;

/// A component that owns metrics and adds them to the registry.
pub trait RegisterMetrics {
    /// Add this component's metrics (names without the `lbx_` prefix) to `registry`.
    fn register(&self, registry: &mut Registry);
}

/// The registry behind `GET /metrics`; every name gets the `lbx_` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            registry: Registry::with_prefix("lbx"),
        }
    }
}

impl Metrics {
    /// Add a component's metrics.
    pub fn register(&mut self, component: &dyn RegisterMetrics) {
        component.register(&mut self.registry);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Upper bound of the last bucket of every histogram: it holds whatever exceeds the others.
const OVERFLOW: u64 = u64::MAX;

/// Bucket bounds for one histogram, in nanoseconds, ascending, ending with the overflow bucket.
pub type Bounds<const N: usize> = [u64; N];

/// Plugin decisions: 1 µs to ~16 ms, doubling (a decision slower than that has hit its
/// deadline anyway), then overflow.
pub const DECISION_BOUNDS: Bounds<16> = {
    let mut bounds = [OVERFLOW; 16];
    let mut i = 0;
    while i < 15 {
        bounds[i] = 1_000 << i;
        i += 1;
    }
    bounds
};

/// HTTP latencies (time to a response head, a whole exchange): 0.5 ms to 10 s in the usual
/// 1–2.5–5 steps, then overflow. Fine enough for p50/p99 of a fast backend on a LAN, wide
/// enough for a slow one.
pub const HTTP_BOUNDS: Bounds<15> = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    OVERFLOW,
];

/// A latency histogram updated with two relaxed atomic adds, no lock: it is observed on the
/// request path by every worker. (prometheus-client's `Histogram` takes a mutex per
/// observation.) Counts are per bucket (not cumulative); encoded in seconds.
#[derive(Debug)]
pub struct LatencyHistogram<const N: usize> {
    bounds: &'static Bounds<N>,
    buckets: [AtomicU64; N],
    sum_ns: AtomicU64,
}

impl<const N: usize> LatencyHistogram<N> {
    /// An empty histogram over `bounds` (whose last bound must be the overflow bucket).
    pub const fn new(bounds: &'static Bounds<N>) -> Self {
        assert!(N > 0 && bounds[N - 1] == OVERFLOW);
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Record one duration.
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(OVERFLOW);
        let slot = self.bounds.partition_point(|&bound| bound < ns);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The finite upper bounds, in seconds (the overflow bucket has none).
    pub fn bounds_seconds(&self) -> Vec<f64> {
        self.bounds[..N - 1]
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .collect()
    }

    /// Observations per bucket, the overflow bucket last.
    pub fn counts(&self) -> [u64; N] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Write it as a Prometheus histogram.
    pub fn encode(&self, mut metric: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts = self.counts();
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(counts)
            .map(|(&bound, count)| {
                let upper = if bound == OVERFLOW {
                    f64::INFINITY
                } else {
                    bound as f64 / 1e9
                };
                (upper, count)
            })
            .collect();
        metric.encode_histogram::<NoLabelSet>(
            self.sum_seconds(),
            counts.iter().sum(),
            &buckets,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        static BOUNDS: Bounds<16> = DECISION_BOUNDS;
        let histogram = LatencyHistogram::new(&BOUNDS);
        histogram.observe(Duration::from_nanos(900)); // <= 1 µs
        histogram.observe(Duration::from_nanos(1_000)); // <= 1 µs (bounds are inclusive)
        histogram.observe(Duration::from_nanos(1_500)); // <= 2 µs
        histogram.observe(Duration::from_secs(1)); // above every finite bound
        let counts = histogram.counts();
        assert_eq!(counts[0], 2);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[15], 1);
        assert_eq!(histogram.count(), 4);
        assert_eq!(histogram.sum_ns.load(Ordering::Relaxed), 1_000_003_400);
        assert_eq!(histogram.bounds_seconds().len(), 15);
    }

    #[test]
    fn http_bounds_run_from_half_a_millisecond_to_ten_seconds() {
        static BOUNDS: Bounds<15> = HTTP_BOUNDS;
        let histogram = LatencyHistogram::new(&BOUNDS);
        assert_eq!(histogram.bounds_seconds().first(), Some(&0.0005));
        assert_eq!(histogram.bounds_seconds().last(), Some(&10.0));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(11));
        let counts = histogram.counts();
        assert_eq!(counts[3], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(counts[14], 1, "11 s overflows");
    }
}
