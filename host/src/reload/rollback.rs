//! Going back to a plugin version of the history ([`super::versions`]):
//! `POST /admin/plugin/rollback` with `{"sha256": "<hex or unique prefix>"}` or `{"steps": N}`.
//!
//! A rollback is a reload like the others: it takes the same lock, so it is serialised with
//! them; the version is rebuilt off the request path from the compile cache (milliseconds) or,
//! when the cache has let it go, compiled from the bytes the history kept; it is tried on a
//! synthetic request and put in force with one atomic store, so decisions in flight finish on
//! the version they started with. A version that fails to load now (its `init` refuses, the
//! trial decision fails) is refused and the running one keeps serving.
//!
//! A rolled-back version *holds*: the plugin file still has the bytes the operator went back
//! from, and a reload (the file watcher, SIGHUP, the admin API) that re-read it would undo the
//! rollback at once. So the reloader remembers what the file and the `[plugin]` settings said
//! at the rollback ([`Hold`]) and treats them as unchanged until either changes; then the
//! normal reload puts the new file in force. Changes elsewhere in the config (backends, log)
//! do not end the hold: they say nothing about which plugin should route. Going forward again
//! is another rollback, to the newer version.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::versions::{Lookup, Version, VersionSource, short};
use super::{PluginSource, Reloader};
use crate::config::{Config, PluginSpec};
use crate::plugin::{LoadOptions, LoadedPlugin};

/// Which version to go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// The newest version whose sha256 starts with these lowercase hex digits.
    Sha256(String),
    /// This many entries back from the one in force.
    Steps(usize),
}

/// A rollback put in force.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The version now in force (a new history entry).
    pub version: Version,
    /// Whether its compiled code came from the compile cache (else it was compiled now).
    pub from_compile_cache: bool,
    /// From the start of loading to the swap.
    pub took: Duration,
    /// What the reload history says of it.
    pub detail: String,
}

/// Why a rollback did not happen; the version in force keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RollbackError {
    /// No version in the history matches (404).
    #[error("{0}")]
    Unknown(String),
    /// A sha256 prefix matching more than one version (400).
    #[error("{0}")]
    Ambiguous(String),
    /// The version asked for is the one in force (409).
    #[error("{0}")]
    AlreadyInForce(String),
    /// There is no reloadable plugin: none configured, or one compiled into the binary (409).
    #[error("{0}")]
    NotReloadable(String),
    /// The version failed to load now (422).
    #[error("{0}")]
    Refused(String),
}

/// What the plugin file and the `[plugin]` settings said when a rollback was put in force:
/// while they still say it, reloads leave the rolled-back version in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The plugin file.
    pub path: PathBuf,
    /// SHA-256 of its bytes then (none if it could not be read).
    pub file_hash: Option<[u8; 32]>,
    /// The config's `[plugin]` settings then.
    pub spec: PluginSpec,
    /// When the rollback was put in force.
    pub since: SystemTime,
}

impl Hold {
    /// Whether a reload that would load `path` with `spec` finds what the rollback saw.
    pub fn still_holds(&self, path: &Path, spec: &PluginSpec) -> bool {
        self.path == path && self.spec == *spec && file_hash(path) == self.file_hash
    }
}

/// SHA-256 of the file at `path`, if it can be read.
pub(super) fn file_hash(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

impl Reloader {
    /// Put the version `target` names back in force; see the module doc.
    pub async fn rollback(
        &self,
        target: RollbackTarget,
        reason: Option<&str>,
    ) -> Result<RolledBack, RollbackError> {
        let config = self.config.lock().await;
        let result = self.rollback_locked(&config, &target).await;
        self.metrics.record_rollback(result.is_ok());
        let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
        match &result {
            Ok(done) => {
                tracing::info!(detail = %done.detail, reason, "rollback applied");
                self.history
                    .record("plugin", true, format!("{}{because}", done.detail));
            }
            Err(RollbackError::Refused(why)) => {
                tracing::error!(%why, "rollback refused; the running version keeps serving");
                self.history
                    .record("plugin", false, format!("rollback refused{because}: {why}"));
            }
            // Nothing was tried: the answer says why, the history has nothing to add.
            Err(other) => tracing::info!(why = %other, "rollback not done"),
        }
        result
    }

    async fn rollback_locked(
        &self,
        config: &Config,
        target: &RollbackTarget,
    ) -> Result<RolledBack, RollbackError> {
        let path = match self.plugin_source(config) {
            Some(PluginSource::File(path)) => path,
            Some(PluginSource::Embedded { name, .. }) => {
                return Err(RollbackError::NotReloadable(format!(
                    "the plugin in force ({name}) is embedded in the lbx binary and is not \
                     reloadable"
                )));
            }
            None => {
                return Err(RollbackError::NotReloadable(
                    "no plugin is configured ([plugin] path): there is nothing to roll back".into(),
                ));
            }
        };
        let version = {
            let versions = self.versions.lock().expect("versions lock");
            match target {
                RollbackTarget::Sha256(prefix) => versions.by_prefix(prefix),
                RollbackTarget::Steps(steps) => versions.steps_back(*steps),
            }
        }
        .map_err(|lookup| match lookup {
            Lookup::Unknown(why) => RollbackError::Unknown(why),
            Lookup::Ambiguous(why) => RollbackError::Ambiguous(why),
        })?;
        if let Some(current) = self.decider.current()
            && version.is_running_as(&current)
        {
            return Err(RollbackError::AlreadyInForce(format!(
                "sha256 {} with these settings is the version in force",
                short(&version.sha256())
            )));
        }

        let started = Instant::now();
        let options = LoadOptions::from_spec(&version.spec, self.kv.clone(), self.pool_size);
        let engine = self
            .engine(options.limits.deadline)
            .map_err(|e| RollbackError::Refused(format!("{e:#}")))?;
        let (name, bytes, trial) = (
            version.name.clone(),
            version.bytes.clone(),
            self.upstreams.snapshot(),
        );
        let plugin = tokio::task::spawn_blocking(move || {
            LoadedPlugin::load_bytes(&engine, &name, &bytes, options, &trial)
        })
        .await
        .map_err(|e| RollbackError::Refused(format!("loading stopped: {e}")))?
        .map_err(|e| {
            RollbackError::Refused(format!("sha256 {}: {e:#}", short(&version.sha256())))
        })?;
        let from_compile_cache = plugin.compiled_from_cache();
        let (summary, now_in_force) =
            self.install(plugin, version.bytes.clone(), VersionSource::Rollback);
        let took = started.elapsed();

        self.hold_against_file(config, path, &version);

        let detail = format!(
            "rollback to {summary} (version #{}, {}, {:.1} ms)",
            version.id,
            if from_compile_cache {
                "from the compile cache"
            } else {
                "compiled from the kept bytes"
            },
            took.as_secs_f64() * 1000.0
        );
        Ok(RolledBack {
            version: now_in_force,
            from_compile_cache,
            took,
            detail,
        })
    }

    /// Make `version`, just put in force by other means than the plugin file (a rollback, a
    /// promoted shadow), hold: what the file at `path` and `config` say now is what later
    /// reloads must not re-apply — unless it is this very version, with nothing to hold
    /// against then.
    pub(super) fn hold_against_file(&self, config: &Config, path: PathBuf, version: &Version) {
        let hold = Hold {
            file_hash: file_hash(&path),
            path,
            spec: config.plugin_spec(),
            since: SystemTime::now(),
        };
        let file_is_this_version =
            hold.file_hash == Some(version.hash) && hold.spec == version.spec;
        *self.hold.lock().expect("hold lock") = (!file_is_this_version).then_some(hold);
    }

    /// The rollback holding against the plugin file, if one does.
    pub fn rollback_hold(&self) -> Option<Hold> {
        self.hold.lock().expect("hold lock").clone()
    }
}
