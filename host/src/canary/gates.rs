//! The gates a canary step must pass: the candidate's own outcomes against the live version's
//! over the same window — error rate, p99 time to the response head, fallback rate — once the
//! candidate has decided enough requests for a verdict. In the way of Flagger's and Argo
//! Rollouts' analysis, but relative to the version running beside it rather than to fixed
//! thresholds, so a bad hour for a backend fails neither side.

use serde::{Deserialize, Serialize};

use super::figures::ArmReport;

/// The bounds a candidate must stay within, relative to the live version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// Requests the candidate must have decided in the step before any verdict.
    pub min_requests: u64,
    /// Largest error rate above the live side's (0.01: one percentage point).
    pub max_error_rate_increase: f64,
    /// Largest p99 (time to the response head) as a multiple of the live side's...
    pub max_p99_ratio: f64,
    /// ...unless it is at most this many milliseconds above it: sub-millisecond noise is not a
    /// regression.
    pub p99_slack_ms: f64,
    /// Largest fallback rate above the live side's.
    pub max_fallback_rate_increase: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            min_requests: 50,
            max_error_rate_increase: 0.01,
            max_p99_ratio: 1.5,
            p99_slack_ms: 5.0,
            max_fallback_rate_increase: 0.01,
        }
    }
}

/// What the gates say of a step's figures.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within every bound.
    Pass,
    /// Outside a bound: the reasons, with the figures.
    Fail(Vec<String>),
    /// Not enough requests yet.
    Inconclusive(String),
}

impl Gates {
    /// Why these gates cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let share = |v: f64| (0.0..=1.0).contains(&v);
        if !share(self.max_error_rate_increase) || !share(self.max_fallback_rate_increase) {
            Some("gates: the rate increases must be between 0 and 1".into())
        } else if !(self.max_p99_ratio >= 1.0 && self.max_p99_ratio.is_finite()) {
            Some("gates: max_p99_ratio must be at least 1".into())
        } else if !(self.p99_slack_ms >= 0.0 && self.p99_slack_ms.is_finite()) {
            Some("gates: p99_slack_ms must be 0 or more".into())
        } else {
            None
        }
    }

    /// Judge the candidate's figures against the live side's.
    pub fn judge(&self, live: &ArmReport, candidate: &ArmReport) -> Verdict {
        if candidate.decisions < self.min_requests {
            return Verdict::Inconclusive(format!(
                "{} of the {} requests needed for a verdict",
                candidate.decisions, self.min_requests
            ));
        }
        let mut failed = Vec::new();
        let percent = |r: f64| format!("{:.2}%", r * 100.0);
        if candidate.error_rate > live.error_rate + self.max_error_rate_increase {
            failed.push(format!(
                "error rate {} ({} of {} attempts) against {} live",
                percent(candidate.error_rate),
                candidate.errors,
                candidate.attempts,
                percent(live.error_rate)
            ));
        }
        if candidate.fallback_rate > live.fallback_rate + self.max_fallback_rate_increase {
            failed.push(format!(
                "fallback rate {} against {} live",
                percent(candidate.fallback_rate),
                percent(live.fallback_rate)
            ));
        }
        if let (Some(mine), Some(theirs)) = (candidate.p99_ms, live.p99_ms)
            && mine > theirs * self.max_p99_ratio
            && mine > theirs + self.p99_slack_ms
        {
            failed.push(format!(
                "p99 {mine} ms against {theirs} ms live (at most {}× or {} ms more)",
                self.max_p99_ratio, self.p99_slack_ms
            ));
        }
        if failed.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(decisions: u64, errors: u64, fallbacks: u64, p99_ms: f64) -> ArmReport {
        ArmReport {
            decisions,
            fallbacks,
            attempts: decisions,
            errors,
            error_rate: errors as f64 / decisions as f64,
            fallback_rate: fallbacks as f64 / decisions as f64,
            p99_ms: Some(p99_ms),
        }
    }

    #[test]
    fn a_verdict_needs_enough_requests_then_every_bound_is_checked() {
        let gates = Gates::default();
        let live = arm(1000, 10, 0, 10.0);
        assert!(matches!(
            gates.judge(&live, &arm(49, 49, 0, 10.0)),
            Verdict::Inconclusive(_)
        ));
        assert_eq!(gates.judge(&live, &arm(100, 1, 1, 10.0)), Verdict::Pass);
        assert_eq!(gates.judge(&live, &arm(100, 2, 0, 15.0)), Verdict::Pass);
        let fast = arm(1000, 10, 0, 1.0);
        assert_eq!(
            gates.judge(&fast, &arm(100, 1, 0, 5.0)),
            Verdict::Pass,
            "within the slack"
        );
        let Verdict::Fail(reasons) = gates.judge(&live, &arm(100, 30, 5, 25.0)) else {
            panic!("should fail");
        };
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("error rate 30.00% (30 of 100 attempts)"));
        assert!(gates.problem().is_none());
        let bad = Gates {
            max_p99_ratio: 0.5,
            ..Gates::default()
        };
        assert!(bad.problem().is_some());
    }
}
