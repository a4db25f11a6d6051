//! Canary plugins: a new plugin version takes a growing share of real traffic by steps
//! (`steps = [1, 10, 50, 100]` %, each `step_duration` long), each request assigned to one side
//! by a stable hash of a key so a user stays on one version ([`crate::plugin::Split`]). At each
//! step the candidate's own outcomes are compared with the live version's over the same
//! window ([`gates`]): pass → the next step, and after the last the candidate is promoted;
//! fail → it is rolled back at once, with the figures that failed; too few requests → the
//! step holds. A manual promote or abort is always there.
//!
//! This module owns the canary's state and figures; the reloader loads the candidate, runs the
//! controller that judges the steps, and promotes or rolls back (`reload::canary`).

pub mod figures;
pub mod gates;
mod metrics;
pub mod persist;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

pub use crate::config::canary::OnRestart;
pub use figures::{ArmCounts, ArmFigures, ArmReport};
pub use gates::{Gates, Verdict};
pub use metrics::CanaryMetrics;

use crate::plugin::{Arm, Split, SplitKey};

/// What an operator asks of a canary.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    /// The candidate's shares, in percent, increasing, each more than 0 and at most 100.
    pub steps: Vec<f64>,
    /// How long each step lasts before its verdict.
    pub step_duration: Duration,
    /// What keeps a user on one side.
    pub key: SplitKey,
    /// The bounds each step must stay within.
    pub gates: Gates,
    /// What a restart of lbx does with it.
    pub on_restart: OnRestart,
}

impl CanarySpec {
    /// Why this cannot run, if it cannot: each problem named.
    pub fn problem(&self) -> Option<String> {
        crate::config::canary::plan_problem(&self.steps, self.step_duration, &self.gates)
    }
}

/// How a canary ended, or that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Taking its share.
    Running,
    /// Put in force as the live version.
    Promoted,
    /// Failed a gate and removed.
    RolledBack,
    /// Removed by the operator (or by a restart).
    Aborted,
}

/// A line of a canary's story.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// When (RFC 3339).
    pub at: String,
    /// `started`, `step`, `hold`, `promoted`, `rolled_back`, `aborted`.
    pub what: &'static str,
    /// Why, with the figures.
    pub detail: String,
}

/// Both sides' figures for the step in progress.
#[derive(Debug, Default)]
pub struct StepFigures {
    /// The live version's.
    pub live: Arc<ArmFigures>,
    /// The candidate's.
    pub candidate: Arc<ArmFigures>,
}

impl StepFigures {
    /// The side `arm` counts into.
    pub fn of(&self, arm: Arm) -> &Arc<ArmFigures> {
        match arm {
            Arm::Live => &self.live,
            Arm::Candidate => &self.candidate,
        }
    }
}

/// A canary in progress (or just ended).
#[derive(Debug)]
pub struct Canary {
    /// What was asked.
    pub spec: CanarySpec,
    /// The traffic split the decider applies.
    pub split: Arc<Split>,
    /// The candidate's path or upload name.
    pub path: String,
    /// Its bytes, to put in force when promoted.
    pub bytes: Arc<[u8]>,
    /// When it started.
    pub started: SystemTime,
    figures: ArcSwap<StepFigures>,
    progress: Mutex<Progress>,
}

#[derive(Debug)]
struct Progress {
    state: State,
    step: usize,
    step_started: Instant,
    verdict: Option<String>,
    transitions: Vec<Transition>,
}

impl Canary {
    /// A canary at step `step` (0: the first) over `split` (whose share it sets).
    pub fn new(
        spec: CanarySpec,
        split: Arc<Split>,
        path: String,
        bytes: Arc<[u8]>,
        step: usize,
    ) -> Self {
        let step = step.min(spec.steps.len() - 1);
        split.set_share(basis_points(spec.steps[step]));
        let first = format!(
            "{} sha256 {} at {}% of requests, keyed by {}",
            path,
            &split.plugin.sha256()[..12],
            spec.steps[step],
            spec.key.describe()
        );
        Self {
            figures: ArcSwap::from_pointee(StepFigures::default()),
            progress: Mutex::new(Progress {
                state: State::Running,
                step,
                step_started: Instant::now(),
                verdict: None,
                transitions: vec![transition("started", first)],
            }),
            spec,
            split,
            path,
            bytes,
            started: SystemTime::now(),
        }
    }

    /// The figures of the step in progress.
    pub fn figures(&self) -> Arc<StepFigures> {
        self.figures.load_full()
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// The step in progress (index into the steps) and how long it has run.
    pub fn step(&self) -> (usize, Duration) {
        let progress = self.lock();
        (progress.step, progress.step_started.elapsed())
    }

    /// Judge the step in progress now.
    pub fn judge(&self) -> (Verdict, ArmReport, ArmReport) {
        let figures = self.figures();
        let (live, candidate) = (figures.live.report(), figures.candidate.report());
        (self.spec.gates.judge(&live, &candidate), live, candidate)
    }

    /// Go to the next step with fresh figures; false if this was the last.
    pub fn advance(&self, detail: String) -> bool {
        let mut progress = self.lock();
        let next = progress.step + 1;
        let Some(&share) = self.spec.steps.get(next) else {
            return false;
        };
        progress.step = next;
        progress.step_started = Instant::now();
        progress.verdict = None;
        progress.transitions.push(transition(
            "step",
            format!("{detail}; now {share}% of requests"),
        ));
        drop(progress);
        self.figures.store(Arc::new(StepFigures::default()));
        self.split.set_share(basis_points(share));
        true
    }

    /// Go to step `step` with fresh figures, as the fleet decided (fleet mode: one node judges
    /// the sum of every node's figures, and every node follows). False if there is no such
    /// step or it is the one in progress.
    pub fn go_to_step(&self, step: usize, detail: String) -> bool {
        let mut progress = self.lock();
        let Some(&share) = self.spec.steps.get(step) else {
            return false;
        };
        if progress.step == step {
            return false;
        }
        progress.step = step;
        progress.step_started = Instant::now();
        progress.verdict = None;
        progress.transitions.push(transition(
            "step",
            format!("{detail}; now {share}% of requests"),
        ));
        drop(progress);
        self.figures.store(Arc::new(StepFigures::default()));
        self.split.set_share(basis_points(share));
        true
    }

    /// Note a verdict that holds the step (once per distinct reason).
    pub fn hold(&self, reason: String) {
        let mut progress = self.lock();
        if progress.verdict.as_deref() != Some(reason.as_str()) {
            progress.verdict = Some(reason.clone());
            progress.transitions.push(transition("hold", reason));
        }
    }

    /// It ended: `state`, because of `detail`.
    pub fn end(&self, state: State, detail: String) {
        let what = match state {
            State::Running => "running",
            State::Promoted => "promoted",
            State::RolledBack => "rolled_back",
            State::Aborted => "aborted",
        };
        let mut progress = self.lock();
        progress.state = state;
        progress.transitions.push(transition(what, detail));
    }

    /// What its state file keeps.
    pub fn saved(&self) -> persist::Saved {
        let progress = self.lock();
        persist::Saved {
            version: persist::VERSION,
            state: progress.state,
            path: self.path.clone().into(),
            sha256: self.split.plugin.sha256(),
            config_json: self.split.plugin.options().config_json.clone(),
            steps: self.spec.steps.clone(),
            step_duration: self.spec.step_duration,
            key: self.spec.key.describe(),
            gates: self.spec.gates.clone(),
            step: progress.step,
            on_restart: self.spec.on_restart,
            detail: progress
                .transitions
                .last()
                .map(|t| t.detail.clone())
                .unwrap_or_default(),
        }
    }

    /// Its state, figures and story for the admin API.
    pub fn report(&self) -> CanaryReport {
        let (verdict, live, candidate) = self.judge();
        let progress = self.lock();
        let share = self.spec.steps[progress.step];
        CanaryReport {
            state: progress.state,
            path: self.path.clone(),
            sha256: self.split.plugin.sha256(),
            key: self.spec.key.describe(),
            steps: self.spec.steps.clone(),
            step: progress.step,
            share_percent: if progress.state == State::Running {
                share
            } else {
                0.0
            },
            step_elapsed_s: progress.step_started.elapsed().as_secs_f64(),
            step_duration_s: self.spec.step_duration.as_secs_f64(),
            gates: self.spec.gates.clone(),
            on_restart: self.spec.on_restart,
            verdict: match verdict {
                Verdict::Pass => "pass".into(),
                Verdict::Fail(reasons) => format!("fail: {}", reasons.join("; ")),
                Verdict::Inconclusive(why) => format!("inconclusive: {why}"),
            },
            live,
            candidate,
            started: humantime::format_rfc3339_millis(self.started).to_string(),
            transitions: progress.transitions.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn transition(what: &'static str, detail: String) -> Transition {
    Transition {
        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        what,
        detail,
    }
}

/// A share in percent as basis points.
pub fn basis_points(percent: f64) -> u32 {
    (percent * 100.0).round() as u32
}

/// A canary as `GET /admin/plugin/canary` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryReport {
    /// Running, or how it ended.
    pub state: State,
    /// The candidate's path or upload name.
    pub path: String,
    /// Its sha256.
    pub sha256: String,
    /// What keeps a user on one side.
    pub key: String,
    /// The shares, in percent.
    pub steps: Vec<f64>,
    /// The step in progress (index into `steps`).
    pub step: usize,
    /// The candidate's share now, in percent (0 once ended).
    pub share_percent: f64,
    /// How long the step has run.
    pub step_elapsed_s: f64,
    /// How long each step lasts.
    pub step_duration_s: f64,
    /// The gates.
    pub gates: Gates,
    /// What a restart of lbx does with it (`abort` or `resume`).
    pub on_restart: OnRestart,
    /// What the gates say of the step so far.
    pub verdict: String,
    /// The live side's figures this step.
    pub live: ArmReport,
    /// The candidate's figures this step.
    pub candidate: ArmReport,
    /// When it started.
    pub started: String,
    /// Its story.
    pub transitions: Vec<Transition>,
}

/// The canary in progress, if any, and the last one that ended (for the admin API).
#[derive(Debug, Default)]
pub struct Canaries {
    running: ArcSwapOption<Canary>,
    last: Mutex<Option<Arc<Canary>>>,
    /// Canaries ended by promotion, rollback and abort, for `/metrics`.
    ended: [std::sync::atomic::AtomicU64; 3],
}

impl Canaries {
    /// The canary in progress.
    pub fn running(&self) -> Option<Arc<Canary>> {
        self.running.load_full()
    }

    /// The counters a request decided on side `arm` feeds, while a canary runs.
    pub fn figures(&self, arm: Arm) -> Option<Arc<ArmFigures>> {
        let running = self.running.load();
        running.as_ref().map(|c| c.figures.load().of(arm).clone())
    }

    /// Make `canary` the one in progress.
    pub fn start(&self, canary: Arc<Canary>) {
        self.running.store(Some(canary));
    }

    /// The canary in progress has ended as its state says; keep it for the admin API.
    pub fn finish(&self) -> Option<Arc<Canary>> {
        let ended = self.running.swap(None);
        if let Some(canary) = &ended {
            let slot = match canary.state() {
                State::Promoted => Some(0),
                State::RolledBack => Some(1),
                State::Aborted => Some(2),
                State::Running => None,
            };
            if let Some(slot) = slot {
                self.ended[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            *self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(canary.clone());
        }
        ended
    }

    /// Canaries promoted, rolled back and aborted since start.
    pub fn ended_counts(&self) -> [(&'static str, u64); 3] {
        let count = |i: usize| self.ended[i].load(std::sync::atomic::Ordering::Relaxed);
        [
            ("promoted", count(0)),
            ("rolled_back", count(1)),
            ("aborted", count(2)),
        ]
    }

    /// The canary in progress, or else the last one, for the admin API.
    pub fn report(&self) -> Option<CanaryReport> {
        self.running()
            .or_else(|| {
                self.last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .map(|c| c.report())
    }
}
