//! The plugin circuit breaker: after too many consecutive failed decisions the plugin is
//! disabled and the built-in fallback answers, so a broken plugin costs one failed call per
//! request only until the breaker trips, not forever.
//!
//! After the cool-down the next decision probes the plugin again: success closes the breaker,
//! failure opens it for another cool-down. Loading a new plugin version closes it at once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a failed decision changed the breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    /// Still closed (below the threshold), or already open.
    No,
    /// This failure disabled the plugin.
    Yes,
}

/// A breaker shared by every worker. Lock-free: two counters.
#[derive(Debug)]
pub struct Breaker {
    threshold: AtomicU32,
    cooldown_ms: AtomicU64,
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the plugin is disabled; 0 when closed.
    open_until_ms: AtomicU64,
}

impl Breaker {
    /// Trip after `threshold` consecutive failures (0 never trips); stay open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: AtomicU32::new(threshold),
            cooldown_ms: AtomicU64::new(cooldown.as_millis() as u64),
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        }
    }

    /// Whether the plugin may be asked now (closed, or open with the cool-down over).
    pub fn allows(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    /// Whether the plugin is disabled right now.
    pub fn is_open(&self) -> bool {
        !self.allows()
    }

    /// Change the settings (a config reload); the current state is kept.
    pub fn configure(&self, threshold: u32, cooldown: Duration) {
        self.threshold.store(threshold, Ordering::Relaxed);
        self.cooldown_ms
            .store(cooldown.as_millis() as u64, Ordering::Relaxed);
    }

    /// A decision succeeded. Returns true if this closed an open breaker.
    pub fn record_success(&self) -> bool {
        // Called on every decision by every worker: read before writing, so the common case
        // leaves the shared cache line alone.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        self.open_until_ms.load(Ordering::Relaxed) != 0
            && self.open_until_ms.swap(0, Ordering::Relaxed) != 0
    }

    /// A decision failed.
    pub fn record_failure(&self) -> Tripped {
        let failures = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let threshold = self.threshold.load(Ordering::Relaxed);
        if threshold == 0 || failures < threshold {
            return Tripped::No;
        }
        // Opening is a compare-and-swap from "closed or expired" so that many workers failing
        // at once trip it once.
        let now = self.now_ms();
        let until = now.saturating_add(self.cooldown_ms.load(Ordering::Relaxed));
        let current = self.open_until_ms.load(Ordering::Relaxed);
        let expired_or_closed = current == 0 || now >= current;
        if expired_or_closed
            && self
                .open_until_ms
                .compare_exchange(current, until.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Tripped::Yes;
        }
        Tripped::No
    }

    /// A new plugin version: forget its predecessor's failures.
    pub fn reset(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Relaxed);
    }

    /// The configured cool-down.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms.load(Ordering::Relaxed))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_the_threshold_and_probes_again_after_the_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        assert_eq!(breaker.record_failure(), Tripped::No);
        assert_eq!(breaker.record_failure(), Tripped::No);
        assert!(breaker.allows());
        assert_eq!(breaker.record_failure(), Tripped::Yes);
        assert!(breaker.is_open());
        assert_eq!(breaker.record_failure(), Tripped::No, "already open");

        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows(), "half-open after the cool-down");
        assert_eq!(
            breaker.record_failure(),
            Tripped::Yes,
            "a failed probe re-opens"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.record_success(), "a good probe closes it");
        assert!(breaker.allows());
    }

    #[test]
    fn a_success_resets_the_count_and_zero_never_trips() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        assert_eq!(breaker.record_failure(), Tripped::No);

        let never = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            assert_eq!(never.record_failure(), Tripped::No);
        }
    }
}
