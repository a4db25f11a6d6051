//! One side's outcomes during a canary step: decisions and how many fell back, attempts, the
//! errors among them, and a latency histogram — counted with relaxed atomic adds on the request
//! path, compared by the gates at the step's end.
//!
//! An error is an attempt that failed by the backend's fault or answered 5xx (lbx's own 5xx for
//! a failed last attempt included); a client's fault is not counted at all: a client that goes
//! away says nothing about the version that routed it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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

    /// The figures so far.
    pub fn report(&self) -> ArmReport {
        let decisions = self.decisions.load(Ordering::Relaxed);
        let fallbacks = self.fallbacks.load(Ordering::Relaxed);
        let attempts = self.attempts.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        ArmReport {
            decisions,
            fallbacks,
            attempts,
            errors,
            error_rate: rate(errors, attempts),
            fallback_rate: rate(fallbacks, decisions),
            p99_ms: self.p99_seconds().map(|s| s * 1000.0),
        }
    }

    /// The upper bound of the bucket holding the 99th percentile of response-head times.
    fn p99_seconds(&self) -> Option<f64> {
        let counts = self.latency.counts();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The ceil(0.99 × n)-th smallest observation.
        let rank = (total * 99).div_ceil(100);
        let bounds = self.latency.bounds_seconds();
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bounds.get(i).copied().unwrap_or(f64::INFINITY));
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
