//! Weighted choices: nginx's smooth weighted round robin, and a weighted random pick.

use crate::FastRng;

/// nginx's smooth weighted round robin: over any window of `sum(weights)` picks, each backend
/// is chosen exactly `weight` times, spread out instead of in bursts (weights 5:1:1 give
/// `a a b a c a a`, not `a a a a a b c`).
///
/// Each pick adds every candidate's weight to its running score, takes the highest score
/// (the earliest on a tie) and subtracts the total weight from it. Backends that are not
/// candidates this time (down, or already tried) keep their score and do not count.
///
/// ```
/// use lbx_guest::SmoothWeighted;
///
/// let weights = [5, 1, 1];
/// let mut rr = SmoothWeighted::default();
/// let picks: Vec<usize> = (0..7)
///     .map(|_| rr.pick(0..3, |i| weights[i], 3).unwrap())
///     .collect();
/// assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct SmoothWeighted {
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// Choose among `candidates` (backend indexes below `backend_count`), weighted by
    /// `weight(index)`; `None` when there is no candidate. A weight of 0 counts as 1.
    pub fn pick(
        &mut self,
        candidates: impl IntoIterator<Item = usize>,
        weight: impl Fn(usize) -> u32,
        backend_count: usize,
    ) -> Option<usize> {
        if self.current.len() != backend_count {
            // A new backend set: start over, as nginx does on reload.
            self.current = vec![0; backend_count];
        }
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for index in candidates {
            let Some(score) = self.current.get_mut(index) else {
                continue;
            };
            let weight = i64::from(weight(index).max(1));
            *score += weight;
            let score = *score;
            total += weight;
            if best.is_none_or(|(_, best_score)| score > best_score) {
                best = Some((index, score));
            }
        }
        let (chosen, _) = best?;
        self.current[chosen] -= total;
        Some(chosen)
    }
}

/// Pick one of `items` (index, weight) with probability proportional to its weight, in one
/// pass and without allocating (weighted reservoir sampling). `None` when every weight is 0
/// or there are no items.
///
/// ```
/// use lbx_guest::{FastRng, weighted_random};
///
/// let mut rng = FastRng::new(7);
/// let mut counts = [0u32; 2];
/// for _ in 0..10_000 {
///     let i = weighted_random(&mut rng, [(0, 9), (1, 1)]).unwrap();
///     counts[i] += 1;
/// }
/// assert!((8_700..9_300).contains(&counts[0]), "{counts:?}");
/// ```
pub fn weighted_random(
    rng: &mut FastRng,
    items: impl IntoIterator<Item = (usize, u32)>,
) -> Option<usize> {
    let mut total = 0u64;
    let mut chosen = None;
    for (index, weight) in items {
        if weight == 0 {
            continue;
        }
        total += u64::from(weight);
        // Replace the current choice with probability weight / total.
        if rng.next_u64() % total < u64::from(weight) {
            chosen = Some(index);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_gives_exact_shares_over_a_window() {
        let weights = [5, 1, 1];
        let mut rr = SmoothWeighted::default();
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[rr.pick(0..3, |i| weights[i], 3).unwrap()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn non_candidates_are_skipped_and_a_new_set_starts_over() {
        let mut rr = SmoothWeighted::default();
        assert_eq!(rr.pick([1, 2], |_| 1, 3), Some(1));
        assert_eq!(rr.pick([1, 2], |_| 1, 3), Some(2));
        assert_eq!(rr.pick([], |_| 1, 3), None);
        assert_eq!(rr.pick([0, 1], |_| 1, 2), Some(0));
    }
}
