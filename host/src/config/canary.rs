//! `[plugin.canary]`: a canary started from the config file — the same keys as
//! `POST /admin/plugin/canary` — and the canary settings both share: the gates a step must
//! pass, and what a restart does with a canary in progress. The canary itself runs in the
//! `canary` module.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[plugin.canary]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The candidate plugin component.
    pub path: PathBuf,
    /// Settings handed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Its shares, in percent, increasing.
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
    /// How long each step lasts before its verdict.
    #[serde(default = "default_step_duration", with = "humantime_serde")]
    pub step_duration: Duration,
    /// `client-ip`, `header:NAME` or `cookie:NAME`.
    #[serde(default = "default_key")]
    pub key: String,
    /// The bounds each step must stay within.
    #[serde(default)]
    pub gates: Gates,
    /// What a restart of lbx does with it.
    #[serde(default)]
    pub on_restart: OnRestart,
}

impl CanaryConfig {
    /// Its `config` table as the JSON text its `init` receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

/// The shares a canary takes when none are given.
pub fn default_steps() -> Vec<f64> {
    vec![1.0, 10.0, 50.0, 100.0]
}

/// A step's length when none is given.
pub fn default_step_duration() -> Duration {
    Duration::from_secs(30)
}

/// The key when none is given.
pub fn default_key() -> String {
    "client-ip".into()
}

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

/// What a restart does with a canary in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRestart {
    /// End it: the live version decides every request (the default).
    #[default]
    Abort,
    /// Start it again at the step it had reached, with fresh figures.
    Resume,
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
}

/// Why steps, step duration and gates cannot run a canary, if they cannot.
pub fn plan_problem(steps: &[f64], step_duration: Duration, gates: &Gates) -> Option<String> {
    if steps.is_empty() {
        return Some("steps: give at least one share, e.g. [1, 10, 50, 100]".into());
    }
    if steps.iter().any(|s| !(*s > 0.0 && *s <= 100.0)) {
        return Some("steps: each share is a percentage, more than 0 and at most 100".into());
    }
    if steps.windows(2).any(|w| w[1] <= w[0]) {
        return Some("steps: shares must increase".into());
    }
    if step_duration < Duration::from_millis(100) || step_duration > super::MAX_DURATION {
        return Some("step_duration: from 100ms to 24h".into());
    }
    gates.problem()
}

/// Every problem of `[plugin.canary]`, under its key.
pub fn check(canary: &CanaryConfig, problem: &mut impl FnMut(String, String)) {
    if let Some(message) = plan_problem(&canary.steps, canary.step_duration, &canary.gates) {
        let (field, message) = message.split_once(": ").unwrap_or(("", &message));
        problem(format!("plugin.canary.{field}"), message.to_string());
    }
    let key = &canary.key;
    let plain = |name: &str| !name.is_empty() && !name.contains([';', '=', ' ', ':']);
    let valid = key == "client-ip"
        || key
            .strip_prefix("header:")
            .is_some_and(|n| http::HeaderName::from_bytes(n.as_bytes()).is_ok())
        || key.strip_prefix("cookie:").is_some_and(plain);
    if !valid {
        problem(
            "plugin.canary.key".into(),
            format!(
                "{key:?} is not a key: expected \"client-ip\", \"header:NAME\" or \"cookie:NAME\""
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_canary_table_is_named_by_its_keys() {
        let canary: CanaryConfig = toml::from_str(
            "path = \"v2.wasm\"\nsteps = [50, 10]\nkey = \"ip\"\n[gates]\nmin_requests = 5",
        )
        .unwrap();
        assert_eq!(canary.gates.min_requests, 5);
        assert_eq!(
            canary.gates.max_p99_ratio, 1.5,
            "unset gates keep their defaults"
        );
        let mut problems = Vec::new();
        check(&canary, &mut |key, message| {
            problems.push(format!("{key}: {message}"))
        });
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0], "plugin.canary.steps: shares must increase");
        assert!(problems[1].starts_with("plugin.canary.key: \"ip\" is not a key"));
        assert!(toml::from_str::<CanaryConfig>("path = \"x\"\nstep = 1").is_err());
    }
}
