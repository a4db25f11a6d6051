//! Loading shadow plugins the way the live one is loaded (compiled or taken from the cache,
//! `init` with their config, one trial decision), each with an overlay of the live key-value
//! store, and putting them in force in the [`Shadows`] the proxy offers samples to: the config
//! file's `[[plugin.shadow]]` with each config load, and the admin API's on request.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::versions::{Version, VersionSource};
use super::{PluginSource, Refused, Reloader};
use crate::config::shadow::{name_problem, sample_problem};
use crate::config::{Config, ShadowConfig};
use crate::plugin::{Breaker, KvStore, LoadOptions, LoadedPlugin};
use crate::shadow::{Origin, Shadow};

/// A shadow put in force as the live plugin.
#[derive(Debug, Clone)]
pub struct Promoted {
    /// The version now in force (a new history entry, source `shadow`).
    pub version: Version,
    /// What the reload history says of it.
    pub detail: String,
}

/// Why a shadow was not promoted; the live version keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PromoteError {
    /// No shadow of that name runs (404).
    #[error("{0}")]
    Unknown(String),
    /// No reloadable live plugin to replace (409).
    #[error("{0}")]
    NotReloadable(String),
    /// It failed to load as the live plugin (422).
    #[error("{0}")]
    Refused(String),
}

/// Where a candidate plugin (a shadow's, a canary's) comes from.
#[derive(Debug, Clone)]
pub enum CandidateSource {
    /// A `.wasm` file lbx can read.
    Path(std::path::PathBuf),
    /// Bytes uploaded through the admin API.
    Upload(Vec<u8>),
}

/// A shadow to start through the admin API.
#[derive(Debug, Clone)]
pub struct ShadowRequest {
    /// Its name (default: the file's stem, or `upload`).
    pub name: Option<String>,
    /// The plugin.
    pub source: CandidateSource,
    /// Its `init` configuration as JSON.
    pub config_json: String,
    /// Share of requests it sees.
    pub sample: f64,
}

impl Reloader {
    /// Start (or replace) a shadow from the admin API. Refused, with the reason, when its name
    /// or sample rate is wrong or the plugin does not load; nothing running changes then.
    pub async fn start_shadow(&self, request: ShadowRequest) -> Result<Arc<Shadow>, Refused> {
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| match &request.source {
                CandidateSource::Path(path) => crate::config::shadow::stem(path),
                CandidateSource::Upload(_) => "upload".into(),
            });
        let problem = name_problem(&name)
            .map(|p| format!("name: {p}"))
            .or_else(|| sample_problem(request.sample).map(|p| format!("sample: {p}")));
        if let Some(problem) = problem {
            return Err(Refused(problem));
        }
        let (label, bytes) = match request.source {
            CandidateSource::Path(path) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    Refused(format!("cannot read shadow plugin {}: {e}", path.display()))
                })?;
                (path.display().to_string(), bytes)
            }
            CandidateSource::Upload(bytes) => (format!("upload:{name}"), bytes),
        };
        let config = self.config.lock().await;
        let shadow = self
            .load_shadow(
                &config,
                name,
                Origin::Api,
                &label,
                bytes,
                request.config_json,
                request.sample,
            )
            .await?;
        drop(config);
        let shadow = Arc::new(shadow);
        self.shadows.start(shadow.clone());
        self.history.record(
            "shadow",
            true,
            format!(
                "shadow {} started: {} sha256 {} on {}% of requests",
                shadow.name,
                label_of(&shadow),
                super::short(&shadow.plugin.sha256()),
                shadow.sample * 100.0
            ),
        );
        Ok(shadow)
    }

    /// Stop the shadow `name`; false if none runs under that name.
    pub fn stop_shadow(&self, name: &str) -> bool {
        let stopped = self.shadows.stop(name);
        if let Some(shadow) = &stopped {
            let decided = shadow.tally.report();
            self.history.record(
                "shadow",
                true,
                format!(
                    "shadow {name} stopped after {} decisions ({})",
                    decided.decisions,
                    decided.agreement.map_or_else(
                        || "none compared with the live plugin's".into(),
                        |a| format!("{:.1}% agreeing with the live plugin", a * 100.0)
                    )
                ),
            );
        }
        stopped.is_some()
    }

    /// Put the shadow `name`'s version in force as the live plugin, with its own `init`
    /// config and the live key-value store (its overlay's writes are dropped), and stop the
    /// shadow. Like a rollback it is serialised with reloads and holds against the plugin file
    /// until that file or the `[plugin]` settings change.
    pub async fn promote_shadow(&self, name: &str) -> Result<Promoted, PromoteError> {
        let config = self.config.lock().await;
        let Some(shadow) = self.shadows.get(name) else {
            return Err(PromoteError::Unknown(format!("no shadow named {name:?}")));
        };
        let path = match self.plugin_source(&config) {
            Some(PluginSource::File(path)) => path,
            Some(PluginSource::Embedded { name, .. }) => {
                return Err(PromoteError::NotReloadable(format!(
                    "the plugin in force ({name}) is embedded in the lbx binary and is not \
                     replaced at runtime"
                )));
            }
            None => {
                return Err(PromoteError::NotReloadable(
                    "no plugin is configured ([plugin] path): a shadow can only replace one".into(),
                ));
            }
        };
        let options = LoadOptions {
            config_json: shadow.plugin.options().config_json.clone(),
            ..self.load_options(&config)
        };
        let engine = self
            .engine(options.limits.deadline)
            .map_err(|e| PromoteError::Refused(format!("{e:#}")))?;
        let (label, bytes, trial) = (
            shadow.plugin.name().to_string(),
            shadow.bytes.clone(),
            self.upstreams.snapshot(),
        );
        let loaded = tokio::task::spawn_blocking(move || {
            LoadedPlugin::load_bytes(&engine, &label, &bytes, options, &trial)
        })
        .await
        .map_err(|e| PromoteError::Refused(format!("loading stopped: {e}")))?;
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(e) => {
                let why = format!("shadow {name}: {e}");
                self.history
                    .record("plugin", false, format!("promotion refused: {why}"));
                return Err(PromoteError::Refused(why));
            }
        };
        let figures = shadow.tally.report();
        let (summary, version) = self.install(plugin, shadow.bytes.clone(), VersionSource::Shadow);
        self.hold_against_file(&config, path, &version);
        self.shadows.stop(name);
        let detail = format!(
            "shadow {name} promoted: {summary} after {} decisions ({} agreeing with the \
             version it replaces)",
            figures.decisions,
            figures
                .agreement
                .map_or_else(|| "none compared".into(), |a| format!("{:.1}%", a * 100.0))
        );
        tracing::info!(%detail, "shadow promoted");
        self.history.record("plugin", true, detail.clone());
        Ok(Promoted { version, detail })
    }

    /// Load `config`'s `[[plugin.shadow]]` list, keeping each shadow that runs unchanged (same
    /// bytes, settings and sample) with its figures. Refused, naming the shadow, if one does
    /// not load. Nothing is put in force here.
    pub(super) async fn load_configured_shadows(
        &self,
        config: &Config,
    ) -> Result<Vec<Arc<Shadow>>, Refused> {
        let configured: &[ShadowConfig] = config.plugin.as_ref().map_or(&[], |p| &p.shadow);
        let mut shadows = Vec::with_capacity(configured.len());
        for spec in configured {
            let name = spec.name();
            let bytes = std::fs::read(&spec.path).map_err(|e| {
                Refused(format!(
                    "shadow {name}: cannot read {}: {e}",
                    spec.path.display()
                ))
            })?;
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            let options = self.shadow_options(config, spec.config_json());
            if let Some(running) = self.shadows.unchanged(&name, &hash, &options, spec.sample) {
                shadows.push(running);
                continue;
            }
            let label = spec.path.display().to_string();
            let shadow = self
                .load_shadow(
                    config,
                    name,
                    Origin::Config,
                    &label,
                    bytes,
                    spec.config_json(),
                    spec.sample,
                )
                .await?;
            shadows.push(Arc::new(shadow));
        }
        Ok(shadows)
    }

    /// Put loaded configured shadows in force; what changed, for the reload's summary.
    pub(super) fn install_configured_shadows(&self, shadows: Vec<Arc<Shadow>>) -> Option<String> {
        let before: Vec<_> = self
            .shadows
            .list()
            .iter()
            .filter(|s| s.origin == Origin::Config)
            .map(|s| (s.name.clone(), Arc::as_ptr(s)))
            .collect();
        let after: Vec<_> = shadows
            .iter()
            .map(|s| (s.name.clone(), Arc::as_ptr(s)))
            .collect();
        self.shadows.replace_configured(shadows);
        if before == after {
            return None;
        }
        let names: Vec<_> = after.iter().map(|(name, _)| name.as_str()).collect();
        Some(if names.is_empty() {
            "shadows: none".into()
        } else {
            format!("shadows: {}", names.join(", "))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn load_shadow(
        &self,
        config: &Config,
        name: String,
        origin: Origin,
        label: &str,
        bytes: Vec<u8>,
        config_json: String,
        sample: f64,
    ) -> Result<Shadow, Refused> {
        let options = self.shadow_options(config, config_json);
        let engine = self
            .engine(options.limits.deadline)
            .map_err(|e| Refused(format!("shadow {name}: {e:#}")))?;
        let trial = self.upstreams.snapshot();
        let label = label.to_string();
        let bytes: Arc<[u8]> = bytes.into();
        let plugin_bytes = bytes.clone();
        let plugin = tokio::task::spawn_blocking(move || {
            LoadedPlugin::load_bytes(&engine, &label, &plugin_bytes, options, &trial)
        })
        .await
        .map_err(|e| Refused(format!("shadow {name}: {e}")))?
        .map_err(|e| Refused(format!("shadow {name}: {e}")))?;
        let settings = config.plugin_settings();
        let breaker = Breaker::new(settings.disable_after_failures, settings.disabled_for);
        Shadow::start(
            name.clone(),
            origin,
            sample,
            Arc::new(plugin),
            bytes,
            breaker,
        )
        .map_err(|e| Refused(format!("shadow {name}: cannot start its worker: {e}")))
    }

    /// How a shadow runs: the live plugin's sandbox limits and body prefix, its own `init`
    /// config, one instance (its worker is one thread), and an overlay of the live store.
    fn shadow_options(&self, config: &Config, config_json: String) -> LoadOptions {
        let spec = config.plugin_spec();
        let kv_max_bytes = config.plugin_settings().kv_max_bytes;
        LoadOptions {
            config_json,
            max_idle: 1,
            kv: Arc::new(KvStore::overlay(self.kv.clone(), kv_max_bytes)),
            ..LoadOptions::from_spec(&spec, self.kv.clone(), 1)
        }
    }
}

fn label_of(shadow: &Shadow) -> &str {
    shadow.plugin.name()
}
