//! When a failed attempt may be retried: which requests are safe to replay, and a budget that
//! keeps retries to a share of traffic so a struggling fleet is not hit by a retry storm.

use std::sync::atomic::{AtomicU64, Ordering};
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
///
/// Every request is counted here, by every worker: the counts are relaxed atomics in one
/// bucket per second, not a lock. A bucket is moved to a new second by whoever gets there
/// first; a count racing with that move may be lost, and two workers may both take the last
/// retry — a budget is a share of traffic, and a miscount of one does not change it.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    min_per_window: u64,
    started: Instant,
    /// Indexed by second % WINDOW_SECS.
    buckets: [Bucket; WINDOW_SECS],
}

#[derive(Debug, Default)]
struct Bucket {
    /// The second (since `started`) the counts belong to.
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    /// A budget from the `[retry]` settings.
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            percent: u64::from(config.budget_percent),
            min_per_window: u64::from(config.min_retries_per_second) * WINDOW_SECS as u64,
            started: Instant::now(),
            buckets: Default::default(),
        }
    }

    /// Count a new client request.
    pub fn record_request(&self) {
        self.current().1.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Take one retry from the budget, if any is left.
    pub fn try_retry(&self) -> bool {
        let (now, current) = self.current();
        let (requests, retries) = self
            .buckets
            .iter()
            .filter(|b| now - b.second.load(Ordering::Acquire).min(now) < WINDOW_SECS as u64)
            .fold((0, 0), |(q, r), b| {
                (
                    q + b.requests.load(Ordering::Relaxed),
                    r + b.retries.load(Ordering::Relaxed),
                )
            });
        let allowed = (requests * self.percent / 100).max(self.min_per_window);
        if retries < allowed {
            current.retries.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// The current second and its bucket, cleared first if it still held an older second.
    fn current(&self) -> (u64, &Bucket) {
        let now = self.started.elapsed().as_secs();
        let bucket = &self.buckets[(now % WINDOW_SECS as u64) as usize];
        let held = bucket.second.load(Ordering::Acquire);
        if held != now
            && bucket
                .second
                .compare_exchange(held, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        (now, bucket)
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
    fn requests_older_than_the_window_no_longer_earn_retries() {
        let mut budget = budget(20, 0);
        for _ in 0..100 {
            budget.record_request();
        }
        assert!(budget.try_retry());
        // Eleven seconds later the window holds none of them.
        budget.started -= std::time::Duration::from_secs(WINDOW_SECS as u64 + 1);
        assert!(!budget.try_retry());
        // New traffic earns retries again, in a bucket cleared of the old second's counts.
        for _ in 0..10 {
            budget.record_request();
        }
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 2);
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(is_idempotent(&Method::GET) && is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}
