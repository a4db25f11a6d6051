//! Fake backends: their live stats, their signals, and their identities.

use crate::{BackendInfo, BackendStats, Backends};

/// One backend's stats: `healthy`, `in_flight` requests, weight 1, no latency or failures yet.
/// Change other fields with struct update syntax.
///
/// ```
/// use lbx_guest::{BackendStats, testkit::backend};
///
/// let busy = backend(true, 12);
/// let heavy = BackendStats { weight: 3, ..backend(true, 0) };
/// assert_eq!((busy.in_flight, heavy.weight), (12, 3));
/// ```
pub fn backend(healthy: bool, in_flight: u32) -> BackendStats {
    BackendStats {
        healthy,
        weight: 1,
        in_flight,
        ewma_latency_us: 0,
        recent_failures: 0,
    }
}

/// `n` healthy, idle backends.
///
/// ```
/// let backends = lbx_guest::testkit::all_healthy(3);
/// assert!(backends.iter().all(|b| b.healthy && b.in_flight == 0));
/// ```
pub fn all_healthy(n: usize) -> Backends {
    Backends::new(vec![backend(true, 0); n])
}

/// Healthy backends with these in-flight counts, one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::loads(&[4, 0, 2]);
/// assert_eq!(backends[2].in_flight, 2);
/// ```
pub fn loads(in_flight: &[u32]) -> Backends {
    in_flight.iter().map(|&n| backend(true, n)).collect()
}

/// Healthy, idle backends with these weights, one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::weights(&[5, 1, 1]);
/// assert_eq!(backends[0].weight, 5);
/// ```
pub fn weights(weights: &[u32]) -> Backends {
    weights
        .iter()
        .map(|&weight| BackendStats {
            weight,
            ..backend(true, 0)
        })
        .collect()
}

/// Healthy, idle backends with these host latency averages (µs), one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::latencies(&[1_000, 50_000]);
/// assert_eq!(backends[1].ewma_latency_us, 50_000);
/// ```
pub fn latencies(latencies_us: &[u32]) -> Backends {
    latencies_us
        .iter()
        .map(|&ewma_latency_us| BackendStats {
            ewma_latency_us,
            ..backend(true, 0)
        })
        .collect()
}

/// Fake backend signals, as the host's `[signals]` scraper would report them.
impl Backends {
    /// Configures these signal names (slot = position), every backend not scraped yet: each
    /// signal and its age read as missing until [`scraped`](Backends::scraped) fills them.
    /// For tests; in a plugin the names come from the host.
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(2).with_signals(&["queue"]);
    /// assert_eq!(backends.signal_slot("queue"), Some(0));
    /// assert_eq!((backends.signal(0, 0), backends.signal_age_ms(0)), (None, None));
    /// ```
    pub fn with_signals(mut self, names: &[&str]) -> Self {
        let rows = self.len() * (names.len() + 1);
        self.set_signal_names(names.iter().map(|n| n.to_string()).collect());
        let signals = self.signals_mut();
        signals.clear();
        if !names.is_empty() {
            signals.resize(rows, f64::NAN);
        }
        self
    }

    /// Records a scrape of backend `index`, `age_ms` milliseconds ago, with one value per
    /// signal name (`f64::NAN` for a gauge absent from that scrape). For tests.
    ///
    /// # Panics
    ///
    /// If `index` is not a backend, or `values` does not hold one value per signal name: a
    /// mistake in the test should fail it loudly.
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(2)
    ///     .with_signals(&["queue", "kv_cache"])
    ///     .scraped(1, 20.0, &[3.0, 0.25]);
    /// assert_eq!(backends.signal(1, 1), Some(0.25));
    /// assert_eq!(backends.signal_age_ms(1), Some(20.0));
    /// ```
    pub fn scraped(mut self, index: usize, age_ms: f64, values: &[f64]) -> Self {
        let names = self.signal_names().len();
        assert!(
            index < self.len(),
            "scraped({index}, ..): there are {} backends",
            self.len()
        );
        assert_eq!(
            values.len(),
            names,
            "scraped({index}, ..): one value per signal name ({names}), use f64::NAN for a missing one"
        );
        let row = index * (names + 1);
        let signals = self.signals_mut();
        signals[row] = age_ms;
        signals[row + 1..row + 1 + names].copy_from_slice(values);
        self
    }
}

/// A backend's identity for [`Router::backends_changed`](crate::Router::backends_changed):
/// weight 1, no labels.
///
/// ```
/// let info = lbx_guest::testkit::backend_info("api-1", "10.0.0.5:8080");
/// assert_eq!(info.address, "10.0.0.5:8080");
/// ```
pub fn backend_info(id: &str, address: &str) -> BackendInfo {
    BackendInfo {
        id: id.to_owned(),
        address: address.to_owned(),
        weight: 1,
        labels: Vec::new(),
    }
}

/// A backend's identity with labels (weight 1, address `<id>:80`).
///
/// ```
/// let info = lbx_guest::testkit::labeled("api-1", &[("pool", "api")]);
/// assert_eq!(info.labels, [("pool".to_string(), "api".to_string())]);
/// ```
pub fn labeled(id: &str, labels: &[(&str, &str)]) -> BackendInfo {
    BackendInfo {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..backend_info(id, &format!("{id}:80"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_set_before_the_names_are_dropped_with_them() {
        let backends = all_healthy(2)
            .with_signals(&["a"])
            .scraped(0, 1.0, &[2.0])
            .with_signals(&[]);
        assert_eq!(backends.signal_age_ms(0), None);
        assert!(backends.signal_names().is_empty());
    }

    #[test]
    #[should_panic(expected = "one value per signal name")]
    fn a_scrape_with_the_wrong_number_of_values_fails_the_test() {
        let _ = all_healthy(1)
            .with_signals(&["a", "b"])
            .scraped(0, 1.0, &[1.0]);
    }

    #[test]
    #[should_panic(expected = "there are 1 backends")]
    fn a_scrape_of_a_missing_backend_fails_the_test() {
        let _ = all_healthy(1).with_signals(&["a"]).scraped(1, 1.0, &[1.0]);
    }
}
