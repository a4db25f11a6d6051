//! Each backend's time to first byte, learned from outcome feedback, as a score penalty.
//!
//! Queue depth and KV-cache use say how busy a replica is; they do not say how fast it is. A
//! replica on a slower GPU, throttled, or swapping its cache answers later at the same queue
//! depth, and only its answers show it. So each outcome's time to first token (lbx's
//! `first_byte_us`, the response body's first byte: a streaming server such as vLLM sends the
//! head before any token; `ttfb_us`, the head, when no body came) feeds a moving average per
//! backend, and the penalty is how many times the
//! estimate doubles the fastest candidate's: `log2(estimate / fastest)`, 0 to 4. A ratio, not
//! a difference, so one knob fits short and long prompts alike; a logarithm, so a replica twice
//! as slow loses one `weights.ttft` and a broken one cannot outweigh everything else.
//!
//! The average forgets by time, not by count (weight `1 − e^(−Δt/τ)` per sample, τ = 10 s, as
//! Finagle's and `p2c_ewma`'s): TTFT varies a lot with each prompt's length, so it takes many
//! answers to move it. An estimate also fades toward the fastest candidate's as it ages, so a
//! replica that was slow once is tried again when others are busy, and its next answers decide.
//! A backend without an estimate gets no penalty. Estimates follow backend ids across backend
//! set changes and live in each plugin instance (lbx spreads outcomes over its instances).

use std::collections::HashMap;

/// τ of the moving average and of the fading, in µs.
const DECAY_US: f64 = 10_000_000.0;

/// Largest penalty, in doublings.
const MAX_DOUBLINGS: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    ttfb_us: f64,
    /// When the last sample arrived (lbx's clock).
    at_us: u64,
}

/// Estimates by backend index, for the backend set in force.
#[derive(Debug, Default)]
pub struct TtftTable {
    ids: Vec<u64>,
    estimates: Vec<Option<Estimate>>,
}

impl TtftTable {
    /// Re-indexes the estimates for a new backend set (`ids` by index), keeping those of
    /// backends that stay.
    pub fn rebuild(&mut self, ids: &[u64]) {
        let known: HashMap<u64, Estimate> = self
            .ids
            .iter()
            .zip(&self.estimates)
            .filter_map(|(id, e)| Some((*id, (*e)?)))
            .collect();
        self.estimates = ids.iter().map(|id| known.get(id).copied()).collect();
        self.ids = ids.to_vec();
    }

    /// Takes in a time to first byte of backend `index`, heard at `now_us`.
    pub fn learn(&mut self, index: usize, ttfb_us: u64, now_us: u64) {
        let Some(slot) = self.estimates.get_mut(index) else {
            return;
        };
        let sample = ttfb_us as f64;
        *slot = Some(match *slot {
            Some(e) => {
                let kept = decay(now_us.saturating_sub(e.at_us));
                Estimate {
                    ttfb_us: e.ttfb_us * kept + sample * (1.0 - kept),
                    at_us: now_us,
                }
            }
            None => Estimate {
                ttfb_us: sample,
                at_us: now_us,
            },
        });
    }

    /// The lowest estimate among `candidates`, if any has one.
    pub fn fastest(&self, candidates: impl Iterator<Item = usize>) -> Option<f64> {
        candidates
            .filter_map(|i| self.estimates.get(i).copied().flatten())
            .map(|e| e.ttfb_us)
            .reduce(f64::min)
    }

    /// Backend `index`'s penalty, in doublings over `fastest` (0 without an estimate).
    pub fn penalty(&self, index: usize, fastest: f64, now_us: u64) -> f64 {
        let Some(e) = self.estimates.get(index).copied().flatten() else {
            return 0.0;
        };
        let kept = decay(now_us.saturating_sub(e.at_us));
        let faded = e.ttfb_us * kept + fastest * (1.0 - kept);
        (faded.max(1.0) / fastest.max(1.0))
            .log2()
            .clamp(0.0, MAX_DOUBLINGS)
    }

    /// The estimate of backend `index`, in µs (for tests).
    #[cfg(test)]
    pub fn estimate(&self, index: usize) -> Option<f64> {
        self.estimates
            .get(index)
            .copied()
            .flatten()
            .map(|e| e.ttfb_us)
    }
}

/// `e^(−elapsed/τ)`: how much of an estimate `elapsed_us` old still counts.
fn decay(elapsed_us: u64) -> f64 {
    (-(elapsed_us as f64) / DECAY_US).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_as_slow_is_one_doubling_and_the_penalty_is_bounded() {
        let mut table = TtftTable::default();
        table.rebuild(&[1, 2, 3]);
        table.learn(0, 100_000, 0);
        table.learn(1, 200_000, 0);
        table.learn(2, 100_000_000, 0);
        let fastest = table.fastest(0..3).unwrap();
        assert_eq!(fastest, 100_000.0);
        assert_eq!(table.penalty(0, fastest, 0), 0.0);
        assert!((table.penalty(1, fastest, 0) - 1.0).abs() < 1e-9);
        assert_eq!(table.penalty(2, fastest, 0), 4.0);
    }

    #[test]
    fn samples_move_the_average_by_time_and_old_estimates_fade() {
        let mut table = TtftTable::default();
        table.rebuild(&[1, 2]);
        table.learn(0, 100_000, 0);
        table.learn(1, 400_000, 0);
        // A fast sample a millisecond later barely moves the slow estimate...
        table.learn(1, 100_000, 1_000);
        assert!(table.estimate(1).unwrap() > 399_000.0);
        // ...and a minute later the slow one's penalty has faded to almost nothing.
        assert!(table.penalty(1, 100_000.0, 1_000) > 1.9);
        assert!(table.penalty(1, 100_000.0, 60_000_000) < 0.05);
    }

    #[test]
    fn estimates_follow_backend_ids() {
        let mut table = TtftTable::default();
        table.rebuild(&[1, 2]);
        table.learn(1, 5_000, 0);
        table.rebuild(&[3, 2]);
        assert_eq!(
            (table.estimate(0), table.estimate(1)),
            (None, Some(5_000.0))
        );
        table.learn(9, 1, 0); // no such backend: ignored
        assert_eq!(table.penalty(0, 1_000.0, 0), 0.0, "no estimate, no penalty");
    }
}
