//! Live per-backend statistics: in-flight requests, latency EWMA, consecutive failures,
//! passive ejection (outlier detection) and the verdict of active health checks. All lock-free
//! atomics: they are touched on every request.
//!
//! Stats live in an `Arc` owned by the backend's identity, so a rebuilt backend set can carry
//! them over for backends that remain (counters must not reset on reload).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::traffic::Traffic;
use crate::config::OutlierConfig;

/// Weight of a new latency sample in the moving average (1/8, as in TCP's SRTT).
const EWMA_SHIFT: u32 = 3;

/// Counters and gauges for one backend.
#[derive(Debug)]
pub struct LiveStats {
    in_flight: AtomicU32,
    ewma_latency_us: AtomicU32,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the backend is ejected (0 = not ejected).
    ejected_until_ms: AtomicU64,
    /// Ejections in the current streak; each lasts one `base_ejection` longer than the last.
    ejections: AtomicU32,
    /// When the last ejection started (ms since `epoch`), to end a streak after calm.
    last_ejection_ms: AtomicU64,
    /// Set by active health checks.
    down: AtomicBool,
    /// Set by an operator (admin API): no new requests, in-flight ones finish.
    draining: AtomicBool,
    requests: AtomicU64,
    /// What it has served, for metrics and the admin API.
    traffic: Traffic,
    epoch: Instant,
}

impl Default for LiveStats {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            ewma_latency_us: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            last_ejection_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            traffic: Traffic::default(),
            epoch: Instant::now(),
        }
    }
}

impl LiveStats {
    /// Requests currently being served.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Moving average of time to response headers, in µs (0 before the first response).
    pub fn ewma_latency_us(&self) -> u32 {
        self.ewma_latency_us.load(Ordering::Relaxed)
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Requests sent to this backend since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// What it has served: responses, errors, retries, bytes, latencies.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Whether the backend may receive new requests: not failing its health check, not
    /// ejected for failing real requests, and not drained by an operator.
    pub fn is_usable(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
            && !self.draining.load(Ordering::Relaxed)
            && !self.is_ejected()
    }

    /// Whether an operator drained the backend.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Drain (no new requests) or undrain the backend.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Whether outlier detection has taken the backend out of rotation for now.
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.millis_now() < until
    }

    /// Whether active health checks consider the backend down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Record the active health verdict; returns whether it changed (a health transition).
    pub fn set_down(&self, down: bool) -> bool {
        let changed = self.down.swap(down, Ordering::Relaxed) != down;
        if changed {
            self.traffic.health_changed();
        }
        changed
    }

    /// End an ejection early: active health checks saw the backend recover.
    pub fn clear_ejection(&self) {
        self.ejected_until_ms.store(0, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Count a request as started; the returned guard counts it as finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
        }
    }

    /// The backend answered: fold the latency into the average and clear the failure streak.
    pub fn record_success(&self, latency: Duration) {
        let sample = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        // A lost update under contention only drops one sample from an average; no CAS loop.
        let old = self.ewma_latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            let old = i64::from(old);
            (old + ((i64::from(sample) - old) >> EWMA_SHIFT)) as u32
        };
        self.ewma_latency_us.store(new.max(1), Ordering::Relaxed);
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed on this backend (connection error, timeout, or 5xx). After
    /// `consecutive_failures` in a row the backend is ejected, if `may_eject` (the caller's
    /// max-ejection-percent check) allows. Each ejection in a streak lasts one `base_ejection`
    /// longer than the previous, up to `max_ejection`; a streak ends after `max_ejection` calm.
    pub fn record_failure(&self, outlier: &OutlierConfig, may_eject: bool) -> Ejection {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < outlier.consecutive_failures || self.is_ejected() {
            return Ejection::NotEjected;
        }
        if !may_eject {
            return Ejection::Spared { failures };
        }
        // Saturating everywhere: a configured duration must never overflow the request path.
        let now = self.millis_now();
        let since_last = now.saturating_sub(self.last_ejection_ms.load(Ordering::Relaxed));
        let calm_ms = millis(outlier.max_ejection.saturating_add(outlier.base_ejection));
        let previous = self.ejections.load(Ordering::Relaxed);
        let streak = if since_last > calm_ms {
            1
        } else {
            previous.saturating_add(1)
        };
        let duration = outlier
            .base_ejection
            .checked_mul(streak)
            .unwrap_or(Duration::MAX)
            .min(outlier.max_ejection);
        self.ejections.store(streak, Ordering::Relaxed);
        self.last_ejection_ms.store(now, Ordering::Relaxed);
        self.ejected_until_ms.store(
            now.saturating_add(millis(duration)).max(1),
            Ordering::Relaxed,
        );
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.traffic.ejected();
        Ejection::Ejected { failures, duration }
    }

    fn millis_now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a failure did to the backend's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    /// Still in rotation.
    NotEjected,
    /// Reached the threshold but kept: ejecting it would exceed the max ejection percent.
    Spared {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Just taken out of rotation.
    Ejected {
        /// Consecutive failures that caused it.
        failures: u32,
        /// For how long.
        duration: Duration,
    },
}

/// A request counted as in flight on one backend until this is dropped.
#[derive(Debug)]
pub struct InFlight {
    stats: Arc<LiveStats>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlier(after: u32, base_ms: u64, max_ms: u64) -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: after,
            base_ejection: Duration::from_millis(base_ms),
            max_ejection: Duration::from_millis(max_ms),
            ..OutlierConfig::default()
        }
    }

    #[test]
    fn in_flight_counts_until_guard_drops() {
        let stats = Arc::new(LiveStats::default());
        let a = stats.start_request();
        let b = stats.start_request();
        assert_eq!(stats.in_flight(), 2);
        drop(a);
        assert_eq!(stats.in_flight(), 1);
        drop(b);
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.requests(), 2);
    }

    #[test]
    fn ewma_moves_toward_new_samples() {
        let stats = LiveStats::default();
        stats.record_success(Duration::from_micros(800));
        assert_eq!(stats.ewma_latency_us(), 800);
        stats.record_success(Duration::from_micros(1600));
        assert_eq!(stats.ewma_latency_us(), 900);
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_breaks_the_streak() {
        let stats = LiveStats::default();
        let config = outlier(3, 60_000, 600_000);
        stats.record_failure(&config, true);
        stats.record_failure(&config, true);
        stats.record_success(Duration::from_millis(1));
        assert_eq!(stats.record_failure(&config, true), Ejection::NotEjected);
        assert_eq!(stats.record_failure(&config, true), Ejection::NotEjected);
        assert_eq!(
            stats.record_failure(&config, true),
            Ejection::Ejected {
                failures: 3,
                duration: Duration::from_secs(60)
            }
        );
        assert!(stats.is_ejected() && !stats.is_usable());
        assert_eq!(stats.traffic().ejections(), 1);
    }

    #[test]
    fn repeated_ejections_last_longer_up_to_the_cap() {
        let stats = LiveStats::default();
        let config = outlier(1, 10, 25);
        let mut durations = Vec::new();
        for _ in 0..3 {
            match stats.record_failure(&config, true) {
                Ejection::Ejected { duration, .. } => durations.push(duration.as_millis()),
                other => panic!("expected an ejection, got {other:?}"),
            }
            while stats.is_ejected() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(durations, [10, 20, 25]);
    }

    #[test]
    fn huge_ejection_settings_saturate_instead_of_panicking() {
        let stats = LiveStats::default();
        let config = OutlierConfig {
            consecutive_failures: 1,
            base_ejection: Duration::MAX,
            max_ejection: Duration::MAX,
            ..OutlierConfig::default()
        };
        for _ in 0..3 {
            stats.clear_ejection();
            assert!(matches!(
                stats.record_failure(&config, true),
                Ejection::Ejected { .. }
            ));
        }
        assert!(stats.is_ejected());
    }

    #[test]
    fn a_spared_backend_stays_in_rotation() {
        let stats = LiveStats::default();
        assert_eq!(
            stats.record_failure(&outlier(1, 1000, 1000), false),
            Ejection::Spared { failures: 1 }
        );
        assert!(stats.is_usable());
    }

    #[test]
    fn active_health_verdict_takes_a_backend_out() {
        let stats = LiveStats::default();
        assert!(stats.set_down(true));
        assert!(!stats.set_down(true), "no change the second time");
        assert!(!stats.is_usable());
        assert!(stats.set_down(false));
        assert!(stats.is_usable());
        assert_eq!(stats.traffic().health_transitions(), 2);
    }
}
