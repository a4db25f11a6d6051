//! A shadow's figures: how many sampled requests it was offered and dropped (counted on the
//! request path, one relaxed add each), and — kept by its worker alone — what it decided
//! against what the live side did: agreements, the confusion table (live choice → shadow
//! choice), each side's share per backend, errors by kind and the time per decision.
//!
//! Choices are tallied by name (a backend's id, `reject 429`), not index, so the figures stay
//! meaningful across backend-set changes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::metrics::{DECISION_BOUNDS, LatencyHistogram};

/// Time per shadow decision, in the same buckets as the live plugin's.
pub type ShadowHistogram = LatencyHistogram<{ DECISION_BOUNDS.len() }>;

/// What a shadow answered for one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A backend or a rejection, named; `agrees` when the live side chose the same.
    Chose {
        /// The shadow's choice, named.
        shadow: String,
        /// The live side's choice, named.
        live: String,
    },
    /// `no-opinion`: the live fallback would have chosen; not compared.
    NoOpinion,
    /// The call failed or answered something unusable (the kind, as metrics name it).
    Error(&'static str),
}

/// The figures of one shadow.
#[derive(Debug)]
pub struct Tally {
    offered: AtomicU64,
    dropped: AtomicU64,
    paused: AtomicU64,
    /// Time of each shadow decision (the call and checking its answer).
    pub latency: ShadowHistogram,
    decided: Mutex<Decided>,
}

#[derive(Debug, Default)]
struct Decided {
    agreed: u64,
    disagreed: u64,
    no_opinion: u64,
    errors: BTreeMap<&'static str, u64>,
    /// (live, shadow) → count.
    confusion: BTreeMap<(String, String), u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            offered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            paused: AtomicU64::new(0),
            latency: LatencyHistogram::new(&DECISION_BOUNDS),
            decided: Mutex::new(Decided::default()),
        }
    }
}

impl Tally {
    /// A sampled request was handed to the shadow's queue.
    pub fn offered(&self) {
        self.offered.fetch_add(1, Ordering::Relaxed);
    }

    /// A sampled request was dropped: the shadow's queue was full.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A sample was skipped: the shadow's breaker has paused it after repeated failures.
    pub fn paused(&self) {
        self.paused.fetch_add(1, Ordering::Relaxed);
    }

    /// The shadow decided one sample in `took`.
    pub fn decided(&self, verdict: Verdict, took: Duration) {
        let mut decided = self.lock();
        // Under the lock, so a report's decision count matches its other figures.
        self.latency.observe(took);
        match verdict {
            Verdict::Chose { shadow, live } => {
                if shadow == live {
                    decided.agreed += 1;
                } else {
                    decided.disagreed += 1;
                }
                *decided.confusion.entry((live, shadow)).or_default() += 1;
            }
            Verdict::NoOpinion => decided.no_opinion += 1,
            Verdict::Error(kind) => *decided.errors.entry(kind).or_default() += 1,
        }
    }

    /// The figures as the admin API shows them.
    pub fn report(&self) -> TallyReport {
        let decided = self.lock();
        let compared = decided.agreed + decided.disagreed;
        let mut live_share: BTreeMap<String, u64> = BTreeMap::new();
        let mut shadow_share: BTreeMap<String, u64> = BTreeMap::new();
        for ((live, shadow), &count) in &decided.confusion {
            *live_share.entry(live.clone()).or_default() += count;
            *shadow_share.entry(shadow.clone()).or_default() += count;
        }
        let count =
            |counts: &BTreeMap<String, u64>, name: &str| counts.get(name).copied().unwrap_or(0);
        let names: std::collections::BTreeSet<&String> =
            live_share.keys().chain(shadow_share.keys()).collect();
        let shares = names
            .into_iter()
            .map(|name| {
                let (live, shadow) = (count(&live_share, name), count(&shadow_share, name));
                Share {
                    choice: name.clone(),
                    live: ratio(live, compared),
                    shadow: ratio(shadow, compared),
                    live_count: live,
                    shadow_count: shadow,
                }
            })
            .collect();
        let confusion = decided
            .confusion
            .iter()
            .map(|((live, shadow), &count)| Confusion {
                live: live.clone(),
                shadow: shadow.clone(),
                count,
            })
            .collect();
        let decisions = self.latency.count();
        TallyReport {
            offered: self.offered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            decisions,
            compared,
            agreed: decided.agreed,
            agreement: (compared > 0).then(|| ratio(decided.agreed, compared)),
            no_opinion: decided.no_opinion,
            errors: decided
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            confusion,
            shares,
            us_per_decision: (decisions > 0)
                .then(|| self.latency.sum_seconds() * 1e6 / decisions as f64),
        }
    }

    /// Samples offered and dropped, for metrics.
    pub fn queue_counts(&self) -> (u64, u64) {
        (
            self.offered.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Decided> {
        // Each update is complete before the lock is released; a poisoned one is still sound.
        self.decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A shadow's figures, for `GET /admin/plugin` and the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TallyReport {
    /// Sampled requests handed to its queue.
    pub offered: u64,
    /// Sampled requests dropped because its queue was full.
    pub dropped: u64,
    /// Samples skipped while its breaker paused it after repeated failures.
    pub paused: u64,
    /// Samples it has decided (or failed on).
    pub decisions: u64,
    /// Decisions compared with the live side's (a backend or a rejection on both sides).
    pub compared: u64,
    /// Of those, the ones where it chose as the live side did.
    pub agreed: u64,
    /// `agreed / compared` (0–1), once anything was compared.
    pub agreement: Option<f64>,
    /// Samples it answered `no-opinion` to.
    pub no_opinion: u64,
    /// Failed calls by kind (`trap`, `deadline`, `invalid_answer`…).
    pub errors: BTreeMap<String, u64>,
    /// Live choice → shadow choice, with counts.
    pub confusion: Vec<Confusion>,
    /// Each choice's share of the compared decisions, live and shadow (0–1).
    pub shares: Vec<Share>,
    /// Mean time per decision, µs.
    pub us_per_decision: Option<f64>,
}

/// One cell of the confusion table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Confusion {
    /// Where the live side sent the requests.
    pub live: String,
    /// Where the shadow would have sent them.
    pub shadow: String,
    /// How many.
    pub count: u64,
}

/// One choice's share on each side.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Share {
    /// A backend id, or `reject 429`.
    pub choice: String,
    /// Its share of the live side's compared decisions.
    pub live: f64,
    /// Its share of the shadow's.
    pub shadow: f64,
    /// The live side's compared decisions that chose it.
    pub live_count: u64,
    /// The shadow's compared decisions that chose it.
    pub shadow_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chose(live: &str, shadow: &str) -> Verdict {
        Verdict::Chose {
            live: live.into(),
            shadow: shadow.into(),
        }
    }

    #[test]
    fn agreement_and_shares_count_only_compared_decisions() {
        let tally = Tally::default();
        let us = Duration::from_micros(3);
        tally.decided(chose("a", "a"), us);
        tally.decided(chose("b", "a"), us);
        tally.decided(chose("b", "a"), us);
        tally.decided(chose("a", "a"), us);
        tally.decided(Verdict::NoOpinion, us);
        tally.decided(Verdict::Error("trap"), us);
        let report = tally.report();
        assert_eq!(report.decisions, 6);
        assert_eq!((report.compared, report.agreed), (4, 2));
        assert_eq!(report.agreement, Some(0.5));
        assert_eq!(report.errors.get("trap"), Some(&1));
        assert_eq!(
            report.confusion,
            vec![
                Confusion {
                    live: "a".into(),
                    shadow: "a".into(),
                    count: 2
                },
                Confusion {
                    live: "b".into(),
                    shadow: "a".into(),
                    count: 2
                },
            ]
        );
        let a = report.shares.iter().find(|s| s.choice == "a").unwrap();
        let b = report.shares.iter().find(|s| s.choice == "b").unwrap();
        assert_eq!((a.live, a.shadow), (0.5, 1.0));
        assert_eq!((b.live, b.shadow), (0.5, 0.0));
    }
}
