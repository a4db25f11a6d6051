//! [`BackendStats`], the live numbers of one backend, and their wire layout: the per-request
//! statistics travel as one flat `list<u32>` (a bulk copy across the Wasm boundary, 5 numbers
//! per backend); this module converts between that layout and [`BackendStats`] values.

/// Live statistics of one backend, as plain numbers: what the host knows of it at this request.
///
/// A backend's position in the list is its index, the same index used by
/// [`Router::backends_changed`](crate::Router::backends_changed) and by [`pick`](crate::pick).
///
/// ```
/// use lbx_guest::BackendStats;
///
/// let b = BackendStats { healthy: true, weight: 2, in_flight: 3, ewma_latency_us: 800, recent_failures: 0 };
/// assert!(b.healthy && b.in_flight == 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendStats {
    /// Whether the host considers the backend usable right now.
    pub healthy: bool,
    /// Relative weight from the configuration (default 1).
    pub weight: u32,
    /// Requests currently being served by this backend through this lbx (always current).
    pub in_flight: u32,
    /// The host's moving average of time to response headers, in microseconds (0 until the
    /// first response).
    pub ewma_latency_us: u32,
    /// Failures (connect errors, 5xx) seen recently; decays back to 0 on success.
    pub recent_failures: u32,
}

/// Numbers per backend in the flat `stats` list of `router.choose`.
pub const STATS_FIELDS: usize = 5;

/// Rebuild `backends` from the flat `stats` list (5 numbers per backend: healthy, weight,
/// in-flight, ewma-latency-us, recent-failures). Trailing numbers that do not make a whole
/// backend are ignored. Reuses `backends`' allocation.
///
/// ```
/// let mut backends = Vec::new();
/// lbx_guest::unflatten_stats(&[1, 3, 7, 250, 0, 0, 1, 0, 0, 2], &mut backends);
/// assert_eq!(backends.len(), 2);
/// assert!(backends[0].healthy && backends[0].weight == 3 && backends[0].in_flight == 7);
/// assert!(!backends[1].healthy && backends[1].recent_failures == 2);
/// ```
pub fn unflatten_stats(stats: &[u32], backends: &mut Vec<BackendStats>) {
    backends.clear();
    backends.extend(stats.chunks_exact(STATS_FIELDS).map(|f| BackendStats {
        healthy: f[0] != 0,
        weight: f[1],
        in_flight: f[2],
        ewma_latency_us: f[3],
        recent_failures: f[4],
    }));
}

/// The flat layout of `backends`, as the host sends it (useful in tests).
///
/// ```
/// use lbx_guest::testkit::loads;
/// let flat = lbx_guest::flatten_stats(&loads(&[2, 0]));
/// let mut back = Vec::new();
/// lbx_guest::unflatten_stats(&flat, &mut back);
/// assert_eq!(back, *loads(&[2, 0]));
/// ```
pub fn flatten_stats(backends: &[BackendStats]) -> Vec<u32> {
    backends
        .iter()
        .flat_map(|b| {
            [
                u32::from(b.healthy),
                b.weight,
                b.in_flight,
                b.ewma_latency_us,
                b.recent_failures,
            ]
        })
        .collect()
}
