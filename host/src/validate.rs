//! `lbx validate --config lbx.toml`: everything `lbx run` checks before it serves, without
//! serving — the `nginx -t` / `haproxy -c` of lbx, for a deploy pipeline or a pre-reload check.
//!
//! It runs the same code `run` runs, in the same order, but does not stop at the first
//! problem: the config's own rules ([`Config::validate`]), then every file the config names
//! (TLS certificates and keys loaded as the HTTPS listener loads them, the admin token file,
//! each `https://` backend's CA through the backend builder), then the plugin, compiled and
//! started in the same sandbox with its `init` config and asked for one decision over the
//! config's backends. Every problem is named by its key (`backend[1].url`,
//! `tls.certificate[0]`, `plugin.config`…). Each `[[plugin.shadow]]` is loaded the same way, and
//! `[record] path` must be in an existing directory and not a file lbx would refuse to replace.
//!
//! It binds no socket: the addresses must parse, but a port taken by the running lbx being
//! validated for a reload is not a problem.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::config::{
    BackendSpec, Config, ConfigError, HealthSettings, Overrides, Problem, resolve_all,
};
use crate::plugin::{KvStore, LoadError, LoadOptions, LoadedPlugin, PluginEngine};
use crate::runtime_backends::changes::backend_id;
use crate::runtime_backends::state_file;
use crate::tls::Certificates;
use crate::upstream::{BackendSet, PoolSettings, Upstreams};

/// Every problem `lbx run` would stop at, each naming its key or file.
#[derive(Debug)]
pub struct Problems {
    /// What was validated, for the heading.
    pub origin: String,
    /// The problems, in the order `run` meets them.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{} has {count} problem{plural}:", self.origin)?;
        for problem in &self.problems {
            // One problem per line: continuation lines (a TOML parse error's excerpt) indent.
            write!(f, "\n  {}", problem.to_string().replace('\n', "\n      "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Validate the config `file` (or the defaults) with `overrides` applied, as `lbx run` would
/// start it. Returns a short summary of what would run, or every problem found.
pub fn validate(file: Option<&Path>, overrides: Overrides) -> Result<String, Problems> {
    let origin = file.map_or_else(|| "the config".into(), |path| path.display().to_string());
    let fail = |problems| Problems {
        origin: origin.clone(),
        problems,
    };
    let mut config = match file {
        Some(path) => Config::load(path).map_err(|e| fail(vec![unreadable(path, e)]))?,
        None => Config::default(),
    };
    config.apply(overrides);

    let mut problems = match config.validate() {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => vec![unreadable(file.unwrap_or(Path::new("config")), other)],
    };
    check_certificates(&config, &mut problems);
    check_admin_token(&config, &mut problems);
    let trial = trial_backends(&config, file, &mut problems);
    let plugin = check_plugin(&config, &trial, &mut problems);
    check_shadows(&config, &trial, &mut problems);
    check_record(&config, &mut problems);

    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(summary(&origin, &config, &trial, plugin.as_deref()))
}

/// `[record] path` must be a file lbx can start recording to: in an existing directory, and
/// not some other file it would refuse to move.
fn check_record(config: &Config, problems: &mut Vec<Problem>) {
    if let Some(record) = &config.record
        && let Some(message) = crate::recording::path_problem(&record.path)
    {
        problems.push(Problem {
            key: "record.path".into(),
            message,
        });
    }
}

/// A config file that could not be read or parsed: nothing else can be checked.
fn unreadable(path: &Path, error: ConfigError) -> Problem {
    Problem {
        key: path.display().to_string(),
        message: match error {
            ConfigError::Read { reason, .. } => format!("cannot read it: {reason}"),
            ConfigError::Parse { message, .. } => message,
            ConfigError::Invalid(problems) => problems
                .iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
    }
}

/// Load each `[[tls.certificate]]` pair as the HTTPS listener does, one at a time so a bad
/// pair does not hide the next one's problem.
fn check_certificates(config: &Config, problems: &mut Vec<Problem>) {
    for (i, pair) in config.tls.certificates.iter().enumerate() {
        if let Err(e) = Certificates::load(std::slice::from_ref(pair), crate::tls::provider()) {
            problems.push(Problem {
                key: format!("tls.certificate[{i}]"),
                message: e.to_string(),
            });
        }
    }
}

/// Read the admin token as the admin listener does (only when the admin API is on, as `run`).
fn check_admin_token(config: &Config, problems: &mut Vec<Problem>) {
    if config.admin.enabled
        && let Err(problem) = config.admin.read_token()
    {
        problems.push(problem);
    }
}

/// Build each backend as `run` does — the config file's merged with the runtime state file's
/// changes, each resolved and given its connection pool (TLS client with its CA file) — and
/// return the set of those that build, for the plugin's trial decision. Problems the config
/// rules already reported are not repeated. With no usable backend, the plugin is tried over
/// made-up ones, as `lbx check` does, so its own problems still show.
fn trial_backends(
    config: &Config,
    file: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> Arc<BackendSet> {
    let mut effective = config.backends.clone();
    if let Some(path) = config.state_file(file) {
        match state_file::load(&path) {
            Ok(changes) => {
                let merged = changes.merge(&config.backends);
                effective = merged.backends.into_iter().map(|e| e.backend).collect();
            }
            Err(message) => problems.push(Problem {
                key: "admin.state_file".into(),
                message,
            }),
        }
    }
    let pool = PoolSettings::from_config(config);
    // Each backend is built once, as `run` builds it (an `https://` one with
    // `insecure_skip_verify` warns once): added to the set built so far, whose backends are
    // carried over, not rebuilt.
    let built = Upstreams::new(&[], pool).expect("an empty set builds");
    let mut usable: Vec<BackendSpec> = Vec::new();
    for backend in &effective {
        let id = backend_id(backend);
        // A file backend is named by its place in the file, one the API added by its id.
        let key = match config.backends.iter().position(|b| backend_id(b) == id) {
            Some(i) => format!("backend[{i}]"),
            None => format!("state file backend {id:?}"),
        };
        let spec = match BackendSpec::resolve(backend, &config.health, &key) {
            Ok(spec) => spec,
            Err(found) => {
                for problem in found {
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
                continue;
            }
        };
        let with_it: Vec<BackendSpec> = usable.iter().cloned().chain([spec.clone()]).collect();
        match built.prepare(&with_it) {
            Ok(set) if !problems.iter().any(|p| is_under(&p.key, &key)) => {
                built.publish(Arc::new(set));
                usable.push(spec);
            }
            Ok(_) => {}
            Err(e) => problems.push(Problem {
                key: format!("{key}.{}", e.field),
                message: e.message,
            }),
        }
    }
    if usable.is_empty() {
        let made_up = crate::check::made_up_backends();
        let specs = resolve_all(&made_up, &HealthSettings::default(), &mut Vec::new());
        let upstreams = Upstreams::new(&specs, pool).expect("the made-up backends are valid");
        return upstreams.snapshot();
    }
    built.snapshot()
}

/// Whether `key` is `prefix` or a key under it (`backend[1]`, `backend[1].url`, not
/// `backend[10]`).
fn is_under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Load each `[[plugin.shadow]]` as `run` does (the live plugin's limits, its own `init`
/// config, a trial decision); each that does not load is a problem under its key.
fn check_shadows(config: &Config, trial: &BackendSet, problems: &mut Vec<Problem>) {
    let Some(plugin) = config.plugin.as_ref() else {
        return;
    };
    if plugin.shadow.is_empty() || problems.iter().any(|p| is_under(&p.key, "plugin.deadline")) {
        return;
    }
    let spec = config.plugin_spec();
    let Ok(engine) = PluginEngine::new(spec.deadline) else {
        return; // check_plugin reported it
    };
    for (i, shadow) in plugin.shadow.iter().enumerate() {
        let kv = Arc::new(KvStore::new(config.plugin_settings().kv_max_bytes));
        let options = LoadOptions {
            config_json: shadow.config_json(),
            ..LoadOptions::from_spec(&spec, kv, 1)
        };
        if let Err(e) = LoadedPlugin::load_file(&engine, &shadow.path, options, trial) {
            let field = match &e {
                LoadError::Read { .. }
                | LoadError::Compile { .. }
                | LoadError::WrongWorld { .. } => "path",
                LoadError::ConfigRejected { .. } => "config",
                LoadError::Trap { .. } | LoadError::TrialDecision { .. } => "",
            };
            let key = match field {
                "" => format!("plugin.shadow[{i}]"),
                field => format!("plugin.shadow[{i}].{field}"),
            };
            problems.push(Problem {
                key,
                message: e.to_string(),
            });
        }
    }
}

/// Load the plugin as `run` does (same engine settings, limits, key-value bound, `init` with
/// its config, the load's own trial decision), then ask it once more and check the answer is
/// usable over the trial backends. Returns the summary line, or `None` when there is no
/// plugin or it has a problem (then in `problems`).
fn check_plugin(
    config: &Config,
    trial: &BackendSet,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let plugin = config.plugin.as_ref()?;
    // Limits the config rules refused (a zero deadline…) would make the sandbox meaningless.
    if problems
        .iter()
        .any(|p| is_under(&p.key, "plugin.deadline") || is_under(&p.key, "plugin.memory_limit_mib"))
    {
        return None;
    }
    let kv = Arc::new(KvStore::new(config.plugin_settings().kv_max_bytes));
    let options = LoadOptions::from_spec(&config.plugin_spec(), kv, 1);
    let engine = match PluginEngine::new(options.limits.deadline) {
        Ok(engine) => engine,
        Err(e) => {
            problems.push(Problem {
                key: "plugin".into(),
                message: format!("cannot create the plugin engine: {e:#}"),
            });
            return None;
        }
    };
    let loaded = match LoadedPlugin::load_file(&engine, &plugin.path, options, trial) {
        Ok(loaded) => loaded,
        Err(e) => {
            let key = match &e {
                LoadError::Read { .. }
                | LoadError::Compile { .. }
                | LoadError::WrongWorld { .. } => "plugin.path",
                LoadError::ConfigRejected { .. } => "plugin.config",
                LoadError::Trap { .. } | LoadError::TrialDecision { .. } => "plugin",
            };
            problems.push(Problem {
                key: key.into(),
                message: e.to_string(),
            });
            return None;
        }
    };
    let decision = loaded.choose(
        &mut crate::plugin::RequestMeta::synthetic(),
        trial,
        None,
        None,
    );
    let described = decision
        .map_err(|e| e.reason)
        .and_then(|decision| crate::check::describe(&decision, trial).map_err(|e| e.to_string()));
    match described {
        Ok(described) => Some(format!(
            "plugin {} (sha256 {}): init accepted its config; trial decision: {described}",
            plugin.path.display(),
            &loaded.sha256()[..12]
        )),
        Err(reason) => {
            problems.push(Problem {
                key: "plugin".into(),
                message: format!("its trial decision is unusable: {reason}"),
            });
            None
        }
    }
}

fn summary(origin: &str, config: &Config, trial: &BackendSet, plugin: Option<&str>) -> String {
    let mut lines = vec![format!("ok: {origin} is valid")];
    let mut listening = format!("  listen {}", config.listen);
    if let Some(tls) = &config.tls.listen {
        let count = config.tls.certificates.len();
        listening.push_str(&format!(
            ", https {tls} ({count} certificate{})",
            if count == 1 { "" } else { "s" }
        ));
    }
    if config.admin.enabled {
        let token = if config.admin.token_file.is_some() {
            "bearer token"
        } else {
            "no token"
        };
        listening.push_str(&format!(", admin {} ({token})", config.admin.listen));
    } else {
        listening.push_str(", admin off");
    }
    lines.push(listening);
    let backends: Vec<String> = trial
        .backends
        .iter()
        .map(|b| format!("{} ({})", b.spec.id, b.spec.url))
        .collect();
    if config.backends.is_empty() {
        // The trial set is made up (see `trial_backends`): do not show it as the file's.
        lines.push("  no [[backend]]: the backends come from DNS".into());
    } else {
        lines.push(format!(
            "  {} backend{}: {}",
            backends.len(),
            if backends.len() == 1 { "" } else { "s" },
            backends.join(", ")
        ));
    }
    for dns in &config.discovery.dns {
        lines.push(format!(
            "  dns {} ({}) every {}, asking {}",
            dns.name,
            dns.record.as_str(),
            humantime::format_duration(dns.interval),
            dns.resolver.as_deref().unwrap_or("the system's resolver")
        ));
    }
    lines.push(match plugin {
        Some(plugin) => format!("  {plugin}"),
        None => "  no plugin: the built-in least-in-flight routes".into(),
    });
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_under_a_prefix_do_not_include_longer_indices() {
        assert!(is_under("backend[1]", "backend[1]"));
        assert!(is_under("backend[1].url", "backend[1]"));
        assert!(!is_under("backend[10].url", "backend[1]"));
        assert!(!is_under("plugin.deadline_x", "plugin.deadline"));
    }

    #[test]
    fn every_problem_is_collected_not_just_the_first() {
        let dir = std::env::temp_dir().join(format!("lbx-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lbx.toml");
        std::fs::write(
            &file,
            "listen = \"nowhere\"\n[admin]\ntoken_file = \"missing.token\"\n\
             [tls]\nlisten = \"127.0.0.1:8443\"\n\
             [[tls.certificate]]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n\
             [[backend]]\nurl = \"ftp://127.0.0.1:1\"\n\
             [[backend]]\nurl = \"https://127.0.0.1:2\"\nca = \"missing-ca.pem\"\n",
        )
        .unwrap();
        let problems = validate(Some(&file), Overrides::default()).unwrap_err();
        let keys: Vec<_> = problems.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listen",
                "backend[0].url",
                "tls.certificate[0]",
                "admin.token_file",
                "backend[1].ca"
            ],
            "{problems}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_config_that_does_not_parse_is_one_problem_naming_the_file() {
        let problems = validate(
            Some(Path::new("/nonexistent/lbx.toml")),
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(problems.problems.len(), 1);
        assert!(
            problems
                .to_string()
                .contains("/nonexistent/lbx.toml: cannot read it"),
            "{problems}"
        );
    }
}
