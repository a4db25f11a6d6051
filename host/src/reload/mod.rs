//! Hot reload: a new plugin version, a new configuration or new TLS certificates are built and
//! checked off the request path, then put in force with one atomic store each. Anything that
//! fails (a file that is not a component, a plugin whose `init` refuses its config, an invalid
//! config, a certificate that does not parse or whose key does not match) is refused with a log
//! line naming why, counted, and the running version keeps serving.
//!
//! Triggers: the file watcher ([`watch`]), SIGHUP, `POST /admin/reload` (which `lbx reload`,
//! [`remote`], sends) and `POST /admin/plugin/reload`. Reloads are serialised; a reload that
//! finds nothing changed (same bytes, same settings) does nothing. Each plugin version put in
//! force is kept in a bounded history ([`versions`]) that a rollback ([`rollback`]) goes back
//! to through the same serialised path; a rolled-back version holds against the unchanged file.

mod canary;
mod fleet;
mod metrics;
pub mod remote;
mod rollback;
mod shadows;
mod versions;
pub mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::canary::Canaries;
use crate::config::{Config, Overrides};
use crate::discovery::Discovery;
use crate::fleet::overlay::Overlay;
use crate::history::ReloadHistory;
use crate::plugin::{Decider, KvStore, LoadError, LoadOptions, LoadedPlugin, PluginEngine};
use crate::proxy::AccessLogSettings;
use crate::runtime_backends::BackendManager;
use crate::shadow::Shadows;
use crate::signals::Scraper;
use crate::tls::Certificates;
use crate::upstream::{BackendSet, Upstreams};
pub use canary::{CanaryError, CanaryRequest};
pub use metrics::{ReloadKind, ReloadMetrics};
pub use rollback::{Hold, RollbackError, RollbackTarget, RolledBack};
pub use shadows::{CandidateSource, PromoteError, Promoted, ShadowRequest};
pub use versions::{MIN_PREFIX, Version, VersionList, VersionSource, hex};
use versions::{PluginVersions, short};

/// Where the routing plugin comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A `.wasm` file on disk (watched, reloadable).
    File(PathBuf),
    /// A component compiled into the lbx binary (the demo's plugin; never reloaded).
    Embedded {
        /// Name for logs.
        name: &'static str,
        /// The component's bytes.
        bytes: &'static [u8],
    },
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Something new is in force; the text says what.
    Applied(String),
    /// Nothing had changed.
    Unchanged,
}

/// A refused reload: the reason, as logged.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Everything a reload touches.
#[derive(Debug)]
pub struct Reloader {
    /// Itself, for the tasks it starts (a canary's controller) to own.
    me: std::sync::Weak<Reloader>,
    config_file: Option<PathBuf>,
    overrides: Overrides,
    embedded: Option<PluginSource>,
    decider: Arc<Decider>,
    shadows: Arc<Shadows>,
    canaries: Arc<Canaries>,
    /// Where a canary in progress is kept across restarts, if anywhere.
    canary_file: Option<PathBuf>,
    upstreams: Arc<Upstreams>,
    backends: Arc<BackendManager>,
    discovery: Arc<Discovery>,
    signals: Arc<Scraper>,
    kv: Arc<KvStore>,
    certificates: Option<Arc<Certificates>>,
    metrics: ReloadMetrics,
    history: Arc<ReloadHistory>,
    access_log: Arc<AccessLogSettings>,
    pool_size: usize,
    engine: Mutex<Option<PluginEngine>>,
    /// The configuration in force; its lock also serialises reloads.
    config: tokio::sync::Mutex<Config>,
    last_refusal: Mutex<Option<String>>,
    /// The plugin versions put in force, newest first.
    versions: Mutex<PluginVersions>,
    /// What a rollback in force holds against (see [`rollback`]).
    hold: Mutex<Option<Hold>>,
    /// In fleet mode, the fleet's part of the config in force, laid over every re-read of the
    /// file (see [`fleet`]).
    overlay: Mutex<Option<Overlay>>,
    /// The id of the fleet canary this node follows, while it runs.
    fleet_canary: Mutex<Option<String>>,
}

/// The parts a [`Reloader`] is built from.
#[derive(Debug)]
pub struct ReloaderParts {
    /// The configuration in force at start.
    pub config: Config,
    /// The file it was read from, if any (then it is watched and re-read on reload).
    pub config_file: Option<PathBuf>,
    /// Command-line settings, applied again over every re-read file.
    pub overrides: Overrides,
    /// An embedded plugin that replaces the config's `[plugin] path`.
    pub embedded: Option<PluginSource>,
    /// The decider whose plugin is swapped.
    pub decider: Arc<Decider>,
    /// The shadow plugins the proxy samples requests for.
    pub shadows: Arc<Shadows>,
    /// The canary in progress, if any.
    pub canaries: Arc<Canaries>,
    /// The backend set's owner (config reloads and the admin API change it).
    pub backends: Arc<BackendManager>,
    /// The DNS names whose answers are backends (`[[discovery.dns]]` changes are put in force
    /// here).
    pub discovery: Arc<Discovery>,
    /// The backend signals in force (`[signals]` changes are put in force here).
    pub signals: Arc<Scraper>,
    /// The key-value store plugins share.
    pub kv: Arc<KvStore>,
    /// The HTTPS listener's certificates, when there is one.
    pub certificates: Option<Arc<Certificates>>,
    /// Reload counters.
    pub metrics: ReloadMetrics,
    /// The last reloads, for the admin API.
    pub history: Arc<ReloadHistory>,
    /// The access log's switch and format, applied from `[log]` on every config reload.
    pub access_log: Arc<AccessLogSettings>,
    /// Plugin instances to keep per version (one per worker).
    pub pool_size: usize,
}

impl Reloader {
    /// A reloader; nothing is loaded until [`Reloader::load_initial`]. Shared: the tasks it
    /// starts hold it too.
    pub fn new(parts: ReloaderParts) -> Arc<Self> {
        let canary_file = parts
            .config
            .state_file(parts.config_file.as_deref())
            .map(|state_file| crate::canary::persist::beside(&state_file));
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config_file: parts.config_file,
            overrides: parts.overrides,
            embedded: parts.embedded,
            decider: parts.decider,
            shadows: parts.shadows,
            canaries: parts.canaries,
            canary_file,
            upstreams: parts.backends.upstreams().clone(),
            backends: parts.backends,
            discovery: parts.discovery,
            signals: parts.signals,
            kv: parts.kv,
            certificates: parts.certificates,
            metrics: parts.metrics,
            history: parts.history,
            access_log: parts.access_log,
            pool_size: parts.pool_size,
            engine: Mutex::new(None),
            versions: Mutex::new(PluginVersions::new(parts.config.plugin_settings().history)),
            config: tokio::sync::Mutex::new(parts.config),
            last_refusal: Mutex::new(None),
            hold: Mutex::new(None),
            overlay: Mutex::new(None),
            fleet_canary: Mutex::new(None),
        })
    }

    /// Load the configured plugin at start. Unlike a reload, failure here is fatal: lbx must
    /// not start routing with something other than what the operator asked for.
    pub async fn load_initial(&self) -> anyhow::Result<()> {
        let config = self.config.lock().await;
        match self.plugin_source(&config) {
            Some(source) => {
                let origin = match source {
                    PluginSource::File(_) => VersionSource::File,
                    PluginSource::Embedded { .. } => VersionSource::Embedded,
                };
                let options = self.load_options(&config);
                let (plugin, bytes) = self
                    .load(source, options, self.upstreams.snapshot())
                    .await?;
                tracing::info!(plugin = plugin.name(), sha256 = %plugin.sha256(), "routing plugin loaded");
                self.remember(&plugin, bytes, origin);
                self.decider.install(Some(plugin));
            }
            None => tracing::info!("no routing plugin: using built-in least-in-flight"),
        }
        let shadows = self
            .load_configured_shadows(&config)
            .await
            .map_err(|refused| anyhow::anyhow!("{refused}"))?;
        for shadow in &shadows {
            tracing::info!(shadow = %shadow.name, plugin = shadow.plugin.name(),
                sha256 = %shadow.plugin.sha256(), sample = shadow.sample, "shadow plugin started");
        }
        self.install_configured_shadows(shadows);
        Ok(())
    }

    /// Files whose changes trigger a reload: the plugin (when loaded from a file), the config
    /// file, and the HTTPS certificates and keys.
    pub async fn watched_files(&self) -> Vec<PathBuf> {
        let config = self.config.lock().await;
        let mut files: Vec<PathBuf> = self.config_file.iter().cloned().collect();
        if let Some(PluginSource::File(path)) = self.plugin_source(&config) {
            files.push(path);
        }
        if self.certificates.is_some() {
            for pair in &config.tls.certificates {
                files.push(pair.cert.clone());
                files.push(pair.key.clone());
            }
        }
        files
    }

    /// Whether files are watched at all (`[reload] watch`) and the debounce to use.
    pub async fn watch_settings(&self) -> (bool, Duration) {
        let config = self.config.lock().await;
        (config.reload.watch, config.reload.debounce)
    }

    /// The last reloads and backend changes, newest first.
    pub fn history(&self) -> &Arc<ReloadHistory> {
        &self.history
    }

    /// The backend set's owner.
    pub fn backends(&self) -> &Arc<BackendManager> {
        &self.backends
    }

    /// The DNS names being watched.
    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    /// The reason the last reload was refused, until one succeeds.
    pub fn last_refusal(&self) -> Option<String> {
        self.last_refusal.lock().expect("refusal lock").clone()
    }

    /// The plugin versions put in force, newest first.
    pub fn plugin_versions(&self) -> VersionList {
        self.versions.lock().expect("versions lock").list()
    }

    /// Re-read the plugin file and put it in force if it changed; `source` says who asked
    /// (recorded with the version).
    pub async fn reload_plugin(&self, source: VersionSource) -> Result<Outcome, Refused> {
        let config = self.config.lock().await;
        let result = self.reload_plugin_locked(&config, source).await;
        self.record(ReloadKind::Plugin, &result);
        result
    }

    /// Re-read the config file (if lbx was started with one), the plugin file and the
    /// certificates, and apply what changed. What cannot change without a restart is reported,
    /// not applied. Each part is applied or refused on its own. `source` says who asked
    /// (recorded with a new plugin version).
    pub async fn reload_all(&self, source: VersionSource) -> Result<Outcome, Refused> {
        let config_result = self.reload_config_and_plugin(source).await;
        let certificate_result = self.reload_certificates().await;
        combine(config_result, certificate_result)
    }

    /// Re-read the certificate and key files of the config in force; put them in force if
    /// they changed and all load.
    pub async fn reload_certificates(&self) -> Result<Outcome, Refused> {
        let Some(certificates) = &self.certificates else {
            return Ok(Outcome::Unchanged);
        };
        let config = self.config.lock().await;
        let result = match certificates.reload(&config.tls.certificates) {
            Ok(true) => {
                for (cert, names) in certificates.describe() {
                    tracing::info!(certificate = %cert.display(), names = ?names, "serving certificate");
                }
                Ok(Outcome::Applied(format!(
                    "{} certificate(s)",
                    config.tls.certificates.len()
                )))
            }
            Ok(false) => Ok(Outcome::Unchanged),
            Err(e) => Err(Refused(format!("certificates: {e}"))),
        };
        self.record(ReloadKind::Certificates, &result);
        result
    }

    async fn reload_config_and_plugin(&self, source: VersionSource) -> Result<Outcome, Refused> {
        let Some(path) = &self.config_file else {
            return self.reload_plugin(source).await;
        };
        let mut current = self.config.lock().await;
        let next = match self.read_config(path) {
            Ok(next) => next,
            Err(refused) => {
                let result = Err(refused);
                self.record(ReloadKind::Config, &result);
                return result;
            }
        };
        let (next, fleet_drained) = next;
        if next == *current && fleet_drained == self.backends.fleet_drained().await {
            // Only the plugin file can have changed: count it as a plugin reload.
            let result = self.reload_plugin_locked(&current, source).await;
            self.record(ReloadKind::Plugin, &result);
            return result;
        }
        let canary_before = configured_canary(&current);
        let result = self
            .apply_config_locked(next, &mut current, source, fleet_drained)
            .await;
        self.record(ReloadKind::Config, &result);
        let canary_after = configured_canary(&current);
        drop(current);
        if result.is_ok()
            && canary_after != canary_before
            && let Some(canary) = canary_after
        {
            self.start_configured_canary(canary).await;
        }
        result
    }

    async fn reload_plugin_locked(
        &self,
        config: &Config,
        source: VersionSource,
    ) -> Result<Outcome, Refused> {
        let Some(plugin_file @ PluginSource::File(_)) = self.plugin_source(config) else {
            return Ok(Outcome::Unchanged); // no plugin, or an embedded one
        };
        let options = self.load_options(config);
        if !self.plugin_differs(&plugin_file, &options) {
            return Ok(Outcome::Unchanged);
        }
        let (plugin, bytes) = self
            .load(plugin_file, options, self.upstreams.snapshot())
            .await
            .map_err(|e| Refused(format!("{e:#}")))?;
        Ok(Outcome::Applied(self.install(plugin, bytes, source).0))
    }

    async fn apply_config_locked(
        &self,
        next: Config,
        current: &mut Config,
        source: VersionSource,
        fleet_drained: HashSet<String>,
    ) -> Result<Outcome, Refused> {
        let backends_changed = next.backends != current.backends
            || next.health != current.health
            || fleet_drained != self.backends.fleet_drained().await;
        // Compared resolved: `max_bytes = 1048576` and `"1MiB"` are no change.
        let signals = match next.signals.resolve() {
            Ok(spec) if spec != *self.signals.signals().spec() => Some(spec),
            Ok(_) => None,
            Err(problems) => {
                let problems: Vec<_> = problems.iter().map(ToString::to_string).collect();
                return Err(Refused(problems.join("; ")));
            }
        };
        // Plugins learn the signals' names with the backend set: a new list of signals comes
        // with a new set (same backends, next generation), so each plugin instance is told.
        let names_changed = signals
            .as_ref()
            .is_some_and(|spec| spec.selectors != self.signals.signals().spec().selectors);
        let renew_set = backends_changed || names_changed;
        let next_source = self.plugin_source(&next);
        let next_options = self.load_options(&next);
        let plugin_changed = match &next_source {
            Some(source) => self.plugin_differs(source, &next_options),
            None => self.decider.current().is_some(),
        };

        // Build everything first, apply only if all of it is good. The new backend set is the
        // file's merged with the admin API's changes; it holds the backend lock until applied.
        let backends = if renew_set {
            Some(
                self.backends
                    .reconfigure(next.backends.clone(), next.health.clone(), fleet_drained)
                    .await
                    .map_err(Refused)?,
            )
        } else {
            None
        };
        let plugin = match (&next_source, plugin_changed) {
            (Some(plugin_source), true) => {
                let trial = backends
                    .as_ref()
                    .map_or_else(|| self.upstreams.snapshot(), |b| b.set());
                let loaded = self
                    .load(plugin_source.clone(), next_options, trial)
                    .await
                    .map_err(|e| Refused(format!("{e:#}")))?;
                Some(loaded)
            }
            _ => None,
        };
        let shadows = self.load_configured_shadows(&next).await?;

        let mut applied = Vec::new();
        // Signals first: a plugin instance that sees the new set must find the new names.
        let signals_before = self.signals.signals().spec().clone();
        if let Some(spec) = signals {
            applied.push(describe_signals(&spec));
            self.signals.reconfigure(spec);
        }
        if let Some(backends) = backends {
            let count = backends.set().len();
            if let Err(refused) = backends.commit() {
                self.signals.reconfigure(signals_before);
                return Err(Refused(refused));
            }
            if backends_changed {
                applied.push(match count {
                    1 => "1 backend".to_string(),
                    n => format!("{n} backends"),
                });
            }
        }
        if next.discovery != current.discovery
            && let Some(change) = self.discovery.reconfigure(&next.discovery.dns).await
        {
            applied.push(change);
        }
        if let Some((plugin, bytes)) = plugin {
            applied.push(self.install(plugin, bytes, source).0);
        } else if plugin_changed {
            self.decider.install(None);
            self.versions.lock().expect("versions lock").none_in_force();
            *self.hold.lock().expect("hold lock") = None;
            applied.push("plugin removed: built-in least-in-flight routes".into());
        }
        if let Some(change) = self.install_configured_shadows(shadows) {
            applied.push(change);
        }
        let settings = next.plugin_settings();
        self.decider
            .breaker()
            .configure(settings.disable_after_failures, settings.disabled_for);
        self.kv.set_max_bytes(settings.kv_max_bytes);
        self.versions
            .lock()
            .expect("versions lock")
            .set_capacity(settings.history);
        if next.log != current.log {
            self.access_log.apply(&next.log);
            crate::logging::set_format(next.log.format);
            applied.push(format!(
                "log format {}, access log {}",
                next.log.format.as_str(),
                if next.log.access { "on" } else { "off" }
            ));
        }
        let mut next = next;
        let restart_keys = hold_restart_only_keys(current, &mut next);
        for key in &restart_keys {
            tracing::warn!(
                key,
                "this setting changed in the config; it takes effect after a restart, and the \
                 running value stays until then"
            );
        }
        let (was, now) = (current.plugin_settings(), next.plugin_settings());
        let plugin_settings_changed = (
            was.disable_after_failures,
            was.disabled_for,
            was.kv_max_bytes,
        ) != (
            now.disable_after_failures,
            now.disabled_for,
            now.kv_max_bytes,
        );
        let history_changed = was.history != now.history;
        *current = next;
        if plugin_settings_changed {
            applied.push("plugin breaker and key-value store settings".into());
        }
        if history_changed {
            applied.push(format!("plugin history keeps {} versions", now.history));
        }
        let mut outcome = applied.join(", ");
        if let Some(note) = restart_note(&restart_keys) {
            if outcome.is_empty() {
                outcome = format!("nothing changed now; {note}");
            } else {
                outcome = format!("{outcome}; {note}");
            }
        } else if outcome.is_empty() {
            // What changed is put in force elsewhere (the certificate list, by the certificate
            // reload that follows).
            outcome = "config re-read; nothing else to apply".into();
        }
        Ok(Outcome::Applied(outcome))
    }

    /// Whether loading `source` with `options` would give something other than what runs. A
    /// rollback holding against this file and these settings makes them no change.
    fn plugin_differs(&self, source: &PluginSource, options: &LoadOptions) -> bool {
        let Some(current) = self.decider.current() else {
            return true;
        };
        if let PluginSource::File(path) = source {
            let hold = self.hold.lock().expect("hold lock");
            if hold
                .as_ref()
                .is_some_and(|hold| hold.still_holds(path, &options.spec()))
            {
                return false;
            }
        }
        let same_settings = current.options().config_json == options.config_json
            && current.options().limits == options.limits;
        let same_bytes = match source {
            PluginSource::File(path) => std::fs::read(path)
                .map(|bytes| <[u8; 32]>::from(Sha256::digest(&bytes)) == *current.content_hash())
                .unwrap_or(false), // unreadable: let the load report why
            PluginSource::Embedded { .. } => true,
        };
        !(same_settings && same_bytes)
    }

    /// Put `plugin`, built from `bytes`, in force, as a new version of the history; whatever
    /// a rollback held against is over. Returns what the reload says of it, and the entry.
    fn install(
        &self,
        plugin: LoadedPlugin,
        bytes: Arc<[u8]>,
        source: VersionSource,
    ) -> (String, Version) {
        let summary = format!(
            "plugin {} sha256 {}",
            plugin.name(),
            short(&plugin.sha256())
        );
        tracing::info!(plugin = plugin.name(), sha256 = %plugin.sha256(), source = source.as_str(), "new plugin version in force");
        let version = self.remember(&plugin, bytes, source);
        *self.hold.lock().expect("hold lock") = None;
        // The previous version is dropped when the last decision using it returns; its
        // instances and compiled code go with it (unless the compile cache still holds it).
        drop(self.decider.install(Some(plugin)));
        crate::plugin::return_free_memory();
        (summary, version)
    }

    /// Record `plugin` in the history as the version in force.
    fn remember(&self, plugin: &LoadedPlugin, bytes: Arc<[u8]>, source: VersionSource) -> Version {
        self.versions.lock().expect("versions lock").put_in_force(
            *plugin.content_hash(),
            plugin.name().to_string(),
            bytes,
            plugin.options().spec(),
            source,
        )
    }

    fn record(&self, kind: ReloadKind, result: &Result<Outcome, Refused>) {
        let what = match kind {
            ReloadKind::Plugin => "plugin",
            ReloadKind::Config => "config",
            ReloadKind::Certificates => "certificates",
        };
        match result {
            Ok(Outcome::Applied(detail)) => self.history.record(what, true, detail.clone()),
            Ok(Outcome::Unchanged) => {}
            Err(Refused(reason)) => self.history.record(what, false, reason.clone()),
        }
        match result {
            Ok(Outcome::Applied(what)) => {
                self.metrics.record(kind, true);
                *self.last_refusal.lock().expect("refusal lock") = None;
                tracing::info!(applied = %what, "reload applied");
            }
            Ok(Outcome::Unchanged) => tracing::debug!("reload: nothing changed"),
            Err(Refused(reason)) => {
                self.metrics.record(kind, false);
                *self.last_refusal.lock().expect("refusal lock") = Some(reason.clone());
                tracing::error!(%reason, "reload refused; the running version keeps serving");
            }
        }
    }

    fn plugin_source(&self, config: &Config) -> Option<PluginSource> {
        self.embedded.clone().or_else(|| {
            config
                .plugin
                .as_ref()
                .map(|p| PluginSource::File(p.path.clone()))
        })
    }

    fn load_options(&self, config: &Config) -> LoadOptions {
        LoadOptions::from_spec(&config.plugin_spec(), self.kv.clone(), self.pool_size)
    }

    /// Read, compile (or take from the cache) and smoke-test off the async threads: compiling
    /// takes milliseconds to seconds. Returns the bytes too, for the version history.
    async fn load(
        &self,
        source: PluginSource,
        options: LoadOptions,
        trial: Arc<BackendSet>,
    ) -> anyhow::Result<(LoadedPlugin, Arc<[u8]>)> {
        let engine = self.engine(options.limits.deadline)?;
        let loaded = tokio::task::spawn_blocking(move || {
            let (name, bytes): (String, Arc<[u8]>) = match source {
                PluginSource::File(path) => {
                    let bytes = std::fs::read(&path).map_err(|reason| LoadError::Read {
                        path: path.clone(),
                        reason,
                    })?;
                    (path.display().to_string(), bytes.into())
                }
                PluginSource::Embedded { name, bytes } => (name.to_string(), bytes.into()),
            };
            LoadedPlugin::load_bytes(&engine, &name, &bytes, options, &trial)
                .map(|plugin| (plugin, bytes))
        })
        .await??;
        Ok(loaded)
    }

    fn engine(&self, deadline: Duration) -> anyhow::Result<PluginEngine> {
        let mut engine = self.engine.lock().expect("engine lock");
        if let Some(engine) = engine.as_ref() {
            return Ok(engine.clone());
        }
        let created = PluginEngine::new(deadline)?;
        *engine = Some(created.clone());
        Ok(created)
    }
}

/// The config's `[plugin.canary]`, if any.
fn configured_canary(config: &Config) -> Option<crate::config::CanaryConfig> {
    config.plugin.as_ref().and_then(|p| p.canary.clone())
}

/// One outcome for two independent reloads: refused if either was (both reasons), applied if
/// either applied something.
fn combine(a: Result<Outcome, Refused>, b: Result<Outcome, Refused>) -> Result<Outcome, Refused> {
    match (a, b) {
        (Err(Refused(x)), Err(Refused(y))) => Err(Refused(format!("{x}; {y}"))),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(Outcome::Applied(x)), Ok(Outcome::Applied(y))) => {
            Ok(Outcome::Applied(format!("{x}, {y}")))
        }
        (Ok(Outcome::Applied(x)), _) | (_, Ok(Outcome::Applied(x))) => Ok(Outcome::Applied(x)),
        _ => Ok(Outcome::Unchanged),
    }
}

/// Read the config file and apply the command line's overrides (not yet validated: in fleet
/// mode the fleet's part is laid over it first).
fn read_local_config(path: &Path, overrides: &Overrides) -> Result<Config, Refused> {
    let mut next = Config::load(path).map_err(|e| Refused(e.to_string()))?;
    next.apply(overrides.clone());
    Ok(next)
}

/// Settings a running process cannot change: each that differs is reported by key and set back
/// in `next` to the value in force, so the config kept as current describes what runs — a
/// later reload compares against it, and the certificates are re-read from the HTTPS listener
/// that actually serves (removing `[tls]` must not leave that listener with none).
fn hold_restart_only_keys(current: &Config, next: &mut Config) -> Vec<&'static str> {
    fn hold<T: PartialEq + Clone>(
        keys: &mut Vec<&'static str>,
        key: &'static str,
        running: &T,
        next: &mut T,
    ) {
        if running != next {
            keys.push(key);
            *next = running.clone();
        }
    }
    let mut keys = Vec::new();
    hold(&mut keys, "listen", &current.listen, &mut next.listen);
    hold(&mut keys, "workers", &current.workers, &mut next.workers);
    hold(&mut keys, "timeouts", &current.timeouts, &mut next.timeouts);
    hold(&mut keys, "outlier", &current.outlier, &mut next.outlier);
    hold(&mut keys, "retry", &current.retry, &mut next.retry);
    hold(&mut keys, "pool", &current.pool, &mut next.pool);
    hold(&mut keys, "admin", &current.admin, &mut next.admin);
    hold(&mut keys, "proxy", &current.proxy, &mut next.proxy);
    hold(&mut keys, "fleet", &current.fleet, &mut next.fleet);
    if current.tls.listen != next.tls.listen {
        // Another listener (or none) needs a restart; the one running keeps its certificates.
        keys.push("tls.listen");
        next.tls.listen.clone_from(&current.tls.listen);
        next.tls.certificates.clone_from(&current.tls.certificates);
    }
    hold(
        &mut keys,
        "tls.redirect_http",
        &current.tls.redirect_http,
        &mut next.tls.redirect_http,
    );
    hold(&mut keys, "reload", &current.reload, &mut next.reload);
    // Recording is switched at runtime by POST /admin/record, not by a reload.
    hold(&mut keys, "record", &current.record, &mut next.record);
    keys
}

/// What a reload could not apply: `listen changed; it takes effect after a restart`,
/// `listen, workers and retry changed; they take effect after a restart`.
fn restart_note(keys: &[&str]) -> Option<String> {
    let (last, rest) = keys.split_last()?;
    Some(if rest.is_empty() {
        format!("{last} changed; it takes effect after a restart")
    } else {
        format!(
            "{} and {last} changed; they take effect after a restart",
            rest.join(", ")
        )
    })
}

/// What a reload says of new `[signals]`.
fn describe_signals(spec: &crate::config::SignalsSpec) -> String {
    match spec.selectors.len() {
        0 => "signals off".into(),
        n => format!(
            "signals: {n} scraped from {} every {}",
            spec.path,
            humantime::format_duration(spec.interval)
        ),
    }
}
