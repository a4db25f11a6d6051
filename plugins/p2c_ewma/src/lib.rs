//! Power of two choices on peak-EWMA latency for lbx (the algorithm of Finagle and Linkerd).
//!
//! For each request two different candidate backends are drawn at random; the one with the
//! lower cost wins, where
//!
//! ```text
//! cost = peak_latency × (in_flight + 1) × (recent_failures + 1)
//! ```
//!
//! `peak_latency` follows the host's latency moving average up at once and back down slowly
//! (by 1/16 of the gap per decision), so one slow response makes a backend unattractive
//! immediately and a recovering backend earns traffic back gradually. A backend with no
//! latency yet counts as the fastest seen, so new backends are tried. Only healthy backends
//! not yet tried by this request are candidates.
//!
//! Configuration: none (`{}`). Build: `bash plugins/build.sh`. Test: `cargo test -p p2c_ewma`.

use lbx_guest::{
    BackendStats, Backends, Candidates, Decision, FastRng, Request, RetryContext, Router,
};

/// How fast a peak decays toward the current average: 1/2^DECAY_SHIFT of the gap per decision.
const DECAY_SHIFT: u32 = 4;

/// The plugin's state.
#[derive(Debug)]
pub struct P2cEwma {
    rng: FastRng,
    /// Peak-sensitive latency per backend, in µs.
    peaks: Vec<u64>,
}

impl P2cEwma {
    /// A router with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: FastRng::new(seed),
            peaks: Vec::new(),
        }
    }

    fn update_peaks(&mut self, backends: &[BackendStats]) {
        self.peaks.resize(backends.len(), 0);
        for (peak, backend) in self.peaks.iter_mut().zip(backends) {
            let ewma = u64::from(backend.ewma_latency_us);
            *peak = if ewma >= *peak {
                ewma
            } else {
                *peak - ((*peak - ewma) >> DECAY_SHIFT).max(1)
            };
        }
    }

    fn cost(&self, backends: &[BackendStats], index: usize, fastest: u64) -> u128 {
        let backend = &backends[index];
        let latency = match self.peaks[index] {
            0 => fastest.max(1),
            peak => peak,
        };
        u128::from(latency)
            * (u128::from(backend.in_flight) + 1)
            * (u128::from(backend.recent_failures) + 1)
    }
}

impl Router for P2cEwma {
    fn init(config: &str) -> Result<Self, String> {
        lbx_guest::init_default::<()>(config)?;
        Ok(Self {
            rng: FastRng::from_entropy(),
            peaks: Vec::new(),
        })
    }

    fn choose(
        &mut self,
        _req: &dyn Request,
        backends: &Backends,
        retry: &RetryContext,
    ) -> Decision {
        self.update_peaks(backends);
        let candidates = Candidates::new(backends, retry);
        let count = candidates.count();
        if count == 0 {
            return lbx_guest::no_opinion();
        }
        let first = self.rng.below(count);
        let second = (first + 1 + self.rng.below(count.max(2) - 1)) % count;
        let (Some(a), Some(b)) = (candidates.nth(first), candidates.nth(second)) else {
            return lbx_guest::no_opinion();
        };
        let fastest = candidates
            .iter()
            .map(|i| self.peaks[i])
            .filter(|&p| p > 0)
            .min()
            .unwrap_or(1);
        let winner = if self.cost(backends, b, fastest) < self.cost(backends, a, fastest) {
            b
        } else {
            a
        };
        lbx_guest::pick(winner)
    }
}

lbx_guest::export_router!(P2cEwma);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{
        FakeRequest, first_attempt, latencies as with_latencies, picked, retry,
    };

    fn shares(router: &mut P2cEwma, backends: &Backends, n: usize) -> Vec<usize> {
        let mut counts = vec![0; backends.len()];
        let req = FakeRequest::get("/");
        for _ in 0..n {
            counts[picked(&router.choose(&req, backends, &first_attempt())).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn a_slow_backend_gets_little_traffic() {
        let mut router = P2cEwma::with_seed(1);
        let counts = shares(&mut router, &with_latencies(&[1_000, 1_000, 50_000]), 3_000);
        // The slow backend wins only when drawn twice, which two different draws never are.
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(counts[0] > 1_200 && counts[1] > 1_200, "{counts:?}");
    }

    #[test]
    fn load_counts_against_a_fast_backend() {
        let mut router = P2cEwma::with_seed(2);
        let mut backends = with_latencies(&[1_000, 1_500]);
        backends[0].in_flight = 9; // cost 10_000 vs 1_500
        let counts = shares(&mut router, &backends, 100);
        assert_eq!(counts, [0, 100]);
    }

    #[test]
    fn the_peak_falls_back_slowly_after_a_slow_spell() {
        let mut router = P2cEwma::with_seed(3);
        let req = FakeRequest::get("/");
        router.choose(&req, &with_latencies(&[10_000, 1_000]), &first_attempt());
        router.choose(&req, &with_latencies(&[1_000, 1_000]), &first_attempt());
        assert!(
            router.peaks[0] > 9_000,
            "one fast sample does not erase a peak"
        );
        for _ in 0..200 {
            router.choose(&req, &with_latencies(&[1_000, 1_000]), &first_attempt());
        }
        assert!(
            router.peaks[0] < 1_100,
            "but it decays: {}",
            router.peaks[0]
        );
    }

    #[test]
    fn down_and_tried_backends_are_never_chosen() {
        let mut router = P2cEwma::with_seed(4);
        let mut backends = with_latencies(&[10, 10, 10]);
        backends[1].healthy = false;
        let req = FakeRequest::get("/");
        for _ in 0..100 {
            let decision = router.choose(&req, &backends, &retry(&[0]));
            assert_eq!(picked(&decision), Some(2));
        }
        assert_eq!(
            router.choose(&req, &Backends::default(), &first_attempt()),
            lbx_guest::no_opinion()
        );
    }
}
