//! The latest backend signals scraped from one backend, and how its scrapes went.
//!
//! Owned by the backend's identity like its [`LiveStats`](super::LiveStats), so a rebuilt
//! backend set (a reload, an admin API change) carries the readings over for the backends that
//! remain. The scraper (`crate::signals`) writes a whole [`Reading`] at a time and publishes it
//! with one store; the request path reads it with one lock-free load (no lock a scrape could
//! hold, no allocation). A failed scrape replaces nothing: the last good reading stays and only
//! grows older.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use arc_swap::Guard;
use std::sync::Arc;
use tokio::time::Instant;

/// One successful scrape's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Which list of signals the values are in the slots of (a config reload that changes the
    /// list starts a new layout; readings of another layout are not shown as this one's).
    pub layout: u64,
    /// When the scrape ended.
    pub at: Instant,
    /// One value per signal, in slot order; NaN where the scrape had no matching series.
    pub values: Box<[f64]>,
}

/// Scrape results of one backend.
#[derive(Debug, Default)]
pub struct SignalReadings {
    last: ArcSwapOption<Reading>,
    scrapes_ok: AtomicU64,
    scrapes_failed: AtomicU64,
    /// Why the latest scrape failed; `None` once one succeeds (and before any failed).
    failure: Mutex<Option<String>>,
}

impl SignalReadings {
    /// The last successful scrape's reading, if any (hot path: one lock-free load).
    pub fn last(&self) -> Guard<Option<Arc<Reading>>> {
        self.last.load()
    }

    /// Keep a successful scrape's reading. Returns whether the scrape before it had failed
    /// (the backend's scrapes recovered).
    pub fn record_success(&self, reading: Reading) -> bool {
        self.last.store(Some(Arc::new(reading)));
        self.scrapes_ok.fetch_add(1, Ordering::Relaxed);
        self.failure.lock().expect("failure lock").take().is_some()
    }

    /// Count a failed scrape, keeping the last reading as it was. Returns whether this starts a
    /// run of failures (the scrape before it succeeded, or none was made yet).
    pub fn record_failure(&self, error: String) -> bool {
        self.scrapes_failed.fetch_add(1, Ordering::Relaxed);
        self.failure
            .lock()
            .expect("failure lock")
            .replace(error)
            .is_none()
    }

    /// Successful scrapes so far.
    pub fn scrapes_ok(&self) -> u64 {
        self.scrapes_ok.load(Ordering::Relaxed)
    }

    /// Failed scrapes so far.
    pub fn scrapes_failed(&self) -> u64 {
        self.scrapes_failed.load(Ordering::Relaxed)
    }

    /// Why the latest scrape failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(value: f64) -> Reading {
        Reading {
            layout: 1,
            at: Instant::now(),
            values: vec![value].into(),
        }
    }

    #[test]
    fn a_failure_keeps_the_last_reading_and_is_reported_once_per_run() {
        let readings = SignalReadings::default();
        assert!(readings.last().is_none());
        assert!(!readings.record_success(reading(3.0)));
        assert!(
            readings.record_failure("boom".into()),
            "a run of failures starts"
        );
        assert!(
            !readings.record_failure("boom again".into()),
            "the same run"
        );
        assert_eq!(readings.last().as_ref().unwrap().values[0], 3.0);
        assert_eq!(readings.last_error().as_deref(), Some("boom again"));
        assert!(readings.record_success(reading(4.0)), "recovered");
        assert_eq!(readings.last_error(), None);
        assert_eq!((readings.scrapes_ok(), readings.scrapes_failed()), (2, 2));
    }
}
