//! `[[plugin.shadow]]`: candidate plugins run beside the live one on a sample of requests,
//! their decisions compared and never acted on (see the `shadow` module). Each runs with the
//! live plugin's sandbox limits and body prefix; only its file, name, `config` and sample
//! rate are its own.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One `[[plugin.shadow]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// The candidate plugin component (`.wasm`).
    pub path: PathBuf,
    /// Its name in the admin API, metrics and dashboard; defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Settings handed to its `init` as JSON, as `[plugin] config` is to the live one.
    #[serde(default)]
    pub config: toml::Table,
    /// Share of requests it sees, more than 0 and at most 1.
    #[serde(default = "default_sample")]
    pub sample: f64,
}

fn default_sample() -> f64 {
    0.1
}

/// Longest shadow name (it is a metric label and part of admin URLs).
pub const MAX_NAME: usize = 64;

impl ShadowConfig {
    /// Its name: the one given, or the plugin file's stem.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| stem(&self.path))
    }

    /// Its `config` table as the JSON text its `init` receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

/// A plugin file's stem, the default name of a shadow.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "shadow".into(), |s| s.to_string_lossy().into_owned())
}

/// Why `name` cannot name a shadow, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
        Some(format!(
            "{name:?} is not a shadow name: 1 to {MAX_NAME} letters, digits, '_', '-' or '.'"
        ))
    } else {
        None
    }
}

/// Why `sample` cannot be a sample rate, if it cannot.
pub fn sample_problem(sample: f64) -> Option<String> {
    (!(sample > 0.0 && sample <= 1.0))
        .then(|| format!("{sample} is not a share of requests: more than 0 and at most 1"))
}

/// Every problem of the `[[plugin.shadow]]` list: bad names, sample rates, repeated names.
pub fn check(shadows: &[ShadowConfig], problem: &mut impl FnMut(String, String)) {
    let mut seen = Vec::new();
    for (i, shadow) in shadows.iter().enumerate() {
        let key = |field: &str| format!("plugin.shadow[{i}].{field}");
        let name = shadow.name();
        if let Some(message) = name_problem(&name) {
            problem(key("name"), message);
        }
        if let Some(message) = sample_problem(shadow.sample) {
            problem(key("sample"), message);
        }
        if seen.contains(&name) {
            problem(
                key("name"),
                format!("{name:?} names two shadows; give each its own `name`"),
            );
        }
        seen.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_the_file_stem_and_must_be_unique_and_plain() {
        let shadow = |path: &str, name: Option<&str>, sample: f64| ShadowConfig {
            path: path.into(),
            name: name.map(Into::into),
            config: toml::Table::new(),
            sample,
        };
        let mut problems = Vec::new();
        check(
            &[
                shadow("p/v2.wasm", None, 0.1),
                shadow("q/v2.wasm", None, 1.0),
                shadow("r.wasm", Some("a b"), 0.0),
            ],
            &mut |key, message| problems.push(format!("{key}: {message}")),
        );
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("plugin.shadow[1].name: \"v2\" names two shadows"));
        assert!(problems[1].starts_with("plugin.shadow[2].name: \"a b\" is not a shadow name"));
        assert!(problems[2].starts_with("plugin.shadow[2].sample: 0 is not a share"));
    }
}
