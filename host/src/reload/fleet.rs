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

use super::{Refused, ReloadKind, Reloader, VersionSource, read_local_config};
use crate::config::Config;
use crate::fleet::overlay::{Applier, Overlay};

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
            *self.overlay.lock().expect("overlay lock") = Some(overlay);
            return Ok("nothing changed".into());
        }
        let result = self
            .apply_config_locked(next, &mut current, VersionSource::Fleet, drained)
            .await;
        self.record(ReloadKind::Config, &result);
        match result {
            Ok(outcome) => {
                *self.overlay.lock().expect("overlay lock") = Some(overlay);
                Ok(match outcome {
                    super::Outcome::Applied(what) => what,
                    super::Outcome::Unchanged => "nothing changed".into(),
                })
            }
            Err(Refused(reason)) => Err(reason),
        }
    }
}
