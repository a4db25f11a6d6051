//! Running a canary: loading the candidate as a live version would be loaded (its own `init`
//! config, the live key-value store: it serves real requests), starting the traffic split,
//! and the controller that judges each step with the canary's gates — next step, hold,
//! promotion after the last step, or rollback at the first failed gate — plus the operator's
//! promote and abort. Every transition is a line of the reload history with its reason.
//!
//! Ending a canary (promotion, rollback, abort) takes the reload lock, so it is serialised
//! with reloads and with the other ending: whichever comes first ends it, the others find
//! nothing to end.

use std::sync::Arc;
use std::time::Duration;

use super::versions::VersionSource;
use super::{CandidateSource, PluginSource, Reloader};
use sha2::{Digest, Sha256};

use super::versions::short;
use crate::canary::{Canary, CanarySpec, OnRestart, State, Verdict, persist};
use crate::config::{CanaryConfig, Config};
use crate::plugin::{LoadOptions, LoadedPlugin, Split, SplitKey};

/// A canary to start.
#[derive(Debug, Clone)]
pub struct CanaryRequest {
    /// The candidate plugin.
    pub source: CandidateSource,
    /// Its `init` configuration as JSON.
    pub config_json: String,
    /// Steps, step duration, key, gates and what a restart does.
    pub spec: CanarySpec,
    /// The step to start at (0; a resumed canary's saved step).
    pub step: usize,
    /// Whether it is a canary resumed after a restart.
    pub resumed: bool,
    /// Whether the fleet judges it (fleet mode): then this node runs no controller of its own
    /// and follows the steps and the ending the fleet's store gives (`reload::fleet`).
    pub driven_by_fleet: bool,
}

/// Why a canary request was not carried out; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CanaryError {
    /// A bad request or a candidate that does not load (422).
    #[error("{0}")]
    Invalid(String),
    /// A canary already runs, none runs, or the live plugin cannot be replaced (409).
    #[error("{0}")]
    Conflict(String),
}

impl Reloader {
    /// Start a canary; its controller runs until it is promoted, rolled back or aborted.
    pub async fn start_canary(&self, request: CanaryRequest) -> Result<Arc<Canary>, CanaryError> {
        if let Some(problem) = request.spec.problem() {
            return Err(CanaryError::Invalid(problem));
        }
        let config = self.config.lock().await;
        if self.canaries.running().is_some() {
            return Err(CanaryError::Conflict(
                "a canary is already running: promote or abort it first".into(),
            ));
        }
        self.replaceable_file(&config)
            .map_err(CanaryError::Conflict)?;
        let (label, bytes) = match request.source {
            CandidateSource::Path(path) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    CanaryError::Invalid(format!("cannot read {}: {e}", path.display()))
                })?;
                (path.display().to_string(), bytes)
            }
            CandidateSource::Upload(bytes) => ("upload:canary".to_string(), bytes),
        };
        let bytes: Arc<[u8]> = bytes.into();
        let plugin = self
            .load_candidate(&config, &label, bytes.clone(), request.config_json)
            .await
            .map_err(CanaryError::Invalid)?;
        let split = Arc::new(Split::new(Arc::new(plugin), request.spec.key.clone(), 0));
        let resumed = request.resumed;
        let driven_by_fleet = request.driven_by_fleet;
        let canary = Arc::new(Canary::new(
            request.spec,
            split.clone(),
            label,
            bytes,
            request.step,
        ));
        self.canaries.start(canary.clone());
        self.decider.start_split(split);
        self.save_canary(&canary);
        drop(config);
        let started = canary.report().transitions[0].detail.clone();
        let how = if resumed {
            "resumed after a restart"
        } else {
            "started"
        };
        tracing::info!(detail = %started, "canary {how}");
        self.history
            .record("canary", true, format!("canary {how}: {started}"));
        if !driven_by_fleet && let Some(me) = self.me.upgrade() {
            tokio::spawn(me.run_canary(canary.clone()));
        }
        Ok(canary)
    }

    /// Promote the canary in progress now, whatever its step.
    pub async fn promote_canary(&self) -> Result<String, CanaryError> {
        let canary = self.canaries.running().ok_or_else(no_canary)?;
        let config = self.config.lock().await;
        self.promote_locked(&config, &canary, "promoted by the operator".into())
            .await
    }

    /// Abort the canary in progress: the live version decides every request again.
    pub async fn abort_canary(&self) -> Result<String, CanaryError> {
        let canary = self.canaries.running().ok_or_else(no_canary)?;
        let _config = self.config.lock().await;
        let detail = format!("canary {} aborted by the operator", canary.path);
        if !self.end_canary(&canary, State::Aborted, detail.clone()) {
            return Err(no_canary());
        }
        self.history.record("canary", true, detail.clone());
        Ok(detail)
    }

    /// The controller: judge the step in progress every tick until the canary ends.
    async fn run_canary(self: Arc<Self>, canary: Arc<Canary>) {
        let tick = (canary.spec.step_duration / 10)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if !self.is_running(&canary) {
                return;
            }
            let (verdict, live, candidate) = canary.judge();
            let (step, elapsed) = canary.step();
            let share = canary.spec.steps[step];
            let step_over = elapsed >= canary.spec.step_duration;
            match verdict {
                // A failed gate ends the canary at once: no need to wait out the step.
                Verdict::Fail(reasons) => {
                    let _config = self.config.lock().await;
                    let detail = format!(
                        "canary {} rolled back at {share}%: {}",
                        canary.path,
                        reasons.join("; ")
                    );
                    if self.end_canary(&canary, State::RolledBack, detail.clone()) {
                        tracing::warn!(%detail, "canary failed its gates");
                        self.history.record("canary", false, detail);
                    }
                    return;
                }
                Verdict::Pass if step_over => {
                    let figures = format!(
                        "step {share}% passed: {} requests, error rate {:.2}% (live {:.2}%), \
                         fallback rate {:.2}%, p99 {} ms (live {} ms)",
                        candidate.decisions,
                        candidate.error_rate * 100.0,
                        live.error_rate * 100.0,
                        candidate.fallback_rate * 100.0,
                        fmt_ms(candidate.p99_ms),
                        fmt_ms(live.p99_ms)
                    );
                    let config = self.config.lock().await;
                    if !self.is_running(&canary) {
                        return;
                    }
                    if canary.advance(figures.clone()) {
                        self.save_canary(&canary);
                        let now = canary.spec.steps[step + 1];
                        tracing::info!(detail = %figures, now, "canary step");
                        self.history.record(
                            "canary",
                            true,
                            format!("canary {}: {figures}; now {now}%", canary.path),
                        );
                    } else {
                        let why = format!("{figures}; every step passed");
                        if let Err(e) = self.promote_locked(&config, &canary, why).await {
                            // Never left running at its last share with no one to end it.
                            let detail = format!(
                                "canary {} aborted: every step passed but it cannot be \
                                 promoted: {e}",
                                canary.path
                            );
                            if self.end_canary(&canary, State::Aborted, detail.clone()) {
                                tracing::error!(%detail, "canary aborted");
                                self.history.record("canary", false, detail);
                            }
                        }
                        return;
                    }
                }
                Verdict::Inconclusive(why) if step_over => {
                    canary.hold(format!("step {share}% holds: {why}"));
                }
                _ => {}
            }
        }
    }

    /// Put the canary's candidate in force as the live version and end the split.
    async fn promote_locked(
        &self,
        config: &Config,
        canary: &Arc<Canary>,
        why: String,
    ) -> Result<String, CanaryError> {
        if !self.is_running(canary) {
            return Err(no_canary());
        }
        let path = self
            .replaceable_file(config)
            .map_err(CanaryError::Conflict)?;
        let config_json = canary.split.plugin.options().config_json.clone();
        let plugin = match self
            .load_candidate(config, &canary.path, canary.bytes.clone(), config_json)
            .await
        {
            Ok(plugin) => plugin,
            Err(e) => {
                // It decided its share until now, so this is rare (its `init` refusing now).
                let detail = format!("canary {} could not be promoted: {e}", canary.path);
                self.end_canary(canary, State::Aborted, detail.clone());
                self.history.record("canary", false, detail.clone());
                return Err(CanaryError::Invalid(detail));
            }
        };
        let (summary, version) = self.install(plugin, canary.bytes.clone(), VersionSource::Canary);
        self.hold_against_file(config, path, &version);
        let detail = format!("canary promoted: {summary}; {why}");
        self.end_canary(canary, State::Promoted, detail.clone());
        tracing::info!(%detail, "canary promoted");
        self.history.record("plugin", true, detail.clone());
        Ok(detail)
    }

    /// End `canary` as `state`, if it is still the one running; false if it was not.
    pub(super) fn end_canary(&self, canary: &Arc<Canary>, state: State, detail: String) -> bool {
        if !self.is_running(canary) {
            return false;
        }
        self.decider.end_split();
        canary.end(state, detail);
        self.canaries.finish();
        self.save_canary(canary);
        true
    }

    /// At start, after [`Reloader::restore_canary`]: start the config's `[plugin.canary]`,
    /// unless a canary runs or the state file shows this one (same file, bytes and steps)
    /// already ran — a restart must not run a finished canary again.
    pub async fn start_canary_at_start(&self) {
        let configured = {
            let config = self.config.lock().await;
            config.plugin.as_ref().and_then(|p| p.canary.clone())
        };
        let Some(configured) = configured else {
            return;
        };
        if self.canaries.running().is_some() {
            return;
        }
        let saved = self
            .canary_file
            .as_deref()
            .and_then(|path| persist::load(path).ok().flatten());
        let sha = std::fs::read(&configured.path)
            .ok()
            .map(|bytes| crate::reload::hex(&Sha256::digest(&bytes)));
        if let Some(saved) = saved
            && saved.path == configured.path
            && Some(&saved.sha256) == sha.as_ref()
            && saved.steps == configured.steps
        {
            tracing::info!(state = ?saved.state, "the configured canary already ran; not started again");
            return;
        }
        self.start_configured_canary(configured).await;
    }

    /// Start `[plugin.canary]`; a refusal is logged and recorded, it fails nothing else.
    pub(super) async fn start_configured_canary(&self, configured: CanaryConfig) {
        let request = SplitKey::parse(&configured.key).map(|key| CanaryRequest {
            source: CandidateSource::Path(configured.path.clone()),
            config_json: configured.config_json(),
            spec: CanarySpec {
                steps: configured.steps.clone(),
                step_duration: configured.step_duration,
                key,
                gates: configured.gates.clone(),
                on_restart: configured.on_restart,
            },
            step: 0,
            resumed: false,
            driven_by_fleet: false,
        });
        let result = match request {
            Ok(request) => self.start_canary(request).await.map(|_| ()),
            Err(e) => Err(CanaryError::Invalid(e)),
        };
        if let Err(e) = result {
            let detail = format!("[plugin.canary] not started: {e}");
            tracing::error!(%detail, "canary not started");
            self.history.record("canary", false, detail);
        }
    }

    /// Write `canary`'s state file, if lbx keeps one; a failure is logged, not fatal: the
    /// canary goes on, and a restart would find the previous state.
    fn save_canary(&self, canary: &Canary) {
        if let Some(path) = &self.canary_file
            && let Err(e) = persist::save(path, &canary.saved())
        {
            tracing::warn!(error = %e, "cannot save the canary's state");
        }
    }

    /// At start: a canary the state file says was running is resumed at its step, or
    /// recorded as aborted, as it asked (`on_restart`). Never promoted.
    pub async fn restore_canary(&self) {
        let Some(path) = &self.canary_file else {
            return;
        };
        let saved = match persist::load(path) {
            Ok(Some(saved)) if saved.state == State::Running => saved,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "canary state not read; no canary is resumed");
                return;
            }
        };
        let abort = |why: String| {
            let detail = format!(
                "canary {} aborted by a restart: {why}",
                saved.path.display()
            );
            tracing::warn!(%detail, "canary not resumed");
            self.history.record("canary", false, detail.clone());
            let ended = persist::Saved {
                state: State::Aborted,
                detail,
                ..saved.clone()
            };
            if let Err(e) = persist::save(path, &ended) {
                tracing::warn!(error = %e, "cannot save the canary's state");
            }
        };
        if saved.on_restart == OnRestart::Abort {
            abort(format!(
                "it was at step {} of {}, and on_restart is abort",
                saved.step + 1,
                saved.steps.len()
            ));
            return;
        }
        let current =
            std::fs::read(&saved.path).map(|bytes| crate::reload::hex(&Sha256::digest(&bytes)));
        match current {
            Ok(sha) if sha == saved.sha256 => {}
            Ok(sha) => {
                return abort(format!(
                    "its file now has sha256 {}, not {}",
                    short(&sha),
                    short(&saved.sha256)
                ));
            }
            Err(e) => return abort(format!("cannot read {}: {e}", saved.path.display())),
        }
        let key = match SplitKey::parse(&saved.key) {
            Ok(key) => key,
            Err(e) => return abort(e),
        };
        let request = CanaryRequest {
            source: CandidateSource::Path(saved.path.clone()),
            config_json: saved.config_json.clone(),
            spec: CanarySpec {
                steps: saved.steps.clone(),
                step_duration: saved.step_duration,
                key,
                gates: saved.gates.clone(),
                on_restart: saved.on_restart,
            },
            step: saved.step,
            resumed: true,
            driven_by_fleet: false,
        };
        if let Err(e) = self.start_canary(request).await {
            abort(e.to_string());
        }
    }

    fn is_running(&self, canary: &Arc<Canary>) -> bool {
        self.canaries
            .running()
            .is_some_and(|running| Arc::ptr_eq(&running, canary))
    }

    /// The plugin file a promoted version will hold against; why there is none otherwise.
    fn replaceable_file(&self, config: &Config) -> Result<std::path::PathBuf, String> {
        match self.plugin_source(config) {
            Some(PluginSource::File(path)) => Ok(path),
            Some(PluginSource::Embedded { name, .. }) => Err(format!(
                "the plugin in force ({name}) is embedded in the lbx binary and is not replaced \
                 at runtime"
            )),
            None => Err(
                "no plugin is configured ([plugin] path): a candidate can only replace one".into(),
            ),
        }
    }

    /// Load a candidate as the live version would be loaded, with its own `init` config.
    async fn load_candidate(
        &self,
        config: &Config,
        label: &str,
        bytes: Arc<[u8]>,
        config_json: String,
    ) -> Result<LoadedPlugin, String> {
        let options = LoadOptions {
            config_json,
            ..self.load_options(config)
        };
        let engine = self
            .engine(options.limits.deadline)
            .map_err(|e| format!("{e:#}"))?;
        let (label, trial) = (label.to_string(), self.upstreams.snapshot());
        tokio::task::spawn_blocking(move || {
            LoadedPlugin::load_bytes(&engine, &label, &bytes, options, &trial)
        })
        .await
        .map_err(|e| format!("loading stopped: {e}"))?
        .map_err(|e| e.to_string())
    }
}

fn no_canary() -> CanaryError {
    CanaryError::Conflict("no canary is running".into())
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".into(), |ms| format!("{ms}"))
}
