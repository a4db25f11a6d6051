//! The configuration model: `lbx.toml` parsed with serde, command-line overrides, and one
//! `validate()` that reports every problem with the key that caused it.
//!
//! Parsing a string ([`Config::parse`]) is separate from reading a file ([`Config::load`]) so
//! tests parse strings. Unknown keys are errors (`deny_unknown_fields`): a typo in a production
//! config must not silently fall back to a default. The failure-handling sections (timeouts,
//! health, outlier detection, retries, pool) live in [`resilience`]; backend signals (what is
//! scraped from each backend's `/metrics`) in `signals.rs`.

mod backend;
pub mod canary;
pub mod discovery;
mod edge;
pub mod fleet;
mod log;
pub mod record;
mod resilience;
pub mod shadow;
pub(crate) mod signals;
mod size;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use backend::is_https;
pub use backend::{
    BackendAddress, BackendConfig, BackendScheme, BackendSpec, BackendTls, MAX_ID_LEN,
    parse_backend_url, resolve_all,
};
pub use canary::CanaryConfig;
pub use discovery::{DiscoveryConfig, DnsDiscovery, DnsRecordType};
pub use edge::{AdminConfig, Cidr, ProxyConfig};
pub use fleet::FleetConfig;
pub use log::{LogConfig, LogFormat};
pub use record::RecordConfig;
pub use resilience::{
    HealthCheck, HealthSettings, OutlierConfig, PoolConfig, RetryConfig, TimeoutConfig,
};
pub use shadow::ShadowConfig;
pub use signals::{Selector, SignalsConfig, SignalsSpec};
pub use tls::{CertificateConfig, TlsConfig};

/// Longest duration any timer setting accepts. Larger values are surely typos, and some
/// (`18446744073709551615s`) would overflow a clock on the request path.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most worker threads (`workers`): far above any core count lbx runs on, far below a number
/// that exhausts the machine before lbx listens.
pub const MAX_WORKERS: usize = 1024;

/// Default address the proxy listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default address of the admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// The whole configuration of one lbx process.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the proxy accepts plain-HTTP client connections on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The HTTPS listener and its certificates.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Worker threads; 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// The routing plugin; none means the built-in least-in-flight choice.
    #[serde(default)]
    pub plugin: Option<PluginConfig>,
    /// Backends to balance over, in order (a backend's position is its plugin index).
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendConfig>,
    /// Backends found in DNS (`[[discovery.dns]]`), merged with these.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Timeouts, client and backend side.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// Active health-check defaults for every backend (no `path`: no active checks).
    #[serde(default)]
    pub health: HealthSettings,
    /// Passive health: ejecting backends that fail real requests.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Retrying failed attempts on another backend.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Keep-alive connections to backends.
    #[serde(default)]
    pub pool: PoolConfig,
    /// What lbx tells backends about clients.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// The admin listener (plugin status, reload, metrics).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Watching the plugin and config files for changes.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The access log.
    #[serde(default)]
    pub log: LogConfig,
    /// Backend signals: Prometheus series scraped from every backend for the plugin.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// Recording a sample of routing decisions for `lbx replay`.
    #[serde(default)]
    pub record: Option<RecordConfig>,
    /// Fleet mode: the backends, plugin and fleet-wide settings come from etcd, shared with
    /// every node of the fleet (see the `fleet` module).
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
}

/// `[reload]`: hot reload of the plugin and config files.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the files and reload when they change (SIGHUP and the admin API work regardless).
    #[serde(default = "yes")]
    pub watch: bool,
    /// Quiet time after the last change before reloading, so a file written in several steps
    /// is read once, complete.
    #[serde(default = "default_debounce", with = "humantime_serde")]
    pub debounce: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            debounce: default_debounce(),
        }
    }
}

/// `[plugin]`: which Wasm component routes requests, and its sandbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path to the plugin component (`.wasm`).
    pub path: PathBuf,
    /// Free-form settings handed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Longest one decision may run before it is cut off and the fallback answers.
    #[serde(default = "default_decision_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Linear-memory cap per plugin instance, in MiB (a Python plugin needs ~13 MiB to start).
    #[serde(default = "default_memory_limit_mib")]
    pub memory_limit_mib: u32,
    /// Consecutive failed decisions after which the plugin is disabled (0: never).
    #[serde(default = "default_disable_after_failures")]
    pub disable_after_failures: u32,
    /// How long a disabled plugin stays disabled before it is tried again.
    #[serde(default = "default_disabled_for", with = "humantime_serde")]
    pub disabled_for: Duration,
    /// Size bound of the host key-value store (keys plus values), in bytes.
    #[serde(default = "default_kv_max_bytes")]
    pub kv_max_bytes: usize,
    /// How much of a request body lbx reads before deciding, for the plugin's
    /// `request.body-prefix` (`"64KiB"` or a number of bytes; 0, the default, is off).
    #[serde(default, deserialize_with = "size::deserialize")]
    pub body_prefix: bytesize::ByteSize,
    /// `[[plugin.shadow]]`: candidate plugins run beside this one on a sample of requests,
    /// their decisions compared, never acted on.
    #[serde(default)]
    pub shadow: Vec<ShadowConfig>,
    /// `[plugin.canary]`: a candidate version started as a canary when lbx starts or a reload
    /// brings a new or changed table.
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
    /// How many plugin versions put in force are kept for `GET /admin/plugin/history` and
    /// rollbacks (each keeps its bytes in memory).
    #[serde(default = "default_plugin_history")]
    pub history: usize,
}

impl PluginConfig {
    /// The plugin at `path` with every other setting at its default.
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            config: toml::Table::new(),
            deadline: default_decision_deadline(),
            memory_limit_mib: default_memory_limit_mib(),
            disable_after_failures: default_disable_after_failures(),
            disabled_for: default_disabled_for(),
            kv_max_bytes: default_kv_max_bytes(),
            body_prefix: bytesize::ByteSize(0),
            shadow: Vec::new(),
            canary: None,
            history: default_plugin_history(),
        }
    }
}

/// Largest `plugin.body_prefix`: the prefix is held in memory for each request in flight.
pub const MAX_BODY_PREFIX: usize = 1024 * 1024;

/// Most plugin versions `plugin.history` may keep: each keeps its bytes in memory (an 18 MB
/// Python plugin a hundred times over is already a lot).
pub const MAX_PLUGIN_HISTORY: usize = 100;

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_decision_deadline() -> Duration {
    Duration::from_millis(5)
}
fn default_memory_limit_mib() -> u32 {
    64
}
fn default_disable_after_failures() -> u32 {
    5
}
fn default_disabled_for() -> Duration {
    Duration::from_secs(30)
}
fn default_plugin_history() -> usize {
    10
}
fn default_kv_max_bytes() -> usize {
    1024 * 1024
}
fn default_debounce() -> Duration {
    Duration::from_millis(100)
}
/// `true`, for `#[serde(default)]` of switches that are on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

/// Settings given on the command line; each one that is set replaces the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--plugin`.
    pub plugin: Option<PathBuf>,
    /// `--backend` (all of them replace the file's backend list).
    pub backends: Vec<String>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--admin` (an address, or `off`).
    pub admin: Option<String>,
    /// `--tls-listen`.
    pub tls_listen: Option<String>,
    /// `--tls-cert` / `--tls-key` pairs, in order (they replace the file's certificates).
    pub tls_certificates: Vec<CertificateConfig>,
    /// `--backend-ca`: the CA for every `https://` backend that names none of its own.
    pub backend_ca: Option<PathBuf>,
}

/// What validation resolved, for the parts that consume it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The file's backends, in order.
    pub backends: Vec<BackendSpec>,
    /// `[signals]`, every default filled in.
    pub signals: SignalsSpec,
}

/// How a plugin version is to be run, resolved from `[plugin]`: what the plugin module
/// consumes instead of the config (as `upstream` consumes [`BackendSpec`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// `[plugin] config` as the JSON handed to the plugin's `init`.
    pub config_json: String,
    /// Longest one decision may run.
    pub deadline: Duration,
    /// Linear-memory cap per plugin instance, in bytes.
    pub memory_bytes: usize,
    /// Request body bytes read before deciding, for the plugin (0: none).
    pub body_prefix: usize,
}

/// A configuration that could not be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The text is not valid TOML for this model (unknown key, wrong type...).
    #[error("invalid config{}: {message}", origin.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when the text came from one.
        origin: Option<PathBuf>,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// The values parsed but make no sense together.
    #[error("invalid config:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending key, e.g. `backend[1].url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: TlsConfig::default(),
            workers: 0,
            plugin: None,
            backends: Vec::new(),
            discovery: DiscoveryConfig::default(),
            timeouts: TimeoutConfig::default(),
            health: HealthSettings::default(),
            outlier: OutlierConfig::default(),
            retry: RetryConfig::default(),
            pool: PoolConfig::default(),
            proxy: ProxyConfig::default(),
            admin: AdminConfig::default(),
            reload: ReloadConfig::default(),
            log: LogConfig::default(),
            signals: SignalsConfig::default(),
            record: None,
            fleet: None,
        }
    }
}

impl Config {
    /// Parse TOML text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: Option<&Path>) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.map(Path::to_path_buf),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Read and parse a config file (not yet validated: apply overrides first). Relative
    /// paths in it are taken relative to the file's directory, not the working directory (which
    /// is `/` under systemd).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let mut config = Self::parse(&text, Some(path))?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Make every relative path key relative to `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        if let Some(plugin) = &mut self.plugin {
            resolve(&mut plugin.path);
            for shadow in &mut plugin.shadow {
                resolve(&mut shadow.path);
            }
            if let Some(canary) = &mut plugin.canary {
                resolve(&mut canary.path);
            }
        }
        for certificate in &mut self.tls.certificates {
            resolve(&mut certificate.cert);
            resolve(&mut certificate.key);
        }
        if let Some(record) = &mut self.record {
            resolve(&mut record.path);
        }
        if let Some(token) = &mut self.admin.token_file {
            resolve(token);
        }
        if let Some(state) = &mut self.admin.state_file {
            resolve(state);
        }
        for backend in &mut self.backends {
            if let Some(ca) = &mut backend.ca {
                resolve(ca);
            }
        }
    }

    /// Apply command-line settings on top of the file's.
    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
        }
        if let Some(workers) = overrides.workers {
            self.workers = workers;
        }
        if let Some(path) = overrides.plugin {
            match &mut self.plugin {
                Some(plugin) => plugin.path = path,
                None => self.plugin = Some(PluginConfig::at(path)),
            }
        }
        match overrides.admin.as_deref() {
            Some("off") => self.admin.enabled = false,
            Some(listen) => {
                self.admin.enabled = true;
                self.admin.listen = listen.to_string();
            }
            None => {}
        }
        if !overrides.backends.is_empty() {
            self.backends = overrides
                .backends
                .into_iter()
                .map(BackendConfig::at)
                .collect();
        }
        if let Some(listen) = overrides.tls_listen {
            self.tls.listen = Some(listen);
        }
        if !overrides.tls_certificates.is_empty() {
            self.tls.certificates = overrides.tls_certificates;
        }
        if let Some(ca) = overrides.backend_ca {
            for backend in &mut self.backends {
                if backend.ca.is_none() && is_https(&backend.url) {
                    backend.ca = Some(ca.clone());
                }
            }
        }
    }

    /// Check everything that parsing cannot, reporting all problems at once, and resolve the
    /// backends into the specs `upstream` builds from.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });

        if let Err(e) = self.listen.parse::<SocketAddr>() {
            problem(
                "listen".into(),
                format!(
                    "{:?} is not an address like 127.0.0.1:8080 ({e})",
                    self.listen
                ),
            );
        }
        // In fleet mode the backends come from the store (and an empty fleet may start empty).
        if self.backends.is_empty() && self.discovery.dns.is_empty() && self.fleet.is_none() {
            problem(
                "backend".into(),
                "no backends configured: add [[backend]] url = \"http://host:port\", \
                 --backend URL or [[discovery.dns]]"
                    .into(),
            );
        }
        discovery::check(&self.discovery.dns, &mut problem);
        if let Some(plugin) = &self.plugin {
            if plugin.deadline.is_zero() {
                problem("plugin.deadline".into(), "must be greater than 0".into());
            }
            if plugin.memory_limit_mib < 1 {
                problem(
                    "plugin.memory_limit_mib".into(),
                    "must be at least 1".into(),
                );
            }
            if plugin.body_prefix.as_u64() > MAX_BODY_PREFIX as u64 {
                problem(
                    "plugin.body_prefix".into(),
                    format!(
                        "{} is more than the maximum of 1 MiB (the prefix is held in memory \
                         per request)",
                        plugin.body_prefix.display().iec()
                    ),
                );
            }
        }
        if self.workers > MAX_WORKERS {
            problem(
                "workers".into(),
                format!("{} is more than the maximum of {MAX_WORKERS}", self.workers),
            );
        }
        if let Some(plugin) = &self.plugin {
            for (key, value) in [
                ("plugin.deadline", plugin.deadline),
                ("plugin.disabled_for", plugin.disabled_for),
            ] {
                check_duration(key, value, &mut problem);
            }
            if !(1..=MAX_PLUGIN_HISTORY).contains(&plugin.history) {
                problem(
                    "plugin.history".into(),
                    format!(
                        "must be between 1 and {MAX_PLUGIN_HISTORY} (got {}): the versions kept \
                         for rollback, each with its bytes in memory",
                        plugin.history
                    ),
                );
            }
            if plugin.memory_limit_mib > 4096 {
                problem(
                    "plugin.memory_limit_mib".into(),
                    "must be at most 4096 (a 32-bit Wasm memory cannot grow past 4 GiB)".into(),
                );
            }
            shadow::check(&plugin.shadow, &mut problem);
            if let Some(canary) = &plugin.canary {
                canary::check(canary, &mut problem);
            }
        }
        if let Some(record) = &self.record {
            record.check(&mut problem);
        }
        if let Some(fleet) = &self.fleet {
            fleet.check(&mut problem);
        }
        if self.reload.debounce > Duration::from_secs(10) {
            problem(
                "reload.debounce".into(),
                "must be at most 10s (changes would apply late)".into(),
            );
        }
        if let Err(mut health) = self.health.resolve("health") {
            problems.append(&mut health);
        }
        let backends = resolve_all(&self.backends, &self.health, &mut problems);
        resilience::validate(
            &self.timeouts,
            &self.outlier,
            &self.retry,
            &self.pool,
            &mut problems,
        );
        self.admin.validate(&mut problems);
        self.tls.validate(&mut problems);
        let signals = self.signals.resolve().unwrap_or_else(|mut found| {
            problems.append(&mut found);
            SignalsSpec::default()
        });
        if problems.is_empty() {
            Ok(Resolved { backends, signals })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The `[plugin]` settings in force: the configured ones, or every default when there is
    /// no `[plugin]` table (sandbox, breaker and key-value settings still apply to an
    /// embedded plugin, and the defaults live here only).
    pub fn plugin_settings(&self) -> PluginConfig {
        self.plugin
            .clone()
            .unwrap_or_else(|| PluginConfig::at(PathBuf::new()))
    }

    /// The listen address (call after [`Config::validate`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: "listen".into(),
                message: format!("{:?}: {e}", self.listen),
            }])
        })
    }

    /// The runtime state file for a config read from `config_file`: `[admin] state_file`, or
    /// `<name>.state.json` beside the config file; none without either.
    pub fn state_file(&self, config_file: Option<&Path>) -> Option<PathBuf> {
        if let Some(path) = &self.admin.state_file {
            return Some(path.clone());
        }
        let file = config_file?;
        let stem = file.file_stem()?.to_string_lossy();
        Some(file.with_file_name(format!("{stem}.state.json")))
    }

    /// The plugin's `config` table as the JSON text its `init` receives.
    fn plugin_config_json(&self) -> String {
        self.plugin
            .as_ref()
            .map(|p| serde_json::to_string(&p.config).unwrap_or_else(|_| "{}".into()))
            .unwrap_or_else(|| "{}".into())
    }

    /// How the plugin is to be run, resolved from `[plugin]` (defaults without one): all the
    /// plugin module needs to know of the config.
    pub fn plugin_spec(&self) -> PluginSpec {
        let settings = self.plugin_settings();
        PluginSpec {
            config_json: self.plugin_config_json(),
            deadline: settings.deadline,
            memory_bytes: settings.memory_limit_mib as usize * 1024 * 1024,
            body_prefix: usize::try_from(settings.body_prefix.as_u64())
                .unwrap_or(MAX_BODY_PREFIX)
                .min(MAX_BODY_PREFIX),
        }
    }
}

/// Report `value` under `key` if it is longer than [`MAX_DURATION`].
pub(crate) fn check_duration(key: &str, value: Duration, problem: &mut impl FnMut(String, String)) {
    if value > MAX_DURATION {
        problem(
            key.into(),
            format!(
                "{} is longer than the maximum of {}",
                humantime::format_duration(value),
                humantime::format_duration(MAX_DURATION)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let config = Config::parse(
            r#"
            listen = "127.0.0.1:9000"
            workers = 2
            [plugin]
            path = "plugins/least_conn.wasm"
            deadline = "2ms"
            config = { sticky = true }
            [[backend]]
            url = "http://127.0.0.1:9001"
            id = "a"
            weight = 3
            labels = { pool = "api" }
            [[backend]]
            url = "http://localhost:9002"
            "#,
            None,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.backends.len(), 2);
        assert_eq!(
            config.plugin.as_ref().unwrap().deadline,
            Duration::from_millis(2)
        );
        assert_eq!(
            config.plugin_spec(),
            PluginSpec {
                config_json: r#"{"sticky":true}"#.into(),
                deadline: Duration::from_millis(2),
                memory_bytes: (config.plugin.as_ref().unwrap().memory_limit_mib as usize) << 20,
                body_prefix: 0,
            }
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let example = include_str!("../../../examples/lbx.toml");
        let config = Config::parse(example, None).unwrap();
        config.validate().unwrap();
        assert_eq!(config.backends.len(), 2);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("lisen = \"127.0.0.1:1\"", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let config = Config::parse(
            r#"
            listen = "nowhere"
            [[backend]]
            url = "ftp://127.0.0.1:1"
            [[backend]]
            url = "http://127.0.0.1:2/api"
            weight = 0
            "#,
            None,
        )
        .unwrap();
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("expected validation problems");
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listen",
                "backend[0].url",
                "backend[1].url",
                "backend[1].weight"
            ]
        );
    }

    #[test]
    fn body_prefix_takes_sizes_and_is_bounded() {
        let config = |value: &str| {
            Config::parse(
                &format!(
                    "[plugin]\npath = \"p.wasm\"\nbody_prefix = {value}\n\
                     [[backend]]\nurl = \"http://127.0.0.1:5\""
                ),
                None,
            )
            .unwrap()
        };
        assert_eq!(config("\"64KiB\"").plugin_spec().body_prefix, 64 * 1024);
        assert_eq!(config("100").plugin_spec().body_prefix, 100);
        assert_eq!(Config::default().plugin_spec().body_prefix, 0);
        let err = config("\"2MiB\"").validate().unwrap_err().to_string();
        assert!(
            err.contains("plugin.body_prefix") && err.contains("maximum of 1 MiB"),
            "{err}"
        );
        assert!(Config::parse("[plugin]\npath = \"p\"\nbody_prefix = \"lots\"", None).is_err());
    }

    #[test]
    fn the_plugin_history_keeps_10_versions_unless_told_between_1_and_100() {
        let config = |line: &str| {
            Config::parse(
                &format!(
                    "[plugin]\npath = \"p.wasm\"\n{line}\n[[backend]]\nurl = \"http://127.0.0.1:5\""
                ),
                None,
            )
            .unwrap()
        };
        assert_eq!(config("").plugin_settings().history, 10);
        assert_eq!(Config::default().plugin_settings().history, 10);
        for fine in [1, 100] {
            let config = config(&format!("history = {fine}"));
            assert!(config.validate().is_ok());
            assert_eq!(config.plugin_settings().history, fine);
        }
        for wrong in [0, 101] {
            let err = config(&format!("history = {wrong}"))
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("plugin.history: must be between 1 and 100"),
                "{err}"
            );
        }
    }

    #[test]
    fn duplicate_backend_ids_are_refused() {
        let mut config = Config::default();
        config.apply(Overrides {
            backends: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:1".into()],
            ..Overrides::default()
        });
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("backend[1].id"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let mut config = Config::parse(
            "listen = \"127.0.0.1:1\"\n[[backend]]\nurl = \"http://127.0.0.1:5\"",
            None,
        )
        .unwrap();
        config.apply(Overrides {
            listen: Some("127.0.0.1:2".into()),
            backends: vec!["http://127.0.0.1:6".into()],
            plugin: Some("x.wasm".into()),
            workers: Some(1),
            admin: Some("off".into()),
            ..Overrides::default()
        });
        assert!(!config.admin.enabled);
        assert_eq!(config.listen, "127.0.0.1:2");
        assert_eq!(config.backends[0].url, "http://127.0.0.1:6");
        assert_eq!(config.plugin.unwrap().path, PathBuf::from("x.wasm"));
    }

    #[test]
    fn backend_schemes_choose_the_protocol_and_default_port() {
        let https = parse_backend_url("https://api.example").unwrap();
        assert_eq!(https.scheme, BackendScheme::Https);
        assert_eq!(https.authority.as_str(), "api.example:443");
        let h2c = parse_backend_url("h2c://127.0.0.1:50051").unwrap();
        assert_eq!(h2c.scheme, BackendScheme::H2c);
        assert!(parse_backend_url("grpc://x").is_err());
    }

    #[test]
    fn a_scheme_in_capitals_is_the_same_scheme_everywhere() {
        assert_eq!(
            parse_backend_url("HTTPS://api.example").unwrap().scheme,
            BackendScheme::Https
        );
        assert_eq!(
            parse_backend_url("H2C://127.0.0.1:1").unwrap().scheme,
            BackendScheme::H2c
        );
        // TLS options are accepted on it, and the command line's CA reaches it.
        let mut config = Config::parse(
            "[[backend]]\nurl = \"HTTPS://127.0.0.1:2\"\nserver_name = \"api.example\"\n\
             [[backend]]\nurl = \"Https://127.0.0.1:3\"\n",
            None,
        )
        .unwrap();
        config.apply(Overrides {
            backend_ca: Some("ca.pem".into()),
            ..Overrides::default()
        });
        config.validate().unwrap();
        assert_eq!(config.backends[1].ca, Some("ca.pem".into()));
    }

    #[test]
    fn tls_options_only_apply_to_https_backends() {
        let config = Config::parse(
            "[[backend]]\nurl = \"http://127.0.0.1:1\"\nca = \"ca.pem\"\ninsecure_skip_verify = true\n\
             [[backend]]\nurl = \"https://127.0.0.1:2\"\nserver_name = \"not a name\"\n",
            None,
        )
        .unwrap();
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("expected problems");
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "backend[0].ca",
                "backend[0].insecure_skip_verify",
                "backend[1].server_name"
            ]
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("lbx-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lbx.toml");
        std::fs::write(
            &file,
            "[plugin]\npath = \"plugins/r.wasm\"\n[tls]\nlisten = \"127.0.0.1:0\"\n\
             [[tls.certificate]]\ncert = \"certs/a.pem\"\nkey = \"/abs/a.key\"\n\
             [[backend]]\nurl = \"https://127.0.0.1:1\"\nca = \"ca.pem\"\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.plugin.unwrap().path, dir.join("plugins/r.wasm"));
        assert_eq!(config.tls.certificates[0].cert, dir.join("certs/a.pem"));
        assert_eq!(config.tls.certificates[0].key, PathBuf::from("/abs/a.key"));
        assert_eq!(
            config.backends[0].ca.as_deref(),
            Some(dir.join("ca.pem").as_path())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn backend_port_defaults_to_80() {
        assert_eq!(
            parse_backend_url("http://example.test")
                .unwrap()
                .authority
                .as_str(),
            "example.test:80"
        );
    }
}
