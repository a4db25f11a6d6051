//! The per-request backend statistics travel as one flat `list<u32>` (a bulk copy across the
//! Wasm boundary); this module converts between that layout and [`BackendStats`] values.

use crate::BackendStats;

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
/// assert_eq!(back, loads(&[2, 0]));
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
