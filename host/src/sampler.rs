//! Drawing a sample of requests on the request path: shadows and the decision recorder each
//! keep one [`Sampler`]. A draw is one relaxed atomic add and a few multiplies (SplitMix64
//! over a shared counter) — no lock and no thread-local generator on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Picks a share of requests, uniformly enough for sampling.
#[derive(Debug)]
pub struct Sampler {
    /// The share as a bound on a uniform `u64`: a request is sampled when its draw is below.
    threshold: u64,
    draws: AtomicU64,
}

impl Sampler {
    /// A sampler of `share` (0–1) of the requests, seeded from the clock so that two samplers
    /// do not pick the same requests.
    pub fn new(share: f64) -> Self {
        Self {
            threshold: threshold(share),
            draws: AtomicU64::new(seed()),
        }
    }

    /// Whether the next request is in the sample.
    pub fn samples_next(&self) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        let draw = splitmix64(self.draws.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed));
        draw < self.threshold
    }
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn threshold(share: f64) -> u64 {
    if share >= 1.0 {
        u64::MAX
    } else if share <= 0.0 {
        0
    } else {
        (share * u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_rate_is_kept_over_many_draws() {
        let sampler = Sampler::new(0.1);
        let sampled = (0..100_000).filter(|_| sampler.samples_next()).count();
        assert!(
            (9_500..10_500).contains(&sampled),
            "{sampled} of 100000 at 0.1"
        );
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(1.0), u64::MAX);
        assert!(!(0..1000).any(|_| Sampler::new(0.0).samples_next()));
        assert!((0..1000).all(|_| Sampler::new(1.0).samples_next()));
    }
}
