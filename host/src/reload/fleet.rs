//! Fleet mode on the reload path. The fleet's part of the config (backends with their drains,
//! the plugin, the fleet-wide settings: [`Overlay`]) is laid over the node's own file, and the
//! result goes through the same build-check-swap as any config reload, so a revision of the
//! store is put in force whole or refused whole while the last good one keeps serving. A
//! local file reload keeps the overlay in force; a new overlay re-reads the file, so both
//! halves are always current.
//!
//! Settings that need a restart (timeouts, outlier, retry) are reported as such, as they are
//! for a file edit: the node keeps its running values until it restarts.

use std::collections::HashSet;
use std::path::Path;

use super::{
    CanaryRequest, CandidateSource, Refused, ReloadKind, Reloader, VersionSource, read_local_config,
};
use crate::canary::{CanarySpec, OnRestart, State};
use crate::config::Config;
use crate::fleet::canary::{FleetCanaryState, NodeCanary};
use crate::fleet::overlay::{Applier, Overlay};
use crate::plugin::SplitKey;

impl Reloader {
    /// The config file re-read, with the overlay in force laid over it, and validated; with
    /// the backends the fleet drained.
    pub(super) fn read_config(&self, path: &Path) -> Result<(Config, HashSet<String>), Refused> {
        let mut next = read_local_config(path, &self.overrides)?;
        let drained = match &*self.overlay.lock().expect("overlay lock") {
            Some(overlay) => overlay
                .apply_to(&mut next)
                .map_err(|problem| Refused(problem.to_string()))?,
            None => HashSet::new(),
        };
        next.validate().map_err(|e| Refused(e.to_string()))?;
        Ok((next, drained))
    }

    /// The fleet's part of the config in force, if lbx runs in fleet mode.
    pub fn overlay(&self) -> Option<Overlay> {
        self.overlay.lock().expect("overlay lock").clone()
    }
}

impl Applier for Reloader {
    async fn apply_overlay(&self, overlay: Overlay) -> Result<String, String> {
        let mut current = self.config.lock().await;
        // The node's own half: the file as it is now, or (no file, or a file that does not
        // read right now) the config in force, whose fleet half the overlay replaces whole.
        let mut next = match &self.config_file {
            Some(path) => read_local_config(path, &self.overrides).unwrap_or_else(|refused| {
                tracing::warn!(%refused, "fleet change applied over the config in force: the \
                    config file cannot be read");
                current.clone()
            }),
            None => current.clone(),
        };
        let drained = overlay
            .apply_to(&mut next)
            .map_err(|problem| problem.to_string())?;
        if let Err(e) = next.validate() {
            let result = Err(Refused(e.to_string()));
            self.record(ReloadKind::Config, &result);
            return Err(e.to_string());
        }
        let unchanged = next == *current
            && drained == self.backends.fleet_drained().await
            && !self
                .plugin_source(&next)
                .is_some_and(|source| self.plugin_differs(&source, &self.load_options(&next)));
        if unchanged {
            drop(current);
            // The canary is not part of the config: it may be all that changed.
            let canary = self.follow_fleet_canary(&overlay).await?;
            *self.overlay.lock().expect("overlay lock") = Some(overlay);
            return Ok(canary.unwrap_or_else(|| "nothing changed".into()));
        }
        let result = self
            .apply_config_locked(next, &mut current, VersionSource::Fleet, drained)
            .await;
        self.record(ReloadKind::Config, &result);
        drop(current);
        match result {
            Ok(outcome) => {
                let mut what = match outcome {
                    super::Outcome::Applied(what) => what,
                    super::Outcome::Unchanged => "nothing changed".into(),
                };
                if let Some(canary) = self.follow_fleet_canary(&overlay).await? {
                    what = format!("{what}; {canary}");
                }
                *self.overlay.lock().expect("overlay lock") = Some(overlay);
                Ok(what)
            }
            Err(Refused(reason)) => Err(reason),
        }
    }

    fn canary_counts(&self) -> Option<NodeCanary> {
        let id = self
            .fleet_canary
            .lock()
            .expect("fleet canary lock")
            .clone()?;
        let canary = self.canaries.running()?;
        let figures = canary.figures();
        Some(NodeCanary {
            id,
            step: canary.step().0,
            live: figures.live.counts(),
            candidate: figures.candidate.counts(),
        })
    }
}

impl Reloader {
    /// Follow the fleet canary of `overlay`: start its split at its step, move to the step
    /// the fleet reached, or end it as the fleet ended it. What changed, if anything; an error
    /// when its candidate cannot be started here (the node refuses the revision).
    async fn follow_fleet_canary(&self, overlay: &Overlay) -> Result<Option<String>, String> {
        let wanted = overlay.state.canary.as_ref();
        let following = self.fleet_canary.lock().expect("fleet canary lock").clone();
        let running = self.canaries.running();
        let ours = running.clone().filter(|_| {
            following.is_some() && following.as_deref() == wanted.map(|c| c.id.as_str())
        });
        match wanted {
            Some(canary) if canary.state == FleetCanaryState::Running => {
                if let Some(local) = ours {
                    let moved = local.go_to_step(
                        canary.step,
                        canary
                            .detail
                            .clone()
                            .unwrap_or_else(|| "the fleet moved on".into()),
                    );
                    return Ok(
                        moved.then(|| format!("fleet canary at {}%", canary.steps[canary.step]))
                    );
                }
                if let Some(other) = running {
                    // A canary of this node's own, or the fleet's previous one: the fleet's
                    // canary replaces it, so every node splits alike.
                    let _config = self.config.lock().await;
                    let detail = format!(
                        "canary {} aborted: the fleet started canary {}",
                        other.path, canary.id
                    );
                    if self.end_canary(&other, State::Aborted, detail.clone()) {
                        self.history.record("canary", true, detail);
                    }
                }
                let Some(module) = overlay.canary_module.clone() else {
                    return Err("the fleet canary's module is not here".into());
                };
                let key = SplitKey::parse(&canary.key).map_err(|e| format!("canary key: {e}"))?;
                let request = CanaryRequest {
                    source: CandidateSource::Path(module),
                    config_json: serde_json::Value::Object(canary.config.clone()).to_string(),
                    spec: CanarySpec {
                        steps: canary.steps.clone(),
                        step_duration: canary.step_duration,
                        key,
                        gates: canary.gates.clone(),
                        on_restart: OnRestart::Abort,
                    },
                    step: canary.step,
                    resumed: false,
                    driven_by_fleet: true,
                };
                self.start_canary(request)
                    .await
                    .map_err(|e| format!("fleet canary {}: {e}", canary.id))?;
                *self.fleet_canary.lock().expect("fleet canary lock") = Some(canary.id.clone());
                Ok(Some(format!(
                    "fleet canary {} started at {}%",
                    canary.id, canary.steps[canary.step]
                )))
            }
            _ => {
                // No canary, or an ended one: end the split this node runs for the fleet.
                let Some(local) = running.filter(|_| following.is_some()) else {
                    return Ok(None);
                };
                let (state, detail) = match wanted {
                    Some(ended) if Some(&ended.id) == following.as_ref() => (
                        match ended.state {
                            FleetCanaryState::Promoted => State::Promoted,
                            FleetCanaryState::RolledBack => State::RolledBack,
                            _ => State::Aborted,
                        },
                        ended
                            .detail
                            .clone()
                            .unwrap_or_else(|| "ended by the fleet".into()),
                    ),
                    _ => (State::Aborted, "the fleet's canary was removed".into()),
                };
                let _config = self.config.lock().await;
                let detail = format!("fleet canary {}: {detail}", local.path);
                let ended = self.end_canary(&local, state, detail.clone());
                *self.fleet_canary.lock().expect("fleet canary lock") = None;
                if ended {
                    self.history
                        .record("canary", state != State::RolledBack, detail.clone());
                }
                Ok(ended.then_some(detail))
            }
        }
    }
}
