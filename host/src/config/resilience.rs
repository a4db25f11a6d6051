//! Settings for surviving failure: timeouts, active health checks, passive outlier detection,
//! retries, and the backend connection pool. Every field has a production default, so an
//! empty config gets sensible behaviour.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;

/// `[timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Connecting to a backend (then the attempt fails: retry or 502).
    #[serde(default = "secs::<2>", with = "humantime_serde")]
    pub connect: Duration,
    /// From sending the request to the backend's response headers (then retry or 504).
    #[serde(default = "secs::<30>", with = "humantime_serde")]
    pub response_headers: Duration,
    /// A client must send a request's complete headers within this (slowloris guard). The
    /// same clock closes a client's keep-alive connection that stays idle this long.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub request_headers: Duration,
    /// Overall budget from the moment the whole request (head and body) has arrived to the
    /// backend's response headers, retries included (then 504). Time a client takes to upload
    /// is not counted: `client_body` governs that.
    #[serde(default = "secs::<60>", with = "humantime_serde")]
    pub request: Duration,
    /// A backend sending a response body must send some of it at least this often; a body that
    /// stops for longer is cut off (the client sees it incomplete) and counted against the
    /// backend. A body that keeps moving is never cut, however long it lasts.
    #[serde(default = "secs::<60>", with = "humantime_serde")]
    pub backend_idle: Duration,
    /// An upgraded connection (a WebSocket, say) in which nothing moves either way for this
    /// long is closed.
    #[serde(default = "secs::<3600>", with = "humantime_serde")]
    pub tunnel_idle: Duration,
    /// A client uploading a request body must send some of it at least this often (then 408;
    /// never counted against a backend).
    #[serde(default = "secs::<30>", with = "humantime_serde")]
    pub client_body: Duration,
    /// After SIGTERM/SIGINT, how long in-flight requests get to finish.
    #[serde(default = "secs::<30>", with = "humantime_serde")]
    pub drain: Duration,
}

/// `[health]` (defaults for every backend) or a backend's own `health = { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Path probed with GET; no path means no active checks.
    pub path: Option<String>,
    /// Time between probes.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// A probe not answered within this counts as failed.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Statuses that count as healthy, e.g. `"200-399"` or `"204"`.
    pub expected_status: Option<String>,
    /// Consecutive passing probes that bring a down backend back.
    pub rise: Option<u32>,
    /// Consecutive failing probes that take a backend down.
    pub fall: Option<u32>,
}

/// Active health checking of one backend, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path probed with GET.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Lowest healthy status.
    pub status_min: u16,
    /// Highest healthy status.
    pub status_max: u16,
    /// Passing probes to come back.
    pub rise: u32,
    /// Failing probes to go down.
    pub fall: u32,
}

impl HealthSettings {
    /// Whether nothing is set (every value comes from the defaults).
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// `self` with unset fields taken from `defaults`.
    pub fn over(&self, defaults: &HealthSettings) -> HealthSettings {
        HealthSettings {
            path: self.path.clone().or_else(|| defaults.path.clone()),
            interval: self.interval.or(defaults.interval),
            timeout: self.timeout.or(defaults.timeout),
            expected_status: self
                .expected_status
                .clone()
                .or_else(|| defaults.expected_status.clone()),
            rise: self.rise.or(defaults.rise),
            fall: self.fall.or(defaults.fall),
        }
    }

    /// The effective check, or `None` when no path is set. Problems are reported under `key`.
    pub fn resolve(&self, key: &str) -> Result<Option<HealthCheck>, Vec<Problem>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(Problem {
                key: format!("{key}.{field}"),
                message,
            })
        };
        if !path.starts_with('/') {
            problem("path", format!("{path:?} must start with /"));
        }
        let interval = self.interval.unwrap_or(Duration::from_secs(2));
        let timeout = self.timeout.unwrap_or(Duration::from_secs(1));
        for (field, value) in [("interval", interval), ("timeout", timeout)] {
            if value.is_zero() {
                problem(field, "must be greater than 0".into());
            } else {
                super::check_duration(field, value, &mut |field, message| problem(&field, message));
            }
        }
        let (status_min, status_max) =
            match parse_status_range(self.expected_status.as_deref().unwrap_or("200-399")) {
                Ok(range) => range,
                Err(message) => {
                    problem("expected_status", message);
                    (200, 399)
                }
            };
        let rise = self.rise.unwrap_or(2);
        let fall = self.fall.unwrap_or(3);
        if rise == 0 {
            problem("rise", "must be at least 1".into());
        }
        if fall == 0 {
            problem("fall", "must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(HealthCheck {
            path: path.clone(),
            interval,
            timeout,
            status_min,
            status_max,
            rise,
            fall,
        }))
    }
}

/// `"200-399"` or `"204"`.
fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=599).contains(code))
    };
    let range = match text.split_once('-') {
        Some((low, high)) => parse(low).zip(parse(high)),
        None => parse(text).map(|code| (code, code)),
    };
    match range {
        Some((low, high)) if low <= high => Ok((low, high)),
        _ => Err(format!(
            "{text:?} is not a status or range like \"200-399\" (codes 100-599, low before high)"
        )),
    }
}

/// `[outlier]`: passive health, from the outcome of real requests.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failures (connection errors, and 5xx if `count_5xx`) that eject a backend.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Whether 5xx responses count as failures.
    #[serde(default = "super::yes")]
    pub count_5xx: bool,
    /// First ejection lasts this long; each repeated ejection lasts one more of it.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub base_ejection: Duration,
    /// Longest an ejection may last.
    #[serde(default = "secs::<300>", with = "humantime_serde")]
    pub max_ejection: Duration,
    /// Never eject more than this share of the backends (0-100): a cascade must not empty
    /// the pool.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u8,
}

/// `[retry]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included (1 = never retry).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Retries may add at most this share of requests (0-100) ...
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u8,
    /// ... but at least this many per second, so low traffic can still retry.
    #[serde(default = "default_min_retries_per_second")]
    pub min_retries_per_second: u32,
    /// Replay requests with non-idempotent methods (POST, PATCH) after they reached a
    /// backend. Off by default: the backend may have acted on them.
    #[serde(default)]
    pub non_idempotent: bool,
    /// Request bodies up to this size are recorded so a retry can send them again; a larger
    /// body that already went to a failed backend is not replayed.
    #[serde(default = "default_replay_limit")]
    pub replay_limit_bytes: usize,
}

/// `[pool]`: keep-alive connections to backends.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Idle connections kept per backend.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_backend: usize,
    /// Idle connections older than this are closed instead of reused.
    #[serde(default = "secs::<60>", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}
fn default_consecutive_failures() -> u32 {
    5
}
fn default_max_ejection_percent() -> u8 {
    50
}
fn default_max_attempts() -> u32 {
    3
}
fn default_budget_percent() -> u8 {
    20
}
fn default_min_retries_per_second() -> u32 {
    10
}
fn default_replay_limit() -> usize {
    64 * 1024
}
fn default_max_idle() -> usize {
    64
}

macro_rules! default_from_serde {
    ($($ty:ty),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                toml::from_str("").expect("every field has a default")
            }
        }
    )*};
}
default_from_serde!(TimeoutConfig, OutlierConfig, RetryConfig, PoolConfig);

/// Largest `retry.replay_limit_bytes`: the recording is held in memory per request.
const MAX_REPLAY_LIMIT: usize = 64 * 1024 * 1024;
/// Most `retry.max_attempts`.
const MAX_ATTEMPTS: u32 = 16;

/// Problems with the resilience sections, each under its key.
pub fn validate(
    timeouts: &TimeoutConfig,
    outlier: &OutlierConfig,
    retry: &RetryConfig,
    pool: &PoolConfig,
    problems: &mut Vec<Problem>,
) {
    let mut report = |key: String, message: String| problems.push(Problem { key, message });
    // (key, value, whether 0 is meaningless for it)
    for (key, value, nonzero) in [
        ("timeouts.connect", timeouts.connect, true),
        ("timeouts.response_headers", timeouts.response_headers, true),
        ("timeouts.request_headers", timeouts.request_headers, true),
        ("timeouts.request", timeouts.request, true),
        ("timeouts.client_body", timeouts.client_body, true),
        ("timeouts.backend_idle", timeouts.backend_idle, true),
        ("timeouts.tunnel_idle", timeouts.tunnel_idle, true),
        ("timeouts.drain", timeouts.drain, false),
        ("outlier.base_ejection", outlier.base_ejection, true),
        ("outlier.max_ejection", outlier.max_ejection, false),
        ("pool.idle_timeout", pool.idle_timeout, false),
    ] {
        if nonzero && value.is_zero() {
            report(key.into(), "must be greater than 0".into());
        }
        super::check_duration(key, value, &mut report);
    }
    let mut problem = |key: &str, message: &str| report(key.into(), message.into());
    if outlier.consecutive_failures == 0 {
        problem("outlier.consecutive_failures", "must be at least 1");
    }
    if outlier.max_ejection < outlier.base_ejection {
        problem(
            "outlier.max_ejection",
            "must not be shorter than base_ejection",
        );
    }
    if outlier.max_ejection_percent > 100 {
        problem("outlier.max_ejection_percent", "must be between 0 and 100");
    }
    if retry.max_attempts == 0 || retry.max_attempts > MAX_ATTEMPTS {
        problem(
            "retry.max_attempts",
            "must be between 1 (no retries) and 16",
        );
    }
    if retry.replay_limit_bytes > MAX_REPLAY_LIMIT {
        problem(
            "retry.replay_limit_bytes",
            "must be at most 67108864 (64 MiB): the recording is kept in memory per request",
        );
    }
    if retry.budget_percent > 100 {
        problem("retry.budget_percent", "must be between 0 and 100");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse() {
        assert_eq!(parse_status_range("200-399"), Ok((200, 399)));
        assert_eq!(parse_status_range("204"), Ok((204, 204)));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("2xx").is_err());
        assert!(parse_status_range("700").is_err());
    }

    #[test]
    fn backend_health_overrides_the_global_defaults_field_by_field() {
        let global = HealthSettings {
            path: Some("/healthz".into()),
            interval: Some(Duration::from_secs(5)),
            ..HealthSettings::default()
        };
        let own = HealthSettings {
            interval: Some(Duration::from_secs(1)),
            fall: Some(1),
            ..HealthSettings::default()
        };
        let check = own
            .over(&global)
            .resolve("backend[0].health")
            .unwrap()
            .unwrap();
        assert_eq!(check.path, "/healthz");
        assert_eq!(check.interval, Duration::from_secs(1));
        assert_eq!((check.rise, check.fall), (2, 1));
        assert_eq!((check.status_min, check.status_max), (200, 399));
    }

    #[test]
    fn no_path_means_no_active_checks() {
        assert_eq!(HealthSettings::default().resolve("health"), Ok(None));
    }

    #[test]
    fn bad_health_settings_name_their_keys() {
        let bad = HealthSettings {
            path: Some("healthz".into()),
            expected_status: Some("ok".into()),
            rise: Some(0),
            ..HealthSettings::default()
        };
        let keys: Vec<String> = bad
            .resolve("backend[2].health")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "backend[2].health.path",
                "backend[2].health.expected_status",
                "backend[2].health.rise"
            ]
        );
    }

    #[test]
    fn defaults_are_production_values() {
        let retry = RetryConfig::default();
        assert_eq!((retry.max_attempts, retry.budget_percent), (3, 20));
        assert!(!retry.non_idempotent);
        assert_eq!(
            TimeoutConfig::default().request_headers,
            Duration::from_secs(10)
        );
    }
}
