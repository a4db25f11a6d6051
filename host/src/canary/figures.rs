//! One side's outcomes during a canary step: decisions and how many fell back, attempts, the
//! errors among them, and a latency histogram — counted with relaxed atomic adds on the request
//! path, compared by the gates at the step's end.
//!
//! An error is an attempt that failed by the backend's fault or answered 5xx (lbx's own 5xx for
//! a failed last attempt included); a client's fault is not counted at all: a client that goes
//! away says nothing about the version that routed it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::metrics::{HTTP_BOUNDS, LatencyHistogram};
use crate::outcome::{Fault, Outcome};
use crate::plugin::DecidedBy;

/// Time from an attempt's start to the response head.
type Latency = LatencyHistogram<{ HTTP_BOUNDS.len() }>;

/// One side's figures for one step.
#[derive(Debug)]
pub struct ArmFigures {
    decisions: AtomicU64,
    fallbacks: AtomicU64,
    attempts: AtomicU64,
    errors: AtomicU64,
    latency: Latency,
}

impl Default for ArmFigures {
    fn default() -> Self {
        Self {
            decisions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: LatencyHistogram::new(&HTTP_BOUNDS),
        }
    }
}

impl ArmFigures {
    /// A request's first decision, made by `by`.
    pub fn decided(&self, by: DecidedBy) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if matches!(
            by,
            DecidedBy::FallbackAfterPluginError
                | DecidedBy::FallbackNoOpinion
                | DecidedBy::FallbackPluginDisabled
        ) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How one attempt ended.
    pub fn attempted(&self, outcome: &Outcome) {
        if outcome.fault == Some(Fault::Client) {
            return;
        }
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let server_error = [outcome.status, outcome.answered]
            .into_iter()
            .flatten()
            .any(|s| s.is_server_error());
        if outcome.fault == Some(Fault::Backend) || server_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(ttfb) = outcome.ttfb {
            self.latency.observe(ttfb);
        }
    }

    /// The counts so far, to add up across nodes (fleet mode) or report.
    pub fn counts(&self) -> ArmCounts {
        ArmCounts {
            decisions: self.decisions.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.counts().to_vec(),
        }
    }

    /// The figures so far.
    pub fn report(&self) -> ArmReport {
        self.counts().report()
    }
}

/// One side's raw counts: what a node publishes in fleet mode so that a fleet-wide canary is
/// judged on the sum over every node ([`ArmCounts::add`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    /// Requests this side decided.
    pub decisions: u64,
    /// Of those, decided by the fallback.
    pub fallbacks: u64,
    /// Attempts (client faults not counted).
    pub attempts: u64,
    /// Of those, failed by the backend or answered 5xx.
    pub errors: u64,
    /// Time to the response head, counts per bucket of the HTTP latency bounds.
    pub latency: Vec<u64>,
}

impl ArmCounts {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &ArmCounts) {
        self.decisions += other.decisions;
        self.fallbacks += other.fallbacks;
        self.attempts += other.attempts;
        self.errors += other.errors;
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            *mine += theirs;
        }
    }

    /// The rates and p99 these counts give.
    pub fn report(&self) -> ArmReport {
        ArmReport {
            decisions: self.decisions,
            fallbacks: self.fallbacks,
            attempts: self.attempts,
            errors: self.errors,
            error_rate: rate(self.errors, self.attempts),
            fallback_rate: rate(self.fallbacks, self.decisions),
            p99_ms: self.p99_seconds().map(|s| s * 1000.0),
        }
    }

    /// The upper bound of the bucket holding the 99th percentile (the last bucket: +∞).
    fn p99_seconds(&self) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 99).div_ceil(100);
        let mut seen = 0;
        for (i, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(
                    HTTP_BOUNDS
                        .get(i)
                        .filter(|_| i + 1 < HTTP_BOUNDS.len())
                        .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9),
                );
            }
        }
        None
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One side's figures, as the gates and the admin API see them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArmReport {
    /// Requests this side decided (first decisions).
    pub decisions: u64,
    /// Of those, answered by the fallback (the plugin failed or had no opinion).
    pub fallbacks: u64,
    /// Attempts counted (client faults excluded).
    pub attempts: u64,
    /// Attempts that failed by the backend's fault or answered 5xx.
    pub errors: u64,
    /// `errors / attempts`.
    pub error_rate: f64,
    /// `fallbacks / decisions`.
    pub fallback_rate: f64,
    /// The 99th percentile of the time to the response head, as its bucket's upper bound (ms).
    pub p99_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;

    fn answered(status: u16, ms: u64) -> Outcome {
        let mut outcome = Outcome::failed(0, Fault::Backend, Duration::from_millis(ms), 0);
        outcome.fault = None;
        outcome.status = Some(StatusCode::from_u16(status).unwrap());
        outcome.ttfb = Some(Duration::from_millis(ms));
        outcome
    }

    #[test]
    fn errors_are_backend_faults_and_5xx_and_client_faults_count_for_nothing() {
        let figures = ArmFigures::default();
        for _ in 0..197 {
            figures.attempted(&answered(200, 1));
        }
        figures.attempted(&answered(503, 1));
        figures.attempted(&Outcome::failed(0, Fault::Backend, Duration::ZERO, 0));
        figures.attempted(&answered(404, 30));
        figures.attempted(&Outcome::failed(0, Fault::Client, Duration::ZERO, 0));
        figures.decided(DecidedBy::Plugin);
        figures.decided(DecidedBy::FallbackAfterPluginError);
        let report = figures.report();
        assert_eq!((report.attempts, report.errors), (200, 2));
        assert_eq!(report.error_rate, 0.01);
        assert_eq!(report.fallback_rate, 0.5);
        assert_eq!(report.p99_ms, Some(1.0), "198 of 199 heads within 1 ms");
    }
}
