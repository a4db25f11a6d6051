//! Live per-backend statistics: in-flight requests, latency EWMA, consecutive failures and
//! passive ejection. All lock-free atomics: they are touched on every request.
//!
//! Stats live in an `Arc` owned by the backend's identity, so a rebuilt backend set can carry
//! them over for backends that remain (counters must not reset on reload).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    requests: AtomicU64,
    epoch: Instant,
}

impl Default for LiveStats {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            ewma_latency_us: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
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

    /// Whether the backend is out of rotation after repeated failures.
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.millis_now() < until
    }

    /// Count a request as started; the returned guard counts it as finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
        }
    }

    /// The backend answered: fold the latency into the average and clear failures.
    pub fn record_success(&self, latency: Duration) {
        let sample = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        // A lost update under contention only drops one sample from an average; no CAS loop needed.
        let old = self.ewma_latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            let old = i64::from(old);
            (old + ((i64::from(sample) - old) >> EWMA_SHIFT)) as u32
        };
        self.ewma_latency_us.store(new.max(1), Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejected_until_ms.store(0, Ordering::Relaxed);
    }

    /// The backend could not be reached. After `eject_after` in a row it is ejected for
    /// `eject_for`; once that passes it gets traffic again, and one more failure ejects it anew.
    pub fn record_failure(&self, eject_after: u32, eject_for: Duration) -> Ejection {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= eject_after && !self.is_ejected() {
            let until = self.millis_now() + eject_for.as_millis() as u64;
            self.ejected_until_ms.store(until.max(1), Ordering::Relaxed);
            Ejection::Ejected { failures }
        } else {
            Ejection::NotEjected
        }
    }

    fn millis_now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// What a failure did to the backend's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    /// Still in rotation.
    NotEjected,
    /// Just taken out of rotation.
    Ejected {
        /// Consecutive failures that caused it.
        failures: u32,
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
    fn repeated_failures_eject_and_success_restores() {
        let stats = LiveStats::default();
        let eject_for = Duration::from_secs(60);
        assert_eq!(stats.record_failure(3, eject_for), Ejection::NotEjected);
        assert_eq!(stats.record_failure(3, eject_for), Ejection::NotEjected);
        assert_eq!(
            stats.record_failure(3, eject_for),
            Ejection::Ejected { failures: 3 }
        );
        assert!(stats.is_ejected());
        stats.record_success(Duration::from_millis(1));
        assert!(!stats.is_ejected());
        assert_eq!(stats.consecutive_failures(), 0);
    }

    #[test]
    fn ejection_expires() {
        let stats = LiveStats::default();
        stats.record_failure(1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!stats.is_ejected());
    }
}
