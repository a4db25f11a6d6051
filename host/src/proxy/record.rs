//! Where an attempt's [`Outcome`] is counted — the one place. Every attempt ends in one outcome
//! (a failure before any response, a response set aside for a retry, or the response relayed
//! to its end) and [`Recorder::record`] feeds it to the backend's latency average and failure
//! streak, outlier ejection, its response counters and latency histograms, and — when the
//! plugin that decided asked for it — the plugin's feedback; while a canary runs, the figures
//! of the side (live or candidate) that decided.
//!
//! Body byte counters are the exception: they move as the bytes do, so a long download shows
//! in `/metrics` while it lasts; the outcome carries the totals. A client's fault never
//! touches a backend's failure figures (see [`Fault`]).

use std::sync::Arc;

use crate::canary::ArmFigures;
use crate::config::OutlierConfig;
use crate::outcome::{Fault, Outcome};
use crate::plugin::{Decider, LoadedPlugin};
use crate::upstream::{Backend, BackendSet, Ejection};

/// A plugin that asked to hear how its decisions went, and the tag of the decision.
#[derive(Debug, Clone)]
pub struct Feedback {
    /// Counts the plugin's failures (its breaker).
    pub decider: Arc<Decider>,
    /// The version that decided.
    pub plugin: Arc<LoadedPlugin>,
    /// The pick's tag.
    pub tag: u64,
}

/// Records the outcomes of attempts on one backend of one set.
#[derive(Debug, Clone)]
pub struct Recorder {
    set: Arc<BackendSet>,
    index: usize,
    outlier: OutlierConfig,
    feedback: Option<Feedback>,
    /// The canary side that decided the request, while a canary runs.
    canary_side: Option<Arc<ArmFigures>>,
}

impl Recorder {
    /// Outcomes of attempts on backend `index` of `set`, told to `feedback`'s plugin if any.
    pub fn new(
        set: Arc<BackendSet>,
        index: usize,
        outlier: OutlierConfig,
        feedback: Option<Feedback>,
    ) -> Self {
        Self {
            set,
            index,
            outlier,
            feedback,
            canary_side: None,
        }
    }

    /// Also count outcomes for the canary side (live or candidate) that decided the request.
    pub fn with_canary_side(mut self, side: Option<Arc<ArmFigures>>) -> Self {
        self.canary_side = side;
        self
    }

    /// The backend the attempts went to.
    pub fn backend(&self) -> Option<&Backend> {
        self.set.backends.get(self.index)
    }

    /// Count `outcome` for the backend.
    pub fn record(&self, outcome: &Outcome) {
        if let Some(side) = &self.canary_side {
            side.attempted(outcome);
        }
        let Some(backend) = self.backend() else {
            return;
        };
        let traffic = backend.stats.traffic();
        if let Some(ttfb) = outcome.ttfb {
            traffic.observe_upstream_latency(ttfb);
            if outcome.is_backend_success() {
                backend.stats.record_success(ttfb);
            }
        }
        for status in [outcome.status, outcome.answered].into_iter().flatten() {
            traffic.responded(status);
        }
        if let Some(took) = outcome.arrival_to_end {
            traffic.observe_total_latency(took);
        }
        let backend_fault = outcome.fault == Some(Fault::Backend);
        if backend_fault {
            traffic.backend_error();
        }
        let counted_5xx =
            self.outlier.count_5xx && outcome.status.is_some_and(|s| s.is_server_error());
        if backend_fault || counted_5xx {
            self.note_failure(backend);
        }
        if let Some(Feedback {
            decider,
            plugin,
            tag,
        }) = &self.feedback
        {
            decider.hear(plugin, self.index, outcome, *tag);
        }
    }

    /// Passive health: count a failure of the backend; eject it if that completes a streak and
    /// the max-ejection share allows.
    fn note_failure(&self, backend: &Backend) {
        let outlier = &self.outlier;
        let may_eject = self.set.may_eject_another(outlier.max_ejection_percent);
        match backend.stats.record_failure(outlier, may_eject) {
            Ejection::Ejected { failures, duration } => tracing::warn!(
                backend = %backend.spec.id,
                failures,
                ejected_for_secs = duration.as_secs_f64(),
                "backend ejected after consecutive failures"
            ),
            Ejection::Spared { failures } => tracing::warn!(
                backend = %backend.spec.id,
                failures,
                max_ejection_percent = outlier.max_ejection_percent,
                "backend keeps failing but is not ejected: too many backends are already out"
            ),
            Ejection::NotEjected => {}
        }
    }
}
