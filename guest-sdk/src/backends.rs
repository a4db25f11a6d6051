//! [`Backends`]: what [`Router::choose`](crate::Router::choose) knows of every backend for one
//! request: the host's live numbers ([`BackendStats`], reached through `Deref`) and the backend
//! signals (Prometheus gauges lbx scrapes from each backend) with the age of their scrape.
//!
//! The export glue keeps one `Backends` per plugin instance and refills it for each request
//! (the stats into the same allocation, the signals list as the host lifted it), so a plugin
//! that never reads a signal pays nothing for them. The signal names arrive with
//! `backends-changed` and stay here until the next one.

use std::ops::{Deref, DerefMut};

use crate::{BackendStats, unflatten_stats};

/// The backends of one request, indexed like [`Router::backends_changed`](crate::Router::backends_changed).
///
/// Dereferences to `[BackendStats]`, so `backends[i].in_flight`, `backends.len()` and
/// [`Candidates::new(backends, retry)`](crate::Candidates::new) read as with a slice. The
/// signals of backend `i` are [`signal`](Backends::signal)`(i, slot)`, slot being the position
/// of the signal's name in [`signal_names`](Backends::signal_names) (the operator's
/// `[signals] metrics`); [`signal_slot`](Backends::signal_slot) finds it by name.
///
/// A scrape is always older than the last dispatch: weigh [`BackendStats::in_flight`] (always
/// current) beside a scraped queue length.
///
/// ```
/// use lbx_guest::testkit::loads;
///
/// // In a test: two backends, one signal; backend 0 scraped 250 ms ago, backend 1 never.
/// let backends = loads(&[2, 0])
///     .with_signals(&["vllm:num_requests_waiting"])
///     .scraped(0, 250.0, &[4.0]);
///
/// let waiting = backends.signal_slot("vllm:num_requests_waiting").unwrap();
/// assert_eq!(backends[0].in_flight, 2);
/// assert_eq!(backends.signal(0, waiting), Some(4.0));
/// assert_eq!(backends.signal_age_ms(0), Some(250.0));
/// assert_eq!(backends.signal(1, waiting), None);
/// assert_eq!(backends.signal_age_ms(1), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backends {
    stats: Vec<BackendStats>,
    /// Signal names, in slot order.
    names: Vec<String>,
    /// `1 + names.len()` numbers per backend (the scrape's age in ms, then each signal's
    /// value), NaN where missing; empty when no signal is configured.
    signals: Vec<f64>,
}

impl Backends {
    /// Backends with these stats and no signals.
    ///
    /// ```
    /// use lbx_guest::{Backends, testkit::backend};
    ///
    /// let backends = Backends::new(vec![backend(true, 1), backend(false, 0)]);
    /// assert_eq!(backends.len(), 2);
    /// assert!(backends.signal_names().is_empty());
    /// ```
    pub const fn new(stats: Vec<BackendStats>) -> Self {
        Backends {
            stats,
            names: Vec::new(),
            signals: Vec::new(),
        }
    }

    /// The signal names, in slot order; empty when the operator configured none.
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(1).with_signals(&["queue", "kv_cache"]);
    /// assert_eq!(backends.signal_names(), ["queue", "kv_cache"]);
    /// ```
    pub fn signal_names(&self) -> &[String] {
        &self.names
    }

    /// The slot of the signal with this name (exact match), if the operator configured it.
    /// Names are few, so this is a short scan; a plugin may also keep the slot.
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(1).with_signals(&["queue", "kv_cache"]);
    /// assert_eq!(backends.signal_slot("kv_cache"), Some(1));
    /// assert_eq!(backends.signal_slot("missing"), None);
    /// ```
    pub fn signal_slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The value of signal `slot` on backend `index` at its last successful scrape; `None`
    /// when missing (never scraped, absent from the last scrape, no such backend or slot).
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(2)
    ///     .with_signals(&["queue"])
    ///     .scraped(1, 40.0, &[7.0]);
    /// assert_eq!(backends.signal(1, 0), Some(7.0));
    /// assert_eq!(backends.signal(0, 0), None); // never scraped
    /// assert_eq!(backends.signal(1, 1), None); // no such slot
    /// ```
    pub fn signal(&self, index: usize, slot: usize) -> Option<f64> {
        if slot >= self.names.len() {
            return None;
        }
        self.reading(index, 1 + slot)
    }

    /// Milliseconds since backend `index`'s last successful scrape; `None` if it was never
    /// scraped (or no signal is configured).
    ///
    /// ```
    /// let backends = lbx_guest::testkit::all_healthy(1)
    ///     .with_signals(&["queue"])
    ///     .scraped(0, 1_500.0, &[f64::NAN]); // scraped, but the gauge was absent
    /// assert_eq!(backends.signal_age_ms(0), Some(1_500.0));
    /// assert_eq!(backends.signal(0, 0), None);
    /// ```
    pub fn signal_age_ms(&self, index: usize) -> Option<f64> {
        self.reading(index, 0)
    }

    /// The number at `offset` in backend `index`'s row of the signals list, NaN read as missing.
    fn reading(&self, index: usize, offset: usize) -> Option<f64> {
        let stride = self.names.len() + 1;
        let value = *self.signals.get(index.checked_mul(stride)? + offset)?;
        (!value.is_nan()).then_some(value)
    }

    /// Replaces the signal names (from `backends-changed`).
    pub(crate) fn set_signal_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    /// Refills the view for one request from the host's flat lists, reusing the stats
    /// allocation and taking ownership of the lifted signals list.
    pub(crate) fn refill(&mut self, stats: &[u32], signals: Vec<f64>) {
        unflatten_stats(stats, &mut self.stats);
        self.signals = signals;
    }

    /// The signals list, mutable: for the test kit's fakes.
    pub(crate) fn signals_mut(&mut self) -> &mut Vec<f64> {
        &mut self.signals
    }
}

impl Deref for Backends {
    type Target = [BackendStats];

    fn deref(&self) -> &[BackendStats] {
        &self.stats
    }
}

/// Mutable stats, for tests that change a backend between two calls (`backends[1].healthy = false`).
impl DerefMut for Backends {
    fn deref_mut(&mut self) -> &mut [BackendStats] {
        &mut self.stats
    }
}

impl From<Vec<BackendStats>> for Backends {
    /// ```
    /// use lbx_guest::{Backends, testkit::backend};
    /// let backends = Backends::from(vec![backend(true, 0)]);
    /// assert!(backends[0].healthy);
    /// ```
    fn from(stats: Vec<BackendStats>) -> Self {
        Backends::new(stats)
    }
}

impl<const N: usize> From<[BackendStats; N]> for Backends {
    /// ```
    /// use lbx_guest::{Backends, testkit::backend};
    /// let backends = Backends::from([backend(true, 4), backend(false, 0)]);
    /// assert_eq!(backends[0].in_flight, 4);
    /// ```
    fn from(stats: [BackendStats; N]) -> Self {
        Backends::new(stats.to_vec())
    }
}

impl From<&[BackendStats]> for Backends {
    /// ```
    /// use lbx_guest::{Backends, testkit::backend};
    /// let stats = [backend(true, 1)];
    /// assert_eq!(Backends::from(&stats[..]).len(), 1);
    /// ```
    fn from(stats: &[BackendStats]) -> Self {
        Backends::new(stats.to_vec())
    }
}

impl FromIterator<BackendStats> for Backends {
    /// ```
    /// use lbx_guest::{Backends, testkit::backend};
    /// let backends: Backends = (0..3).map(|n| backend(true, n)).collect();
    /// assert_eq!(backends[2].in_flight, 2);
    /// ```
    fn from_iter<I: IntoIterator<Item = BackendStats>>(iter: I) -> Self {
        Backends::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_wire(names: &[&str], stats: &[u32], signals: Vec<f64>) -> Backends {
        let mut backends = Backends::default();
        backends.set_signal_names(names.iter().map(|n| n.to_string()).collect());
        backends.refill(stats, signals);
        backends
    }

    #[test]
    fn the_wire_layout_is_age_then_one_value_per_name_for_each_backend() {
        let stats = [1, 1, 0, 0, 0, 1, 1, 5, 0, 0];
        let backends = with_wire(
            &["a", "b"],
            &stats,
            vec![10.0, 1.0, 2.0, f64::NAN, f64::NAN, f64::NAN],
        );
        assert_eq!(backends.len(), 2);
        assert_eq!(backends[1].in_flight, 5);
        assert_eq!(backends.signal_age_ms(0), Some(10.0));
        assert_eq!(
            (backends.signal(0, 0), backends.signal(0, 1)),
            (Some(1.0), Some(2.0))
        );
        assert_eq!(backends.signal_age_ms(1), None);
        assert_eq!(backends.signal(1, 1), None);
    }

    #[test]
    fn a_short_or_absent_signals_list_reads_as_missing() {
        let backends = with_wire(&["a"], &[1, 1, 0, 0, 0, 1, 1, 0, 0, 0], vec![3.0, 4.0]);
        assert_eq!(backends.signal(0, 0), Some(4.0));
        assert_eq!(backends.signal(1, 0), None);
        let none = with_wire(&[], &[1, 1, 0, 0, 0], Vec::new());
        assert_eq!((none.signal_age_ms(0), none.signal(0, 0)), (None, None));
        assert_eq!(none.signal_age_ms(usize::MAX), None);
    }

    #[test]
    fn refilling_keeps_the_names_and_replaces_stats_and_signals() {
        let mut backends = with_wire(&["q"], &[1, 1, 9, 0, 0], vec![0.0, 1.0]);
        backends.refill(&[0, 1, 0, 0, 0, 1, 1, 0, 0, 0], vec![5.0, 2.0, 6.0, 3.0]);
        assert_eq!(backends.signal_names(), ["q"]);
        assert_eq!(backends.len(), 2);
        assert!(!backends[0].healthy);
        assert_eq!(backends.signal(1, 0), Some(3.0));
    }
}
