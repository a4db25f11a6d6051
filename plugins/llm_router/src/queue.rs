//! How many requests wait at a backend now, from a scrape that is already old.
//!
//! A scraped `vllm:num_requests_waiting` describes the moment of its scrape; lbx has sent more
//! since (llm-d's saturation gate overshot on exactly this, llm-d-router#2066). lbx's in-flight
//! count is current, so the estimate is the scraped queue plus how much the in-flight count
//! grew since that scrape (or minus how much it shrank: answers free slots, and the queue moves
//! up). The in-flight count "at the scrape" is the one seen by this instance's first decision
//! after it, so the correction starts from zero at each new scrape.

/// A new scrape is one whose time differs by more than this from the last one seen (µs): ages
/// arrive in milliseconds with some jitter.
const SAME_SCRAPE_US: u64 = 2_000;

#[derive(Debug, Clone, Copy)]
struct Baseline {
    scraped_at_us: u64,
    in_flight: u32,
}

/// Per backend index: the scrape last seen and the in-flight count then.
#[derive(Debug, Default)]
pub struct QueueEstimates {
    baselines: Vec<Option<Baseline>>,
}

impl QueueEstimates {
    /// Forgets every baseline (a new backend set: indexes changed).
    pub fn reset(&mut self, backends: usize) {
        self.baselines.clear();
        self.baselines.resize(backends, None);
    }

    /// The waiting requests of backend `index` now: `waiting` scraped `age_ms` ago, corrected
    /// by the change of its in-flight count since (`in_flight` now, at `now_us`).
    pub fn waiting(
        &mut self,
        index: usize,
        waiting: f64,
        age_ms: f64,
        in_flight: u32,
        now_us: u64,
    ) -> f64 {
        let scraped_at_us = now_us.saturating_sub((age_ms.max(0.0) * 1000.0) as u64);
        let Some(slot) = self.baselines.get_mut(index) else {
            return waiting;
        };
        let baseline = match *slot {
            Some(b) if b.scraped_at_us.abs_diff(scraped_at_us) <= SAME_SCRAPE_US => b,
            _ => *slot.insert(Baseline {
                scraped_at_us,
                in_flight,
            }),
        };
        (waiting + f64::from(in_flight) - f64::from(baseline.in_flight)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_sent_since_the_scrape_add_to_its_queue_until_the_next_scrape() {
        let mut queues = QueueEstimates::default();
        queues.reset(1);
        // Scraped at t = 1 s with 2 waiting; 3 in flight when first seen.
        assert_eq!(queues.waiting(0, 2.0, 0.0, 3, 1_000_000), 2.0);
        // 100 ms later, same scrape, 7 in flight: 4 more were sent.
        assert_eq!(queues.waiting(0, 2.0, 100.0, 7, 1_100_000), 6.0);
        // Answers came back: fewer in flight than at the scrape.
        assert_eq!(queues.waiting(0, 2.0, 200.0, 0, 1_200_000), 0.0);
        // A new scrape starts a new baseline.
        assert_eq!(queues.waiting(0, 1.0, 0.0, 9, 2_000_000), 1.0);
        assert_eq!(queues.waiting(0, 1.0, 50.0, 10, 2_050_000), 2.0);
    }

    #[test]
    fn an_unknown_index_gets_the_scraped_value() {
        assert_eq!(QueueEstimates::default().waiting(3, 4.0, 0.0, 10, 0), 4.0);
    }
}
