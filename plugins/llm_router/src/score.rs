//! A backend's score and the ranking of the candidates.
//!
//! ```text
//! score = weights.prefix    × share of the prompt's blocks it was sent before   (0..1)
//!       − weights.queue     × estimated waiting requests
//!       − weights.in_flight × lbx's in-flight requests
//!       − weights.kv_cache  × KV-cache use                                     (0..1)
//!       − weights.ttft      × doublings of its learned TTFT over the fastest's  (0..4)
//! ```
//!
//! Higher is better. Absolute terms, not min-max normalised ones: a load difference of one
//! request must not weigh as much as one of fifty. Waiting and in-flight requests weigh apart
//! because they cost apart: a request running at a replica shares its batch and slows each
//! step a little, a request waiting there holds the next arrival for a running request's
//! whole remaining time — far more than recomputing a prompt's prefix costs. Saturated backends rank after all others;
//! when every candidate is saturated, the least loaded goes first (the least bad), since
//! prefix affinity would only pile more onto a full replica. Ties go to the backend after the
//! last one picked, so idle replicas share new work instead of the first taking it all.

use std::cmp::Ordering;

use crate::config::Weights;

/// What is known of one candidate for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Terms {
    /// Share of the prompt's blocks this backend was sent before.
    pub prefix: f64,
    /// Estimated waiting requests (0 when no queue is scraped).
    pub waiting: f64,
    /// lbx's in-flight requests there (running and waiting).
    pub in_flight: f64,
    /// KV-cache use, 0 to 1 (0 when unknown).
    pub kv_cache: f64,
    /// TTFT penalty in doublings.
    pub ttft: f64,
}

impl Terms {
    /// The score of these terms.
    pub fn score(&self, weights: &Weights) -> f64 {
        weights.prefix * self.prefix
            - weights.queue * self.waiting
            - weights.in_flight * self.in_flight
            - weights.kv_cache * self.kv_cache
            - weights.ttft * self.ttft
    }
}

/// A scored candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Backend index.
    pub index: usize,
    /// Its score.
    pub score: f64,
    /// Its load (for the ranking of saturated candidates): estimated waiting requests, then
    /// in-flight ones.
    pub load: (f64, f64),
    /// Whether it is saturated.
    pub saturated: bool,
}

/// Orders `candidates` best first; `first` (taken modulo `backends`) wins ties.
pub fn rank(candidates: &mut [Scored], first: usize, backends: usize) {
    let all_saturated = candidates.iter().all(|c| c.saturated);
    let turn = |c: &Scored| (c.index + backends - first % backends.max(1)) % backends.max(1);
    candidates.sort_unstable_by(|a, b| {
        let by_merit = if all_saturated {
            by_load(a, b).then(b.score.total_cmp(&a.score))
        } else {
            a.saturated
                .cmp(&b.saturated)
                .then(b.score.total_cmp(&a.score))
                .then(by_load(a, b))
        };
        match by_merit {
            Ordering::Equal => turn(a).cmp(&turn(b)),
            decided => decided,
        }
    });
}

/// Fewer waiting requests first, then fewer in flight.
fn by_load(a: &Scored, b: &Scored) -> Ordering {
    (a.load.0.total_cmp(&b.load.0)).then(a.load.1.total_cmp(&b.load.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(index: usize, score: f64, waiting: f64, saturated: bool) -> Scored {
        Scored {
            index,
            score,
            load: (waiting, 0.0),
            saturated,
        }
    }

    fn order(mut c: Vec<Scored>, first: usize) -> Vec<usize> {
        let n = c.len();
        rank(&mut c, first, n);
        c.iter().map(|s| s.index).collect()
    }

    #[test]
    fn a_full_prefix_match_outweighs_running_requests_but_not_one_waiting() {
        let weights = Weights::default();
        let idle = Terms::default();
        let cached_and_busy = Terms {
            prefix: 1.0,
            in_flight: 6.0,
            ..Terms::default()
        };
        assert!(cached_and_busy.score(&weights) > idle.score(&weights));
        let cached_but_queued = Terms {
            prefix: 1.0,
            waiting: 1.0,
            in_flight: 1.0,
            ..Terms::default()
        };
        assert!(cached_but_queued.score(&weights) < idle.score(&weights));
    }

    #[test]
    fn saturated_candidates_go_last_unless_all_are_then_least_loaded_first() {
        let some = vec![
            scored(0, 5.0, 9.0, true),
            scored(1, 1.0, 2.0, false),
            scored(2, 2.0, 3.0, false),
        ];
        assert_eq!(order(some, 0), [2, 1, 0]);
        let all = vec![
            scored(0, 5.0, 9.0, true),
            scored(1, 1.0, 6.0, true),
            scored(2, 9.0, 7.0, true),
        ];
        assert_eq!(order(all, 0), [1, 2, 0]);
    }

    #[test]
    fn ties_start_after_the_rotation_point() {
        let tied = || {
            (0..4)
                .map(|i| scored(i, 0.0, 0.0, false))
                .collect::<Vec<_>>()
        };
        assert_eq!(order(tied(), 0), [0, 1, 2, 3]);
        assert_eq!(order(tied(), 2), [2, 3, 0, 1]);
        assert_eq!(order(tied(), 7), [3, 0, 1, 2]);
    }
}
