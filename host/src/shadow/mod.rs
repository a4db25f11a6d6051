//! Shadow plugins: candidate plugin versions that run beside the live one on a sample of real
//! requests. Each sees what the live plugin saw — the request's metadata, the backend set and
//! statistics of that moment, the signals in force — and its decision is compared with the
//! live side's and tallied, never acted on.
//!
//! Off the request path by construction: the live side only draws a number per shadow and,
//! for a sampled request, copies its metadata into a bounded queue ([`worker`]). A shadow's
//! key-value store is an overlay of the live one (it reads live state, its writes stay its
//! own), so a candidate cannot disturb what the live plugin remembers.
//!
//! Shadows come from `[[plugin.shadow]]` (replaced on each config reload) and from
//! `POST /admin/plugin/shadow` (kept until stopped or promoted); loading them is the
//! reloader's business, this module only runs them.

mod metrics;
mod sample;
mod tally;
mod worker;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

pub use metrics::ShadowMetrics;
pub use sample::{Choice, Sample};
pub use tally::{Confusion, Share, Tally, TallyReport, Verdict};
pub use worker::{Origin, QUEUE, Shadow};

use crate::plugin::{ContentHash, LoadOptions, RequestMeta, Route, flatten_stats};
use crate::signals::{Scraper, Signals};
use crate::upstream::BackendSet;

/// The running shadows. Read on every request (one atomic load when there are none);
/// changed rarely, under a lock, by publishing a new list.
#[derive(Debug)]
pub struct Shadows {
    running: ArcSwap<Vec<Arc<Shadow>>>,
    changes: Mutex<()>,
    /// Where the signals in force are read, for a sample's copy.
    signals: Arc<Scraper>,
}

impl Shadows {
    /// No shadows yet; samples will carry the signals `signals` keeps.
    pub fn new(signals: Arc<Scraper>) -> Self {
        Self {
            running: ArcSwap::default(),
            changes: Mutex::new(()),
            signals,
        }
    }

    /// Offer a request the live side decided (its first attempt's `route`) to every shadow
    /// whose sample it falls in.
    pub fn offer(&self, meta: &RequestMeta, set: &Arc<BackendSet>, route: &Route) {
        let running = self.running.load();
        if running.is_empty() {
            return;
        }
        let Some(live) = Choice::of(route) else {
            return;
        };
        // Read once, and only when some shadow samples this request.
        let mut taken: Option<Shared> = None;
        for shadow in running.iter() {
            if !shadow.samples_next() {
                continue;
            }
            let (stats, signals) = taken.get_or_insert_with(|| {
                let mut stats = Vec::with_capacity(set.len() * 5);
                flatten_stats(set, &mut stats);
                let signals = self.signals.signals();
                (
                    stats.into(),
                    signals.is_enabled().then(|| Arc::clone(&signals)),
                )
            });
            shadow.offer(Sample {
                meta: meta.clone(),
                set: set.clone(),
                stats: stats.clone(),
                signals: signals.clone(),
                live,
            });
        }
    }

    /// Whether any shadow runs.
    pub fn is_empty(&self) -> bool {
        self.running.load().is_empty()
    }

    /// The running shadows, in the order they started.
    pub fn list(&self) -> Arc<Vec<Arc<Shadow>>> {
        self.running.load_full()
    }

    /// The shadow called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Shadow>> {
        self.running.load().iter().find(|s| s.name == name).cloned()
    }

    /// Run `shadow`, in place of one with the same name; returns the one it replaced.
    pub fn start(&self, shadow: Arc<Shadow>) -> Option<Arc<Shadow>> {
        let _changing = self.lock_changes();
        let mut next: Vec<Arc<Shadow>> = self.running.load().iter().cloned().collect();
        let replaced = take_named(&mut next, &shadow.name);
        next.push(shadow);
        self.running.store(Arc::new(next));
        replaced
    }

    /// Stop the shadow called `name` (its worker ends with its last queued sample).
    pub fn stop(&self, name: &str) -> Option<Arc<Shadow>> {
        let _changing = self.lock_changes();
        let mut next: Vec<Arc<Shadow>> = self.running.load().iter().cloned().collect();
        let stopped = take_named(&mut next, name);
        self.running.store(Arc::new(next));
        stopped
    }

    /// Put the config file's shadows in force: those of the earlier config that are not in
    /// `configured` stop; the admin API's stay unless `configured` has one of the same name.
    /// (The reloader passes a running shadow back in when the config left it unchanged, so it
    /// keeps its figures.)
    pub fn replace_configured(&self, configured: Vec<Arc<Shadow>>) {
        let _changing = self.lock_changes();
        let mut next: Vec<Arc<Shadow>> = self
            .running
            .load()
            .iter()
            .filter(|s| s.origin == Origin::Api && !configured.iter().any(|c| c.name == s.name))
            .cloned()
            .collect();
        next.extend(configured);
        self.running.store(Arc::new(next));
    }

    /// The configured shadow `name`, if it runs `hash` with `options`' settings at `sample`:
    /// nothing to reload.
    pub fn unchanged(
        &self,
        name: &str,
        hash: &ContentHash,
        options: &LoadOptions,
        sample: f64,
    ) -> Option<Arc<Shadow>> {
        self.running
            .load()
            .iter()
            .find(|s| {
                let running = s.plugin.options();
                s.origin == Origin::Config
                    && s.name == name
                    && s.sample == sample
                    && s.plugin.content_hash() == hash
                    && running.config_json == options.config_json
                    && running.limits == options.limits
                    && running.body_prefix == options.body_prefix
            })
            .cloned()
    }

    /// Every shadow's state and figures, for the admin API.
    pub fn reports(&self) -> Vec<ShadowReport> {
        self.running.load().iter().map(|s| report(s)).collect()
    }

    fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The parts of a sample every shadow shares: the statistics and the signals.
type Shared = (Arc<[u32]>, Option<Arc<Signals>>);

fn take_named(shadows: &mut Vec<Arc<Shadow>>, name: &str) -> Option<Arc<Shadow>> {
    let at = shadows.iter().position(|s| s.name == name)?;
    Some(shadows.remove(at))
}

/// One shadow as `GET /admin/plugin` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    /// Its name.
    pub name: String,
    /// `config` or `api`.
    pub origin: Origin,
    /// The plugin's path or upload name.
    pub path: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Share of requests sampled (0–1).
    pub sample: f64,
    /// When it started (RFC 3339).
    pub started: String,
    /// Samples its queue holds at most.
    pub queue: usize,
    /// What it decided against the live side.
    #[serde(flatten)]
    pub figures: TallyReport,
}

fn report(shadow: &Shadow) -> ShadowReport {
    ShadowReport {
        name: shadow.name.clone(),
        origin: shadow.origin,
        path: shadow.plugin.name().to_string(),
        sha256: shadow.plugin.sha256(),
        sample: shadow.sample,
        started: humantime::format_rfc3339_millis(shadow.started).to_string(),
        queue: QUEUE,
        figures: shadow.tally.report(),
    }
}
