//! Backend signals (issue 17): numbers each backend reports about itself — vLLM's
//! `vllm:num_requests_waiting` and `vllm:kv_cache_usage_perc`, say — scraped from its
//! Prometheus `/metrics` off the request path and handed to the routing plugin beside the
//! host's own stats, as the inference gateways (llm-d, Gateway API Inference Extension) do.
//!
//! - `[signals]` (`crate::config::SignalsSpec`) names the series, as Prometheus selectors;
//! - [`Scraper`] (`scraper.rs`) scrapes every backend of the set in force every `interval`,
//!   concurrently, each scrape bounded in time and size (`scrape.rs`), and keeps the result in
//!   the backend's [`SignalReadings`] (owned by the backend's identity in `upstream`, so it
//!   survives backend set changes);
//! - the exposition parser (`exposition.rs`) and the selector rule (`selector.rs`: series
//!   matching one selector are summed) turn a scrape into one number per signal;
//! - [`Signals`] is one version of the configuration: the names the plugin learns, and
//!   [`Signals::fill`], which lays the readings out for a decision;
//! - `metrics.rs` puts scrape counts, ages and values on `/metrics`.
//!
//! Scraping is not health checking: a backend whose scrape fails (refused, timed out, too
//! large, not the text format) stays in rotation; its last good reading is kept and only grows
//! older, which the plugin sees in the age slot and operators in `/admin/backends` and
//! `/metrics`. A scrape is always older than the last dispatch, so the host's own in-flight
//! count stays beside the scraped queue in the plugin's stats (llm-d-router#2066).

pub mod exposition;
mod metrics;
mod scrape;
mod scraper;
pub mod selector;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::config::SignalsSpec;
use crate::upstream::{BackendSet, Reading, SignalReadings};
pub use metrics::SignalMetrics;
pub use scrape::{ScrapeError, scrape};
pub use scraper::Scraper;

/// Identities of signal lists; each distinct list gets the next.
static LAYOUTS: AtomicU64 = AtomicU64::new(1);

/// One version of the signals configuration: what is scraped, how, and the slot of each
/// signal. Immutable; a reload that changes `[signals]` puts a new one in force
/// ([`Scraper::reconfigure`]), so whoever holds an `Arc<Signals>` sees names and values that
/// belong together.
#[derive(Debug)]
pub struct Signals {
    spec: SignalsSpec,
    names: Vec<String>,
    /// Which list of signals this is: readings taken for another list are missing here.
    layout: u64,
}

impl Default for Signals {
    /// No signals: nothing is scraped, [`Signals::fill`] appends nothing.
    fn default() -> Self {
        Self::new(SignalsSpec::default())
    }
}

impl Signals {
    /// Signals as resolved from `[signals]`.
    pub fn new(spec: SignalsSpec) -> Self {
        Self::with_layout(spec, LAYOUTS.fetch_add(1, Ordering::Relaxed))
    }

    fn with_layout(spec: SignalsSpec, layout: u64) -> Self {
        let names = spec.selectors.iter().map(|s| s.text.clone()).collect();
        Self {
            spec,
            names,
            layout,
        }
    }

    /// The configured selectors as written by the operator, in slot order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether any signal is configured.
    pub fn is_enabled(&self) -> bool {
        !self.names.is_empty()
    }

    /// The settings this version scrapes with.
    pub fn spec(&self) -> &SignalsSpec {
        &self.spec
    }

    /// Appends, for each backend of `set` in order, 1 + names().len() numbers: the age in ms of
    /// that backend's last successful scrape (NaN if never), then each signal's value (NaN if
    /// missing: never scraped, or absent in the last successful scrape). Appends nothing when
    /// no signals are configured.
    ///
    /// Hot path: one lock-free load per backend and one clock read, no allocation beyond
    /// `out`'s growth.
    pub fn fill(&self, set: &BackendSet, out: &mut Vec<f64>) {
        if !self.is_enabled() {
            return;
        }
        let now = Instant::now();
        let slots = self.names.len();
        out.reserve(set.len() * (1 + slots));
        for backend in &set.backends {
            let last = backend.signals.last();
            match last.as_deref().filter(|r| self.is_current(r)) {
                Some(reading) => {
                    out.push(age_ms(now, reading.at));
                    out.extend_from_slice(&reading.values);
                }
                None => out.extend(std::iter::repeat_n(f64::NAN, 1 + slots)),
            }
        }
    }

    /// A backend's last successful reading, if it was taken for these signals.
    pub fn reading(&self, readings: &SignalReadings) -> Option<Arc<Reading>> {
        readings
            .last()
            .as_ref()
            .filter(|r| self.is_current(r))
            .cloned()
    }

    fn is_current(&self, reading: &Reading) -> bool {
        reading.layout == self.layout && reading.values.len() == self.names.len()
    }

    /// What `next` becomes when it replaces `self`: the same layout if it names the same
    /// signals in the same order (their readings stay valid), a new one otherwise.
    fn succeeded_by(&self, next: SignalsSpec) -> Self {
        if next.selectors == self.spec.selectors {
            Self::with_layout(next, self.layout)
        } else {
            Self::new(next)
        }
    }
}

/// Milliseconds from `at` to `now` (0 if `at` is later).
pub fn age_ms(now: Instant, at: Instant) -> f64 {
    now.saturating_duration_since(at).as_secs_f64() * 1000.0
}
