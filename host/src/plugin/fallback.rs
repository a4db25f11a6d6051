//! The built-in choice used when there is no plugin, when the plugin has no opinion, and when
//! a plugin call fails: the usable backend with the fewest requests in flight, ties rotated so
//! equal backends share load instead of the first one taking it all.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::upstream::BackendSet;

/// Least-in-flight selection with rotating tie-break.
#[derive(Debug, Default)]
pub struct LeastInFlight {
    rotation: AtomicUsize,
}

impl LeastInFlight {
    /// Index of the chosen backend, preferring ones not in `tried`; `None` if none is usable.
    pub fn choose(&self, set: &BackendSet, tried: &[u32]) -> Option<usize> {
        self.choose_among(set, |i| !tried.contains(&(i as u32)))
            .or_else(|| self.choose_among(set, |_| true))
    }

    fn choose_among(&self, set: &BackendSet, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let n = set.len();
        if n == 0 {
            return None;
        }
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, u32)> = None;
        for offset in 0..n {
            let i = (start + offset) % n;
            let backend = &set.backends[i];
            if !backend.is_usable() || !allowed(i) {
                continue;
            }
            let load = backend.stats.in_flight();
            if best.is_none_or(|(_, best_load)| load < best_load) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstreams;
    use crate::upstream::tests::{backend, pool_settings};

    fn set(n: usize) -> std::sync::Arc<BackendSet> {
        let specs: Vec<_> = (0..n)
            .map(|i| backend(&format!("http://127.0.0.1:{}", 1000 + i), None))
            .collect();
        Upstreams::new(&specs, pool_settings()).unwrap().snapshot()
    }

    #[test]
    fn picks_the_least_loaded_backend() {
        let set = set(3);
        let _a = set.backends[0].stats.start_request();
        let _b = set.backends[2].stats.start_request();
        let fallback = LeastInFlight::default();
        for _ in 0..5 {
            assert_eq!(fallback.choose(&set, &[]), Some(1));
        }
    }

    #[test]
    fn ties_are_rotated() {
        let set = set(3);
        let fallback = LeastInFlight::default();
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[fallback.choose(&set, &[]).unwrap()] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn tried_backends_are_avoided_while_others_remain() {
        let set = set(2);
        let fallback = LeastInFlight::default();
        for _ in 0..4 {
            assert_eq!(fallback.choose(&set, &[0]), Some(1));
        }
        assert!(fallback.choose(&set, &[0, 1]).is_some());
    }

    #[test]
    fn ejected_backends_are_never_chosen() {
        let set = set(2);
        let outlier = crate::config::OutlierConfig {
            consecutive_failures: 1,
            ..Default::default()
        };
        set.backends[0].stats.record_failure(&outlier, true);
        let fallback = LeastInFlight::default();
        for _ in 0..4 {
            assert_eq!(fallback.choose(&set, &[]), Some(1));
        }
        set.backends[1].stats.record_failure(&outlier, true);
        assert_eq!(fallback.choose(&set, &[]), None);
    }
}
