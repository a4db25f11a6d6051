//! One name's loop: look it up every `interval`, put each answer in force through the backend
//! manager, and when it stops resolving keep the last answer for `keep_last_for`.
//!
//! States, each change logged once (a warning when things get worse, info when they recover):
//! `pending` (no lookup done yet) → `ok` (the last lookup answered) ⇄ `failing` (lookups fail;
//! the last answer stays in force) → `expired` (failing for longer than `keep_last_for`: the
//! name's backends were drained and removed). Removal is refused when it would leave lbx with
//! no backend at all: then the name stays `failing` with its last answer, and says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::DnsDiscovery;
use crate::runtime_backends::BackendManager;

use super::dns::{DnsLookup, LookupError, lookup_timeout};
use super::metrics::DiscoveryMetrics;
use super::targets;

/// How long a backend gone from an answer may finish its requests before it is removed anyway
/// (as an admin API `DELETE` without `timeout`).
pub const REMOVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a name stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not looked up yet.
    Pending,
    /// The last lookup answered; its backends are in force.
    Ok,
    /// Lookups fail; the last answer stays in force until `keep_last_for` passes.
    Failing,
    /// Lookups have failed for longer than `keep_last_for`; the name's backends are gone.
    Expired,
}

/// What the admin API shows about a name.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Where it stands.
    pub state: State,
    /// The ids of the backends it contributes now.
    pub backends: Vec<String>,
    /// When a lookup last answered (RFC 3339).
    pub last_success: Option<String>,
    /// The last failure, as logged.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// Since when lookups fail, while they do (RFC 3339).
    pub failing_since: Option<String>,
    /// Why the last answer could not be put in force, if it could not.
    pub refused: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            state: State::Pending,
            backends: Vec::new(),
            last_success: None,
            last_error: None,
            last_error_at: None,
            failing_since: None,
            refused: None,
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// One name being watched.
pub struct Watcher {
    /// Its settings.
    pub entry: DnsDiscovery,
    /// Where the backends go.
    pub backends: Arc<BackendManager>,
    /// Its counters.
    pub metrics: DiscoveryMetrics,
    /// Shared with the admin API.
    pub status: Arc<Mutex<Status>>,
}

impl Watcher {
    /// Run until aborted; `first` is told when the first lookup has been dealt with.
    pub async fn run(self, first: tokio::sync::oneshot::Sender<()>) {
        let lookup = DnsLookup::new(&self.entry);
        let mut first = Some(first);
        let mut failing_since: Option<Instant> = None;
        let mut ticks = tokio::time::interval(self.entry.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let bound = lookup_timeout(self.entry.interval) * 2;
            let answer = match &lookup {
                Ok(lookup) => tokio::time::timeout(bound, lookup.resolve())
                    .await
                    .unwrap_or_else(|_| {
                        Err(LookupError::Failed(format!(
                            "{}: no answer within {}",
                            self.entry.name,
                            humantime::format_duration(bound)
                        )))
                    }),
                Err(message) => Err(LookupError::Failed(message.clone())),
            };
            match answer {
                Ok(found) => {
                    if self.answered(&found).await {
                        failing_since = None;
                    } else {
                        self.failed(
                            LookupError::NoRecords(format!(
                                "{}: no target can be a backend",
                                self.entry.name
                            )),
                            &mut failing_since,
                        )
                        .await;
                    }
                }
                Err(error) => self.failed(error, &mut failing_since).await,
            }
            if let Some(first) = first.take() {
                let _ = first.send(());
            }
        }
    }

    fn name(&self) -> &str {
        &self.entry.name
    }

    /// Put an answer in force; `false` when none of its targets can be a backend.
    async fn answered(&self, found: &[super::dns::Target]) -> bool {
        let (next, refused) = targets::backends(&self.entry, found);
        for why in &refused {
            tracing::warn!(discovery = self.name(), target = %why, "DNS target skipped");
        }
        if next.is_empty() {
            return false;
        }
        self.metrics.resolved(self.name(), "ok");
        let ids: Vec<String> = next
            .iter()
            .map(crate::runtime_backends::changes::backend_id)
            .collect();
        let result = self
            .backends
            .set_discovered(self.name(), next, REMOVAL_TIMEOUT)
            .await;
        let mut status = self.status.lock().expect("status lock");
        match &result {
            Ok(diff) => {
                if !diff.is_empty() {
                    tracing::info!(discovery = self.name(), change = %diff.describe(),
                        "DNS answer changed the backend set");
                }
                status.backends = ids;
                status.refused = None;
            }
            Err(why) => {
                if status.refused.as_ref() != Some(why) {
                    tracing::warn!(discovery = self.name(), error = %why,
                        "cannot put the DNS answer in force");
                }
                status.refused = Some(why.clone());
            }
        }
        if matches!(status.state, State::Failing | State::Expired) {
            tracing::info!(
                discovery = self.name(),
                targets = status.backends.len(),
                "DNS name resolves again"
            );
        }
        status.state = State::Ok;
        status.last_success = Some(now());
        status.failing_since = None;
        self.metrics.set_targets(self.name(), status.backends.len());
        true
    }

    async fn failed(&self, error: LookupError, failing_since: &mut Option<Instant>) {
        self.metrics.resolved(self.name(), error.result_label());
        let since = *failing_since.get_or_insert_with(Instant::now);
        let state = {
            let mut status = self.status.lock().expect("status lock");
            status.last_error = Some(error.to_string());
            status.last_error_at = Some(now());
            if status.state == State::Pending {
                tracing::warn!(
                    discovery = self.name(),
                    error = %error,
                    "DNS name does not resolve; it contributes no backend until it does"
                );
                status.state = State::Failing;
                status.failing_since = Some(now());
            } else if status.state == State::Ok {
                tracing::warn!(
                    discovery = self.name(),
                    error = %error,
                    kept = status.backends.len(),
                    keep_last_for = %humantime::format_duration(self.entry.keep_last_for),
                    "DNS name does not resolve; its last answer stays in force"
                );
                status.state = State::Failing;
                status.failing_since = Some(now());
            }
            status.state
        };
        if state != State::Failing || since.elapsed() < self.entry.keep_last_for {
            return;
        }
        let result = self
            .backends
            .set_discovered(self.name(), Vec::new(), REMOVAL_TIMEOUT)
            .await;
        let mut status = self.status.lock().expect("status lock");
        match result {
            Ok(diff) => {
                if !diff.gone.is_empty() {
                    tracing::warn!(
                        discovery = self.name(),
                        removed = diff.gone.len(),
                        "DNS name has not resolved for keep_last_for; its backends are drained \
                         and removed"
                    );
                }
                status.state = State::Expired;
                status.backends.clear();
                status.refused = None;
                self.metrics.set_targets(self.name(), 0);
            }
            Err(why) => {
                if status.refused.as_ref() != Some(&why) {
                    tracing::warn!(discovery = self.name(), error = %why,
                        "DNS name expired, but its backends stay");
                }
                status.refused = Some(why);
            }
        }
    }
}
