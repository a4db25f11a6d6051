//! When a failed attempt may be retried: which requests are safe to replay, and a budget that
//! keeps retries to a share of traffic so a struggling fleet is not hit by a retry storm.

use std::sync::Mutex;
use std::time::Instant;

use http::Method;

use crate::config::RetryConfig;

/// Seconds of history the budget looks at.
const WINDOW_SECS: usize = 10;

/// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Retries allowed: at most `percent` of the requests of the last ten seconds, but at least
/// `min_per_second` per second.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    min_per_window: u64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    /// Second (since `started`) the newest bucket belongs to.
    newest: u64,
    /// Per second: (requests, retries), indexed by second % WINDOW_SECS.
    buckets: [(u64, u64); WINDOW_SECS],
}

impl Window {
    /// Move to the current second, clearing buckets that fell out of the window.
    fn advance(&mut self) -> usize {
        let now = self.started.elapsed().as_secs();
        let stale = (now - self.newest).min(WINDOW_SECS as u64);
        for step in 1..=stale {
            self.buckets[((self.newest + step) % WINDOW_SECS as u64) as usize] = (0, 0);
        }
        self.newest = now;
        (now % WINDOW_SECS as u64) as usize
    }
}

impl RetryBudget {
    /// A budget from the `[retry]` settings.
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            percent: u64::from(config.budget_percent),
            min_per_window: u64::from(config.min_retries_per_second) * WINDOW_SECS as u64,
            window: Mutex::new(Window {
                started: Instant::now(),
                newest: 0,
                buckets: [(0, 0); WINDOW_SECS],
            }),
        }
    }

    /// Count a new client request.
    pub fn record_request(&self) {
        let mut window = self.window.lock().expect("retry budget lock");
        let i = window.advance();
        window.buckets[i].0 += 1;
    }

    /// Take one retry from the budget, if any is left.
    pub fn try_retry(&self) -> bool {
        let mut window = self.window.lock().expect("retry budget lock");
        let i = window.advance();
        let (requests, retries) = window
            .buckets
            .iter()
            .fold((0, 0), |(q, r), (bq, br)| (q + bq, r + br));
        let allowed = (requests * self.percent / 100).max(self.min_per_window);
        if retries < allowed {
            window.buckets[i].1 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: u8, min_per_second: u32) -> RetryBudget {
        RetryBudget::new(&RetryConfig {
            budget_percent: percent,
            min_retries_per_second: min_per_second,
            ..RetryConfig::default()
        })
    }

    #[test]
    fn retries_are_capped_at_the_budget_share() {
        let budget = budget(20, 0);
        for _ in 0..100 {
            budget.record_request();
        }
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_floor_allows_retries_at_low_traffic() {
        let budget = budget(20, 1);
        budget.record_request();
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, WINDOW_SECS, "1 per second over the window");
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(is_idempotent(&Method::GET) && is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}
