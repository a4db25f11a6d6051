//! Power of two choices on peak-EWMA latency for lbx (the algorithm of Finagle and Linkerd),
//! learned from the plugin's own outcome feedback.
//!
//! For each request two different candidate backends are drawn at random; the one with the
//! lower cost wins, where
//!
//! ```text
//! cost = latency × (in_flight + 1) × (recent_failures + 1)
//! ```
//!
//! `latency` is a peak-sensitive moving average of the time to first byte of the backend's
//! answers, which the plugin hears about after each attempt (it asks lbx for outcomes). A
//! sample above the average replaces it at once, so one slow answer makes a backend
//! unattractive immediately; a sample below pulls it down with weight `1 − e^(−Δt/τ)`, Δt being
//! the time since the backend's previous sample on lbx's clock and τ = 10 s (Finagle's
//! `PeakEwma`): the average forgets by time, however many requests arrive.
//!
//! Old latency fades: as a backend's last sample ages, its latency slides toward the fastest
//! estimate among the candidates (weight `e^(−age/τ)`), so a backend that was slow a minute
//! ago is tried again when the others are busy, and its next answer decides. A backend with no
//! sample yet counts as the fastest, so new backends are tried. `in_flight` (always current)
//! and `recent_failures` come from lbx with each request. Only healthy backends not yet tried
//! by this request are candidates.
//!
//! Estimates follow backend ids when the backend set changes. Each pick is tagged with a
//! fingerprint of the backend set it was made on; an outcome of a pick made on another set (or
//! by lbx's fallback) is not used, since its index may name another backend now. Each plugin
//! instance learns from the outcomes it is handed (lbx spreads them over its instances).
//!
//! Configuration: none (`{}`). Per request the plugin reads only numbers and allocates nothing.
//! Build: `bash plugins/build.sh`. Test: `cargo test -p p2c_ewma`.

use std::collections::HashMap;

use lbx_guest::{
    BackendInfo, Backends, Candidates, Decision, FastRng, Outcome, Request, RetryContext, Router,
};

/// τ of the moving average and of the fading, in µs: Finagle's and Linkerd's default (10 s).
const DECAY_US: f64 = 10_000_000.0;

/// What the plugin knows of one backend's latency.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    /// Peak-EWMA of time to first byte, in µs.
    latency_us: f64,
    /// When the last sample arrived (lbx's clock, µs).
    at_us: u64,
}

/// The plugin's state.
#[derive(Debug)]
pub struct P2cEwma {
    rng: FastRng,
    /// Backend ids, by index, from the last `backends_changed`.
    ids: Vec<String>,
    /// Latency estimates by index; `None` until the backend's first sample.
    estimates: Vec<Option<Estimate>>,
    /// Tag of every pick: identifies the backend set the index refers to (never 0, which is
    /// lbx's fallback).
    fingerprint: u64,
}

impl P2cEwma {
    /// A router with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: FastRng::new(seed),
            ids: Vec::new(),
            estimates: Vec::new(),
            fingerprint: fingerprint(&[]),
        }
    }

    /// The latency to compare `index` by at `now_us`: its estimate faded toward `fastest` as
    /// its last sample ages; `fastest` itself without a sample.
    fn latency(&self, index: usize, fastest: f64, now_us: u64) -> f64 {
        let latency = match self.estimates.get(index).copied().flatten() {
            Some(e) => {
                let kept = decay(now_us.saturating_sub(e.at_us));
                e.latency_us * kept + fastest * (1.0 - kept)
            }
            None => fastest,
        };
        latency.max(1.0)
    }
}

/// `e^(−elapsed/τ)`: how much of an estimate `elapsed_us` old still counts.
fn decay(elapsed_us: u64) -> f64 {
    (-(elapsed_us as f64) / DECAY_US).exp()
}

/// A stable, non-zero fingerprint of the backend ids in order: the same set gives the same tag
/// in every plugin instance.
fn fingerprint(ids: &[String]) -> u64 {
    let hash = ids.iter().fold(lbx_guest::fnv1a_64(b"p2c_ewma"), |h, id| {
        lbx_guest::fnv1a_64_extend(lbx_guest::fnv1a_64_extend(h, id.as_bytes()), b"\0")
    });
    lbx_guest::mix64(hash).max(1)
}

impl Router for P2cEwma {
    const OUTCOMES: bool = true;

    fn init(config: &str) -> Result<Self, String> {
        lbx_guest::init_default::<()>(config)?;
        Ok(Self {
            rng: FastRng::from_entropy(),
            ..Self::with_seed(0)
        })
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        let known: HashMap<&str, Estimate> = self
            .ids
            .iter()
            .zip(&self.estimates)
            .filter_map(|(id, estimate)| Some((id.as_str(), (*estimate)?)))
            .collect();
        let estimates = backends
            .iter()
            .map(|b| known.get(b.id.as_str()).copied())
            .collect();
        self.estimates = estimates;
        self.ids = backends.iter().map(|b| b.id.clone()).collect();
        self.fingerprint = fingerprint(&self.ids);
    }

    fn choose(
        &mut self,
        _req: &dyn Request,
        backends: &Backends,
        retry: &RetryContext,
    ) -> Decision {
        let candidates = Candidates::new(backends, retry);
        let count = candidates.count();
        if count == 0 {
            return lbx_guest::no_opinion();
        }
        let first = self.rng.below(count);
        let second = (first + 1 + self.rng.below(count.max(2) - 1)) % count;
        let (Some(a), Some(b)) = (candidates.nth(first), candidates.nth(second)) else {
            return lbx_guest::no_opinion();
        };
        let fastest = candidates
            .iter()
            .filter_map(|i| self.estimates.get(i).copied().flatten())
            .map(|e| e.latency_us)
            .fold(f64::INFINITY, f64::min);
        let fastest = if fastest.is_finite() { fastest } else { 1.0 };
        let now_us = lbx_guest::now_us();
        let cost = |i: usize| {
            let stats = &backends[i];
            self.latency(i, fastest, now_us)
                * (f64::from(stats.in_flight) + 1.0)
                * (f64::from(stats.recent_failures) + 1.0)
        };
        let winner = if cost(b) < cost(a) { b } else { a };
        lbx_guest::pick(winner).tag(self.fingerprint)
    }

    fn on_outcome(&mut self, outcome: &Outcome) {
        // No head, no latency: failures count through lbx's `recent_failures` instead.
        let Some(ttfb_us) = outcome.ttfb_us else {
            return;
        };
        if outcome.tag != self.fingerprint {
            return;
        }
        let Some(estimate) = usize::try_from(outcome.backend)
            .ok()
            .and_then(|i| self.estimates.get_mut(i))
        else {
            return;
        };
        let now_us = lbx_guest::now_us();
        let sample = ttfb_us as f64;
        *estimate = Some(match *estimate {
            Some(e) if sample < e.latency_us => {
                let kept = decay(now_us.saturating_sub(e.at_us));
                Estimate {
                    latency_us: e.latency_us * kept + sample * (1.0 - kept),
                    at_us: now_us,
                }
            }
            // A first sample, or a peak: taken as is.
            _ => Estimate {
                latency_us: sample,
                at_us: now_us,
            },
        });
    }
}

lbx_guest::export_router!(P2cEwma);

#[cfg(test)]
mod tests;
