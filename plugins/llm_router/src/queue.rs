//! How many requests wait at a backend now, and whether one more would, from a scrape that is
//! already old.
//!
//! A scraped `vllm:num_requests_waiting` describes the moment of its scrape; lbx has sent more
//! since (llm-d's saturation gate overshot on exactly this, llm-d-router#2066). lbx's in-flight
//! count is current, so the estimate is the scraped queue plus how much the in-flight count
//! grew since that scrape (or minus how much it shrank: answers free slots, and the queue moves
//! up). The in-flight count "at the scrape" is the one seen by this instance's first decision
//! after it, so the correction starts from zero at each new scrape.
//!
//! A queue that is empty now may not stay so for the request being placed: a replica running
//! as many requests as it can queues the next one. When `vllm:num_requests_running` is scraped
//! too, a backend's **slots** are learned: the running count when two scrapes in a row show a
//! queue (a replica that keeps requests waiting runs all it can), raised by any larger running
//! count seen later. With slots known, the backend's requests — scraped running and waiting,
//! corrected the same way — beyond its slots are the ones waiting, and a request sent now
//! counts as one more waiting when they fill them. Until a backend has been seen queueing, the
//! operator's `slots` stand in, or else the fewest slots learned for any other backend (replicas of a pool usually run the same
//! engine settings, and assuming fewer slots errs toward an idle replica, not a queue); before
//! any backend has queued, slots are unknown and every request sent since the scrape may be
//! waiting.

/// A new scrape is one whose time differs by more than this from the last one seen (µs): ages
/// arrive in milliseconds with some jitter.
const SAME_SCRAPE_US: u64 = 2_000;

/// What a scrape said of one backend's queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scrape {
    /// Requests waiting.
    pub waiting: f64,
    /// Requests running, when that signal is scraped.
    pub running: Option<f64>,
    /// How old the scrape is, in milliseconds.
    pub age_ms: f64,
}

/// A backend's queue as estimated now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    /// Requests waiting now.
    pub waiting: f64,
    /// Requests that would wait, counting one more sent now: `waiting + 1` when the backend's
    /// known slots are full, `waiting` when its slots are unknown.
    pub waiting_if_sent: f64,
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    scraped_at_us: u64,
    in_flight: u32,
    /// Whether that scrape showed requests waiting.
    queued: bool,
}

/// Per backend index: the scrape last seen, the in-flight count then, and the slots learned.
#[derive(Debug, Default)]
pub struct QueueEstimates {
    baselines: Vec<Option<Baseline>>,
    slots: Vec<Option<f64>>,
    /// The operator's slot count, for backends whose own is not learned yet.
    configured_slots: Option<f64>,
}

impl QueueEstimates {
    /// Estimates that take `slots` (the operator's `slots`, if set) for a backend's slots until
    /// its own are learned.
    pub fn new(slots: Option<f64>) -> Self {
        QueueEstimates {
            configured_slots: slots,
            ..QueueEstimates::default()
        }
    }

    /// Forgets every baseline and learned slot count (a new backend set: indexes changed).
    pub fn reset(&mut self, backends: usize) {
        self.baselines.clear();
        self.baselines.resize(backends, None);
        self.slots.clear();
        self.slots.resize(backends, None);
    }

    /// The queue of backend `index` now, from `scrape`, corrected by the change of its
    /// in-flight count since (`in_flight` now, at `now_us`).
    pub fn estimate(
        &mut self,
        index: usize,
        scrape: Scrape,
        in_flight: u32,
        now_us: u64,
    ) -> Estimate {
        let scraped_at_us = now_us.saturating_sub((scrape.age_ms.max(0.0) * 1000.0) as u64);
        let (Some(slot), Some(slots)) = (self.baselines.get_mut(index), self.slots.get_mut(index))
        else {
            return Estimate {
                waiting: scrape.waiting,
                waiting_if_sent: scrape.waiting,
            };
        };
        let baseline = match *slot {
            Some(b) if b.scraped_at_us.abs_diff(scraped_at_us) <= SAME_SCRAPE_US => b,
            previous => {
                let queued_before = previous.is_some_and(|b| b.queued);
                *slots = learned_slots(*slots, queued_before, scrape);
                *slot.insert(Baseline {
                    scraped_at_us,
                    in_flight,
                    queued: scrape.waiting > 0.0,
                })
            }
        };
        let own_slots = *slots;
        let sent_since = f64::from(in_flight) - f64::from(baseline.in_flight);
        let slots = own_slots
            .or(self.configured_slots)
            .or_else(|| self.fewest_slots());
        match (slots, scrape.running) {
            (Some(slots), Some(running)) => {
                // lbx's own count is never older than the scrape: a request sent just before
                // it may not have reached the engine yet (the API server tokenises first), so
                // the scrape missed it and the baseline already counted it.
                let requests = (running + scrape.waiting + sent_since).max(f64::from(in_flight));
                Estimate {
                    waiting: (requests - slots).max(0.0),
                    waiting_if_sent: (requests + 1.0 - slots).max(0.0),
                }
            }
            // Slots unknown: every request sent since the scrape may be waiting.
            _ => {
                let waiting = (scrape.waiting + sent_since).max(0.0);
                Estimate {
                    waiting,
                    waiting_if_sent: waiting,
                }
            }
        }
    }
}

impl QueueEstimates {
    /// The fewest slots learned for any backend.
    fn fewest_slots(&self) -> Option<f64> {
        self.slots.iter().flatten().copied().reduce(f64::min)
    }
}

/// The slots known after `scrape` (`queued_before`: the scrape before it showed a queue too):
/// the running count of the second of two scrapes in a row that show a queue, raised by any
/// larger running count later seen. A request counts as waiting from its arrival to the next
/// engine step, so one scrape can show a request waiting beside free slots; a queue still there
/// a scrape later is a real one. The count is never lowered, so a moment like that cannot mark
/// a replica full for good. (A replica whose KV cache, not its slots, holds requests back shows
/// that in its KV-cache use instead.)
fn learned_slots(slots: Option<f64>, queued_before: bool, scrape: Scrape) -> Option<f64> {
    let Some(running) = scrape.running.filter(|&r| r > 0.0) else {
        return slots;
    };
    match slots {
        Some(slots) => Some(slots.max(running)),
        None => (queued_before && scrape.waiting > 0.0).then_some(running),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(waiting: f64, age_ms: f64) -> Scrape {
        Scrape {
            waiting,
            running: None,
            age_ms,
        }
    }

    fn both(waiting: f64, running: f64, age_ms: f64) -> Scrape {
        Scrape {
            waiting,
            running: Some(running),
            age_ms,
        }
    }

    #[test]
    fn requests_sent_since_the_scrape_add_to_its_queue_until_the_next_scrape() {
        let mut queues = QueueEstimates::default();
        queues.reset(1);
        let mut now = |scrape, in_flight, at| queues.estimate(0, scrape, in_flight, at).waiting;
        // Scraped at t = 1 s with 2 waiting; 3 in flight when first seen.
        assert_eq!(now(waiting(2.0, 0.0), 3, 1_000_000), 2.0);
        // 100 ms later, same scrape, 7 in flight: 4 more were sent.
        assert_eq!(now(waiting(2.0, 100.0), 7, 1_100_000), 6.0);
        // Answers came back: fewer in flight than at the scrape.
        assert_eq!(now(waiting(2.0, 200.0), 0, 1_200_000), 0.0);
        // A new scrape starts a new baseline.
        assert_eq!(now(waiting(1.0, 0.0), 9, 2_000_000), 1.0);
        assert_eq!(now(waiting(1.0, 50.0), 10, 2_050_000), 2.0);
    }

    #[test]
    fn a_backend_seen_queueing_teaches_its_slots_and_a_full_one_queues_the_next_request() {
        let mut queues = QueueEstimates::default();
        queues.reset(1);
        // Never seen queueing: 8 running says nothing of its slots.
        let idle = queues.estimate(0, both(0.0, 8.0, 0.0), 8, 1_000_000);
        assert_eq!(idle.waiting_if_sent, 0.0);
        // Two scrapes in a row with a queue: 8 slots, all in use.
        queues.estimate(0, both(1.0, 8.0, 0.0), 9, 1_500_000);
        let full = queues.estimate(0, both(1.0, 8.0, 0.0), 9, 2_000_000);
        assert_eq!((full.waiting, full.waiting_if_sent), (1.0, 2.0));
        // Next scrape: 7 running, nothing waiting. One free slot...
        let free = queues.estimate(0, both(0.0, 7.0, 0.0), 7, 3_000_000);
        assert_eq!((free.waiting, free.waiting_if_sent), (0.0, 0.0));
        // ... taken by a request lbx sent since: the next one would wait.
        let taken = queues.estimate(0, both(0.0, 7.0, 10.0), 8, 3_010_000);
        assert_eq!((taken.waiting, taken.waiting_if_sent), (0.0, 1.0));
    }

    #[test]
    fn a_request_caught_between_arrival_and_admission_does_not_shrink_the_slots() {
        let mut queues = QueueEstimates::default();
        queues.reset(1);
        // A new request waits for the next step beside free slots: no slots learned from that.
        queues.estimate(0, both(1.0, 4.0, 0.0), 5, 1_000_000);
        let six = queues.estimate(0, both(0.0, 6.0, 0.0), 6, 2_000_000);
        assert_eq!(six.waiting_if_sent, 0.0);
        // A queue that stays: 8 slots.
        queues.estimate(0, both(1.0, 8.0, 0.0), 9, 3_000_000);
        let eight = queues.estimate(0, both(1.0, 8.0, 0.0), 9, 3_100_000);
        assert_eq!(eight.waiting_if_sent, 2.0);
        // Momentary waits at 4 running, even two in a row, leave the 8 learned.
        queues.estimate(0, both(1.0, 4.0, 0.0), 5, 4_000_000);
        let later = queues.estimate(0, both(1.0, 4.0, 0.0), 5, 4_100_000);
        assert_eq!((later.waiting, later.waiting_if_sent), (0.0, 0.0));
    }

    #[test]
    fn a_backend_never_seen_queueing_borrows_the_fewest_slots_learned_elsewhere() {
        let mut queues = QueueEstimates::default();
        queues.reset(3);
        for at in [1_000_000, 1_100_000] {
            queues.estimate(0, both(2.0, 8.0, 0.0), 10, at);
            queues.estimate(1, both(1.0, 6.0, 0.0), 7, at);
        }
        let unknown = queues.estimate(2, both(0.0, 6.0, 0.0), 6, 1_000_000);
        assert_eq!((unknown.waiting, unknown.waiting_if_sent), (0.0, 1.0));
    }

    #[test]
    fn requests_lbx_sent_that_the_scrape_missed_still_fill_the_slots() {
        let mut queues = QueueEstimates::default();
        queues.reset(1);
        queues.estimate(0, both(1.0, 8.0, 0.0), 9, 900_000);
        queues.estimate(0, both(1.0, 8.0, 0.0), 9, 1_000_000);
        // 7 running at the scrape, but 8 in flight: one was still being tokenised.
        let missed = queues.estimate(0, both(0.0, 7.0, 0.0), 8, 2_000_000);
        assert_eq!((missed.waiting, missed.waiting_if_sent), (0.0, 1.0));
    }

    #[test]
    fn configured_slots_count_before_any_queue_is_seen() {
        let mut queues = QueueEstimates::new(Some(8.0));
        queues.reset(1);
        let full = queues.estimate(0, both(0.0, 8.0, 0.0), 8, 1_000_000);
        assert_eq!((full.waiting, full.waiting_if_sent), (0.0, 1.0));
    }

    #[test]
    fn an_unknown_index_gets_the_scraped_value() {
        let estimate = QueueEstimates::default().estimate(3, waiting(4.0, 0.0), 10, 0);
        assert_eq!(estimate.waiting, 4.0);
    }
}
