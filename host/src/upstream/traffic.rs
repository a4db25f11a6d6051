//! What each backend has served: responses by status class, failed and retried attempts,
//! ejections, health transitions, body bytes, and latency histograms. Part of the backend's
//! [`LiveStats`](super::LiveStats), so it is carried across backend-set rebuilds by id like
//! the rest and never resets on reload.
//!
//! Everything is a relaxed atomic: a proxied request adds to a handful of these (one response
//! class, two histogram observations, the byte counts of its body pieces).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::metrics::{HTTP_BOUNDS, LatencyHistogram};

/// A latency histogram with the HTTP buckets.
pub type HttpHistogram = LatencyHistogram<{ HTTP_BOUNDS.len() }>;

/// The status classes counted, in order (`1xx` … `5xx`).
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One backend's traffic figures.
#[derive(Debug)]
pub struct Traffic {
    responses: [AtomicU64; STATUS_CLASSES.len()],
    backend_errors: AtomicU64,
    retries: AtomicU64,
    ejections: AtomicU64,
    health_transitions: AtomicU64,
    request_body_bytes: AtomicU64,
    response_body_bytes: AtomicU64,
    upstream_latency: HttpHistogram,
    total_latency: HttpHistogram,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            responses: [const { AtomicU64::new(0) }; STATUS_CLASSES.len()],
            backend_errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            health_transitions: AtomicU64::new(0),
            request_body_bytes: AtomicU64::new(0),
            response_body_bytes: AtomicU64::new(0),
            upstream_latency: LatencyHistogram::new(&HTTP_BOUNDS),
            total_latency: LatencyHistogram::new(&HTTP_BOUNDS),
        }
    }
}

/// A point-in-time copy of [`Traffic`], for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSnapshot {
    /// Responses to clients by status class, `1xx` first.
    pub responses: [u64; STATUS_CLASSES.len()],
    /// Attempts that failed by the backend's fault.
    pub backend_errors: u64,
    /// Attempts retried away from this backend.
    pub retries: u64,
    /// Times outlier detection ejected it.
    pub ejections: u64,
    /// Times active health checks flipped it up or down.
    pub health_transitions: u64,
    /// Request body bytes sent to it.
    pub request_body_bytes: u64,
    /// Response body bytes received from it.
    pub response_body_bytes: u64,
    /// Finite upper bounds of the latency buckets, in seconds.
    pub latency_bounds_seconds: Vec<f64>,
    /// Time to the response head, per bucket (not cumulative), overflow last.
    pub upstream_latency_counts: Vec<u64>,
    /// Request arrival to response end, per bucket (not cumulative), overflow last.
    pub total_latency_counts: Vec<u64>,
}

impl Traffic {
    /// A response with `status` went to a client from this backend (its own, or lbx's answer
    /// to this backend's failure on the request's last attempt).
    pub fn responded(&self, status: StatusCode) {
        // StatusCode admits 600–999; those are no HTTP class (RFC 9110 §15) and are not counted.
        if let Some(class) = (status.as_u16() / 100).checked_sub(1)
            && let Some(counter) = self.responses.get(usize::from(class))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An attempt failed by the backend's fault (refused, reset, timed out, bad framing).
    pub fn backend_error(&self) {
        self.backend_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed attempt on this backend is being retried elsewhere.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Outlier detection ejected it.
    pub(super) fn ejected(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Active health checks flipped its state.
    pub(super) fn health_changed(&self) {
        self.health_transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` bytes of a request body went to it.
    pub fn sent_body_bytes(&self, n: usize) {
        self.request_body_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` bytes of a response body came from it.
    pub fn received_body_bytes(&self, n: usize) {
        self.response_body_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Time from sending a request to its response head.
    pub fn observe_upstream_latency(&self, took: Duration) {
        self.upstream_latency.observe(took);
    }

    /// Time from a request's arrival to the end of its response.
    pub fn observe_total_latency(&self, took: Duration) {
        self.total_latency.observe(took);
    }

    /// Response counts by class, `1xx` first.
    pub fn responses(&self) -> [u64; STATUS_CLASSES.len()] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }

    /// Attempts that failed by the backend's fault.
    pub fn backend_errors(&self) -> u64 {
        self.backend_errors.load(Ordering::Relaxed)
    }

    /// Attempts retried away from it.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Ejections so far.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Health transitions so far.
    pub fn health_transitions(&self) -> u64 {
        self.health_transitions.load(Ordering::Relaxed)
    }

    /// Request body bytes sent to it.
    pub fn request_body_bytes(&self) -> u64 {
        self.request_body_bytes.load(Ordering::Relaxed)
    }

    /// Response body bytes received from it.
    pub fn response_body_bytes(&self) -> u64 {
        self.response_body_bytes.load(Ordering::Relaxed)
    }

    /// Time to the response head.
    pub fn upstream_latency(&self) -> &HttpHistogram {
        &self.upstream_latency
    }

    /// Arrival to response end.
    pub fn total_latency(&self) -> &HttpHistogram {
        &self.total_latency
    }

    /// Every figure, read now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            responses: self.responses(),
            backend_errors: self.backend_errors(),
            retries: self.retries(),
            ejections: self.ejections(),
            health_transitions: self.health_transitions(),
            request_body_bytes: self.request_body_bytes(),
            response_body_bytes: self.response_body_bytes(),
            latency_bounds_seconds: self.upstream_latency.bounds_seconds(),
            upstream_latency_counts: self.upstream_latency.counts().to_vec(),
            total_latency_counts: self.total_latency.counts().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_odd_codes_are_not() {
        let traffic = Traffic::default();
        for code in [101, 200, 204, 302, 404, 502, 503, 999] {
            traffic.responded(StatusCode::from_u16(code).unwrap());
        }
        assert_eq!(traffic.responses(), [1, 2, 1, 1, 2]);
    }

    #[test]
    fn the_snapshot_has_one_more_count_than_bounds() {
        let traffic = Traffic::default();
        traffic.observe_upstream_latency(Duration::from_millis(2));
        traffic.observe_total_latency(Duration::from_secs(60));
        traffic.sent_body_bytes(10);
        traffic.received_body_bytes(7);
        let snapshot = traffic.snapshot();
        assert_eq!(
            snapshot.upstream_latency_counts.len(),
            snapshot.latency_bounds_seconds.len() + 1
        );
        assert_eq!(snapshot.upstream_latency_counts.iter().sum::<u64>(), 1);
        assert_eq!(snapshot.total_latency_counts.last(), Some(&1));
        assert_eq!(
            (snapshot.request_body_bytes, snapshot.response_body_bytes),
            (10, 7)
        );
    }
}
