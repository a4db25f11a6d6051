//! What the fleet shares, read from the store as one whole: every backend with its drain
//! state, the plugin (its sha256 and config) and the fleet-wide settings sections. Built from
//! one consistent listing of the prefix ([`SharedState::decode`]), checked key by key with
//! problems that name the key and the field, then laid over a node's own config file
//! ([`SharedState::apply_to`]) so the usual validation and reload put it in force whole or not
//! at all. [`SharedState::seed`] goes the other way: the entries an empty store gets from a
//! node's config file.
//!
//! Each value is the JSON form of what the config file writes in TOML (a `[[backend]]` table,
//! a `[health]` section): one vocabulary for both, and the same checks.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::canary::{FleetCanaryState, SharedCanary};
use super::layout::{Entry, Layout, SETTINGS_SECTIONS};
use crate::config::{
    BackendConfig, Config, HealthSettings, OutlierConfig, Problem, RetryConfig, TimeoutConfig,
};

/// One backend as the fleet keeps it: its `[[backend]]` table and whether an operator drained
/// it (read by [`backend`], which names the field of a bad value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedBackend {
    /// The backend (its `id` always filled in: the key's last part).
    #[serde(flatten)]
    pub config: BackendConfig,
    /// Drained by an operator: no new requests, fleet-wide.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
}

/// The plugin the fleet runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPlugin {
    /// The module's sha256, 64 lowercase hex digits: what every node checks the bytes against.
    pub sha256: String,
    /// Its `init` config, as `[plugin.config]` would give it.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Where to fetch a module too large to keep in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Everything the fleet shares, as of one revision of the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedState {
    /// The backends, ordered by id (each node sees the same order, so the same plugin index).
    pub backends: Vec<SharedBackend>,
    /// The plugin, when one is published.
    pub plugin: Option<SharedPlugin>,
    /// `settings/health`.
    pub health: Option<HealthSettings>,
    /// `settings/outlier`.
    pub outlier: Option<OutlierConfig>,
    /// `settings/retry`.
    pub retry: Option<RetryConfig>,
    /// `settings/timeouts`.
    pub timeouts: Option<TimeoutConfig>,
    /// The fleet-wide canary (running or ended).
    pub canary: Option<SharedCanary>,
    /// The sha256 of every module kept in the store.
    pub stored_modules: BTreeSet<String>,
    /// Keys under the prefix this lbx does not know (left alone, shown to the operator).
    pub unknown_keys: Vec<String>,
}

/// What differs between two shared states: what a node logs and counts when it applies one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Difference {
    /// Backend ids new in the later state.
    pub added: Vec<String>,
    /// Backend ids gone from it.
    pub removed: Vec<String>,
    /// Backend ids in both whose table or drain state changed.
    pub changed: Vec<String>,
    /// The plugin's sha256 or config changed.
    pub plugin: bool,
    /// The settings sections that changed.
    pub settings: Vec<&'static str>,
}

impl Difference {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl SharedState {
    /// The shared state in `kvs` (every key and value under the layout's prefix, from one
    /// listing), or every problem found, each naming its key. Status keys are not part of it.
    pub fn decode(layout: &Layout, kvs: &[(String, Vec<u8>)]) -> Result<Self, Vec<Problem>> {
        let mut state = Self::default();
        let mut problems = Vec::new();
        for (key, value) in kvs {
            let Some(entry) = layout.entry(key) else {
                continue;
            };
            let result = match entry {
                Entry::Backend(id) => backend(id, value).map(|b| state.backends.push(b)),
                Entry::Plugin => json(value).map(|p| state.plugin = Some(p)),
                Entry::Module(sha256) => {
                    state.stored_modules.insert(sha256.to_string());
                    Ok(())
                }
                Entry::Settings(section) => state.set_section(section, value),
                Entry::Canary => json(value).map(|c| state.canary = Some(c)),
                Entry::Status(_) => Ok(()),
                Entry::Unknown => {
                    state.unknown_keys.push(key.clone());
                    Ok(())
                }
            };
            if let Err(message) = result {
                problems.push(Problem {
                    key: key.clone(),
                    message,
                });
            }
        }
        if let Some(message) =
            (state.plugin.as_ref()).and_then(|plugin| plugin_problem(plugin, &state.stored_modules))
        {
            problems.push(Problem {
                key: layout.plugin(),
                message,
            });
        }
        if let Some(message) = (state.canary.as_ref())
            .filter(|canary| canary.state == FleetCanaryState::Running)
            .and_then(|canary| canary_problem(canary, &state.stored_modules))
        {
            problems.push(Problem {
                key: layout.canary(),
                message,
            });
        }
        state.backends.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        if problems.is_empty() {
            Ok(state)
        } else {
            Err(problems)
        }
    }

    fn set_section(&mut self, section: &str, value: &[u8]) -> Result<(), String> {
        match section {
            "health" => self.health = Some(json(value)?),
            "outlier" => self.outlier = Some(json(value)?),
            "retry" => self.retry = Some(json(value)?),
            "timeouts" => self.timeouts = Some(json(value)?),
            other => unreachable!("settings section {other} is not in SETTINGS_SECTIONS"),
        }
        Ok(())
    }

    /// Lay the shared state over a node's own config: the backends (in id order) and each
    /// published settings section replace the file's; the plugin's config replaces the file's
    /// `[plugin.config]`, and its module is `module` (the node's checked copy of the bytes).
    /// The file keeps its listeners, certificates, sandbox limits and everything else. Returns
    /// the ids of the drained backends, which are runtime state rather than config.
    pub fn apply_to(
        &self,
        config: &mut Config,
        module: Option<&Path>,
    ) -> Result<Vec<String>, Problem> {
        config.backends = self.backends.iter().map(|b| b.config.clone()).collect();
        if let Some(health) = &self.health {
            config.health = health.clone();
        }
        if let Some(outlier) = self.outlier {
            config.outlier = outlier;
        }
        if let Some(retry) = self.retry {
            config.retry = retry;
        }
        if let Some(timeouts) = self.timeouts {
            config.timeouts = timeouts;
        }
        if let (Some(plugin), Some(module)) = (&self.plugin, module) {
            let table = toml::Table::try_from(&plugin.config).map_err(|error| Problem {
                key: "plugin.config".into(),
                message: format!("cannot be a plugin config: {error}"),
            })?;
            let settings = config
                .plugin
                .get_or_insert_with(|| crate::config::PluginConfig::at(module.to_path_buf()));
            settings.path = module.to_path_buf();
            settings.config = table;
        }
        Ok(self
            .backends
            .iter()
            .filter(|b| b.drain)
            .map(|b| id_of(b).to_string())
            .collect())
    }

    /// What changed from `self` to `later`.
    pub fn difference(&self, later: &Self) -> Difference {
        let ids = |state: &Self| -> BTreeSet<String> {
            state
                .backends
                .iter()
                .map(|b| id_of(b).to_string())
                .collect()
        };
        let (before, after) = (ids(self), ids(later));
        let find = |state: &Self, id: &str| state.backends.iter().find(|b| id_of(b) == id).cloned();
        let mut settings = Vec::new();
        for section in SETTINGS_SECTIONS {
            let differs = match section {
                "health" => self.health != later.health,
                "outlier" => self.outlier != later.outlier,
                "retry" => self.retry != later.retry,
                _ => self.timeouts != later.timeouts,
            };
            if differs {
                settings.push(section);
            }
        }
        Difference {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            changed: before
                .intersection(&after)
                .filter(|id| find(self, id) != find(later, id))
                .cloned()
                .collect(),
            plugin: self.plugin != later.plugin || self.canary != later.canary,
            settings,
        }
    }

    /// The entries an empty store gets from a node's config file (its TOML text): each
    /// `[[backend]]` (with its id filled in) and each settings section the file writes. The
    /// plugin is published apart, with its module's bytes.
    pub fn seed(layout: &Layout, file: &toml::Table) -> Result<Vec<(String, Vec<u8>)>, Problem> {
        let mut puts = Vec::new();
        if let Some(backends) = file.get("backend").and_then(toml::Value::as_array) {
            for (index, table) in backends.iter().enumerate() {
                let config: BackendConfig = table.clone().try_into().map_err(|error| Problem {
                    key: format!("backend[{index}]"),
                    message: format!("{error}"),
                })?;
                let id = match &config.id {
                    Some(id) => id.clone(),
                    None => crate::config::parse_backend_url(&config.url)
                        .map_err(|error| Problem {
                            key: format!("backend[{index}].url"),
                            message: error,
                        })?
                        .authority
                        .to_string(),
                };
                let shared = SharedBackend {
                    config: BackendConfig {
                        id: Some(id.clone()),
                        ..config
                    },
                    drain: false,
                };
                puts.push((layout.backend(&id), to_json(&shared)));
            }
        }
        for section in SETTINGS_SECTIONS {
            if let Some(table) = file.get(section) {
                puts.push((layout.settings(section), to_json(table)));
            }
        }
        Ok(puts)
    }
}

/// The backend under `backends/<id>`: its id is the key's, and a table that names another
/// is refused.
fn backend(id: &str, value: &[u8]) -> Result<SharedBackend, String> {
    // `drain` is taken out before the rest is read as a `[[backend]]` table: reading both
    // through `#[serde(flatten)]` would lose the name of a bad field.
    let mut table: serde_json::Map<String, serde_json::Value> = json(value)?;
    let drain = match table.remove("drain") {
        None => false,
        Some(serde_json::Value::Bool(drain)) => drain,
        Some(other) => return Err(format!("drain: expected true or false, got {other}")),
    };
    let mut config: BackendConfig = json(&to_json(&table))?;
    match &config.id {
        Some(written) if written != id => {
            return Err(format!(
                "the backend names id {written:?}, its key says {id:?}"
            ));
        }
        _ => config.id = Some(id.to_string()),
    }
    crate::config::parse_backend_url(&config.url).map_err(|error| format!("url: {error}"))?;
    Ok(SharedBackend { config, drain })
}

/// What is wrong with a running canary, if anything.
fn canary_problem(canary: &SharedCanary, stored: &BTreeSet<String>) -> Option<String> {
    canary
        .problem()
        .or_else(|| plugin_problem(&SharedPlugin::from_canary(canary), stored))
}

impl SharedPlugin {
    /// A canary's candidate as the fleet's plugin (what its promotion writes).
    pub fn from_canary(canary: &SharedCanary) -> Self {
        Self {
            sha256: canary.sha256.clone(),
            config: canary.config.clone(),
            url: canary.url.clone(),
        }
    }
}

/// What is wrong with the published plugin, if anything.
fn plugin_problem(plugin: &SharedPlugin, stored: &BTreeSet<String>) -> Option<String> {
    let hex = plugin.sha256.len() == 64
        && plugin
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Some(format!(
            "sha256: {:?} is not 64 lowercase hex digits",
            plugin.sha256
        ));
    }
    if plugin.url.is_none() && !stored.contains(&plugin.sha256) {
        return Some(format!(
            "no module with sha256 {} is in the store, and no url to fetch it from",
            plugin.sha256
        ));
    }
    None
}

/// A value decoded as JSON, the error naming the field (`weight: invalid type: …`).
fn json<T: DeserializeOwned>(value: &[u8]) -> Result<T, String> {
    let mut reader = serde_json::Deserializer::from_slice(value);
    serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            format!("{}", error.inner())
        } else {
            format!("{path}: {}", error.inner())
        }
    })
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("config values serialise as JSON")
}

fn id_of(backend: &SharedBackend) -> &str {
    backend.config.id.as_deref().unwrap_or(&backend.config.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("/lbx")
    }

    fn kv(key: &str, value: &str) -> (String, Vec<u8>) {
        (key.to_string(), value.as_bytes().to_vec())
    }

    const SHA: &str = "6811d9b023d89ff8cef85052d0d32f691026ce4225fc2e168855131ed30f53ae";

    #[test]
    fn a_listing_decodes_into_backends_in_id_order_the_plugin_and_settings() {
        let kvs = [
            kv(
                "/lbx/backends/b",
                r#"{"url": "http://127.0.0.1:9002", "weight": 3}"#,
            ),
            kv(
                "/lbx/backends/a",
                r#"{"url": "http://127.0.0.1:9001", "drain": true}"#,
            ),
            kv(
                "/lbx/plugin",
                &format!(r#"{{"sha256": "{SHA}", "config": {{"key": "x"}}}}"#),
            ),
            kv(&format!("/lbx/modules/{SHA}"), "\0asm"),
            kv("/lbx/settings/retry", r#"{"max_attempts": 3}"#),
            kv(
                "/lbx/status/node-a",
                "not json: status keys are not part of the state",
            ),
            kv("/lbx/typo", "{}"),
        ];
        let state = SharedState::decode(&layout(), &kvs).unwrap();
        let ids: Vec<_> = state.backends.iter().map(id_of).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(state.backends[0].drain);
        assert_eq!(state.backends[1].config.weight, 3);
        assert_eq!(state.plugin.as_ref().unwrap().config["key"], "x");
        assert_eq!(state.retry.unwrap().max_attempts, 3);
        assert_eq!(state.unknown_keys, ["/lbx/typo"]);
    }

    #[test]
    fn every_bad_value_is_reported_naming_its_key_and_field() {
        let kvs = [
            kv(
                "/lbx/backends/a",
                r#"{"url": "http://127.0.0.1:9001", "weight": "heavy"}"#,
            ),
            kv("/lbx/backends/b", r#"{"url": "ftp://127.0.0.1:9002"}"#),
            kv(
                "/lbx/backends/c",
                r#"{"url": "http://127.0.0.1:9003", "id": "d"}"#,
            ),
            kv(
                "/lbx/settings/outlier",
                r#"{"consecutive_failures": 5, "colour": 1}"#,
            ),
            kv("/lbx/plugin", r#"{"sha256": "abc"}"#),
        ];
        let problems = SharedState::decode(&layout(), &kvs).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert!(
            text[0].starts_with("/lbx/backends/a: weight: invalid type"),
            "{text:#?}"
        );
        assert!(text[1].starts_with("/lbx/backends/b: url: "), "{text:#?}");
        assert!(
            text[2].contains("names id \"d\", its key says \"c\""),
            "{text:#?}"
        );
        assert!(text[3].starts_with("/lbx/settings/outlier: ") && text[3].contains("colour"));
        assert!(
            text[4].starts_with("/lbx/plugin: sha256: \"abc\" is not 64"),
            "{text:#?}"
        );
    }

    #[test]
    fn a_plugin_whose_module_is_neither_stored_nor_fetchable_is_refused() {
        let plugin = kv("/lbx/plugin", &format!(r#"{{"sha256": "{SHA}"}}"#));
        let problems = SharedState::decode(&layout(), std::slice::from_ref(&plugin)).unwrap_err();
        assert!(
            problems[0].message.contains("no module with sha256"),
            "{problems:?}"
        );
        let by_url = kv(
            "/lbx/plugin",
            &format!(r#"{{"sha256": "{SHA}", "url": "https://example.test/p.wasm"}}"#),
        );
        assert!(SharedState::decode(&layout(), &[by_url]).is_ok());
        let stored = kv(&format!("/lbx/modules/{SHA}"), "\0asm");
        assert!(SharedState::decode(&layout(), &[plugin, stored]).is_ok());
    }

    #[test]
    fn the_difference_names_only_what_changed() {
        let before = SharedState::decode(
            &layout(),
            &[
                kv("/lbx/backends/a", r#"{"url": "http://127.0.0.1:9001"}"#),
                kv("/lbx/backends/b", r#"{"url": "http://127.0.0.1:9002"}"#),
                kv("/lbx/backends/c", r#"{"url": "http://127.0.0.1:9003"}"#),
                kv("/lbx/settings/retry", r#"{"max_attempts": 2}"#),
            ],
        )
        .unwrap();
        let after = SharedState::decode(
            &layout(),
            &[
                kv("/lbx/backends/a", r#"{"url": "http://127.0.0.1:9001"}"#),
                kv(
                    "/lbx/backends/b",
                    r#"{"url": "http://127.0.0.1:9002", "drain": true}"#,
                ),
                kv("/lbx/backends/d", r#"{"url": "http://127.0.0.1:9004"}"#),
                kv("/lbx/settings/retry", r#"{"max_attempts": 2}"#),
                kv("/lbx/settings/timeouts", r#"{"connect": "1s"}"#),
            ],
        )
        .unwrap();
        let difference = before.difference(&after);
        assert_eq!(difference.added, ["d"]);
        assert_eq!(difference.removed, ["c"]);
        assert_eq!(difference.changed, ["b"]);
        assert!(!difference.plugin);
        assert_eq!(difference.settings, ["timeouts"]);
        assert!(after.difference(&after).is_empty());
    }

    #[test]
    fn a_seed_from_a_config_file_decodes_back_to_the_files_backends_and_settings() {
        let file: toml::Table = toml::from_str(
            r#"
            listen = "127.0.0.1:8080"
            [retry]
            max_attempts = 4
            [[backend]]
            url = "http://127.0.0.1:9002"
            weight = 2
            [[backend]]
            url = "http://127.0.0.1:9001"
            id = "one"
            labels = { pool = "web" }
            "#,
        )
        .unwrap();
        let puts = SharedState::seed(&layout(), &file).unwrap();
        let state = SharedState::decode(&layout(), &puts).unwrap();
        let ids: Vec<_> = state.backends.iter().map(id_of).collect();
        assert_eq!(ids, ["127.0.0.1:9002", "one"]);
        assert_eq!(state.backends[0].config.weight, 2);
        assert_eq!(state.backends[1].config.labels["pool"], "web");
        assert_eq!(state.retry.unwrap().max_attempts, 4);
        assert!(
            state.timeouts.is_none(),
            "a section the file leaves out is not seeded"
        );
    }

    #[test]
    fn applied_to_a_nodes_config_it_replaces_the_shared_parts_and_keeps_the_local_ones() {
        let mut config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:8080"
            [plugin]
            path = "/etc/lbx/old.wasm"
            deadline = "7ms"
            [retry]
            max_attempts = 1
            [[backend]]
            url = "http://127.0.0.1:1"
            "#,
        )
        .unwrap();
        let state = SharedState::decode(
            &layout(),
            &[
                kv(
                    "/lbx/backends/z",
                    r#"{"url": "http://127.0.0.1:9002", "drain": true}"#,
                ),
                kv("/lbx/backends/y", r#"{"url": "http://127.0.0.1:9001"}"#),
                kv(
                    "/lbx/plugin",
                    &format!(r#"{{"sha256": "{SHA}", "config": {{"n": 2}}}}"#),
                ),
                kv(&format!("/lbx/modules/{SHA}"), "\0asm"),
                kv("/lbx/settings/retry", r#"{"max_attempts": 3}"#),
            ],
        )
        .unwrap();
        let module = Path::new("/var/lib/lbx/modules/6811.wasm");
        let drained = state.apply_to(&mut config, Some(module)).unwrap();
        assert_eq!(drained, ["z"]);
        let urls: Vec<_> = config.backends.iter().map(|b| b.url.as_str()).collect();
        assert_eq!(urls, ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]);
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.listen, "127.0.0.1:8080");
        let plugin = config.plugin.unwrap();
        assert_eq!(plugin.path, module);
        assert_eq!(plugin.config["n"].as_integer(), Some(2));
        assert_eq!(
            plugin.deadline,
            std::time::Duration::from_millis(7),
            "local sandbox kept"
        );
    }
}
