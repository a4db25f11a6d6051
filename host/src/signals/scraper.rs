//! The scraping task, and the signals in force.
//!
//! One task for the whole process: every `interval` it takes the backend set in force (so
//! backends added or removed at runtime are followed from the next round) and scrapes all of
//! its backends concurrently, each scrape a task of its own bounded by `timeout` (never longer
//! than `interval`, so rounds do not pile up). With no signals configured it scrapes nothing
//! and sleeps until a reload configures some.
//!
//! A backend's failing scrapes are logged once when they start failing and once when they
//! recover, not every interval; `/admin/backends` and `/metrics` count every one.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use http::uri::Authority;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Signals, scrape};
use crate::config::SignalsSpec;
use crate::shutdown::{self, StopReceiver};
use crate::upstream::{BackendSet, Reading, SignalReadings, Transport, Upstreams};

/// The signals in force, and the task that scrapes them.
#[derive(Debug)]
pub struct Scraper {
    upstreams: Arc<Upstreams>,
    in_force: ArcSwap<Signals>,
    /// Wakes the task when the signals change.
    changed: watch::Sender<()>,
}

impl Scraper {
    /// Scrape `spec`'s signals from the backends of `upstreams` (once [`Scraper::spawn`]ed).
    pub fn new(spec: SignalsSpec, upstreams: Arc<Upstreams>) -> Self {
        Self {
            upstreams,
            in_force: ArcSwap::from_pointee(Signals::new(spec)),
            changed: watch::Sender::new(()),
        }
    }

    /// The signals in force: a lock-free load, cheap enough for every decision. Names and
    /// readings of one `Signals` belong together; hold the guard (or `Arc::clone` it) to use
    /// both.
    pub fn signals(&self) -> Guard<Arc<Signals>> {
        self.in_force.load()
    }

    /// The backend table scraped.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// Put `spec` in force (a config reload). Returns whether anything changed. Signals named
    /// as before keep their readings; a different list starts with every value missing until
    /// the next scrape, which starts at once.
    pub fn reconfigure(&self, spec: SignalsSpec) -> bool {
        let current = self.in_force.load_full();
        if *current.spec() == spec {
            return false;
        }
        self.in_force.store(Arc::new(current.succeeded_by(spec)));
        self.changed.send_replace(());
        true
    }

    /// Start scraping; it stops when `shutdown` is raised.
    pub fn spawn(self: &Arc<Self>, shutdown: &StopReceiver) {
        tokio::spawn(self.clone().run(shutdown.clone()));
    }

    async fn run(self: Arc<Self>, mut stop: StopReceiver) {
        let mut changed = self.changed.subscribe();
        loop {
            changed.mark_unchanged();
            let signals = self.in_force.load_full();
            let next_round = if signals.is_enabled() {
                let started = Instant::now();
                let set = self.upstreams.snapshot();
                tokio::select! {
                    _ = scrape_all(&signals, &set) => {}
                    _ = shutdown::stopped(&mut stop) => return,
                }
                Some(started + signals.spec().interval)
            } else {
                None
            };
            let until_next_round = async {
                match next_round {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = until_next_round => {}
                _ = changed.changed() => {}
                _ = shutdown::stopped(&mut stop) => return,
            }
        }
    }
}

/// One round: every backend of `set`, concurrently; returns when all are done (each within
/// `timeout`).
async fn scrape_all(signals: &Arc<Signals>, set: &BackendSet) {
    let mut scrapes = JoinSet::new();
    for backend in &set.backends {
        let target = Target {
            id: backend.spec.id.clone(),
            authority: backend.spec.authority.clone(),
            transport: backend.pool.transport().clone(),
            readings: backend.signals.clone(),
        };
        scrapes.spawn(scrape_one(signals.clone(), target));
    }
    while scrapes.join_next().await.is_some() {}
}

/// What one backend's scrape needs.
struct Target {
    id: String,
    authority: Authority,
    transport: Transport,
    readings: Arc<SignalReadings>,
}

async fn scrape_one(signals: Arc<Signals>, target: Target) {
    match scrape(&target.transport, &target.authority, signals.spec()).await {
        Ok(values) => {
            let reading = Reading {
                layout: signals.layout,
                at: Instant::now(),
                values,
            };
            if target.readings.record_success(reading) {
                tracing::info!(backend = %target.id, "backend signal scrapes succeed again");
            }
        }
        Err(error) => {
            if target.readings.record_failure(error.to_string()) {
                tracing::warn!(
                    backend = %target.id,
                    path = %signals.spec().path,
                    %error,
                    "backend signal scrape failed: its signals go stale until a scrape succeeds \
                     (the backend stays in rotation)"
                );
            }
        }
    }
}
