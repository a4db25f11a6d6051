//! How a plugin version is run, apart from its bytes: its `init` configuration, its sandbox
//! limits, how many instances are kept, and the key-value store it shares.

use std::sync::Arc;
use std::time::Duration;

use super::kv::KvStore;
use crate::config::PluginSpec;

/// Deadline for `init` and `backends-changed`, which may do real work (parse config, build
/// tables) and run off the per-request budget.
pub(super) const SETUP_DEADLINE: Duration = Duration::from_secs(2);

/// Sandbox limits applied to every instance of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time one `choose` call may run.
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
}

/// How a plugin version is run: everything but its bytes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The plugin's configuration as JSON, passed to `init`.
    pub config_json: String,
    /// Sandbox limits.
    pub limits: Limits,
    /// Instances kept alive between decisions (one per worker thread is enough).
    pub max_idle: usize,
    /// The host key-value store, shared across versions.
    pub kv: Arc<KvStore>,
    /// Request body bytes read before deciding, offered as `request.body-prefix` (0: off).
    pub body_prefix: usize,
    /// Let the plugin write to lbx's stdout/stderr. Only for `lbx check`: on the proxy's
    /// async threads a write would fail the decision (see `contain`).
    pub inherit_stdio: bool,
}

impl LoadOptions {
    /// The settings this version runs with, as the config states them: what the version
    /// history keeps to run it the same way again.
    pub fn spec(&self) -> PluginSpec {
        PluginSpec {
            config_json: self.config_json.clone(),
            deadline: self.limits.deadline,
            memory_bytes: self.limits.memory_bytes,
            body_prefix: self.body_prefix,
        }
    }

    /// What `spec` asks for (its `init` config, its sandbox limits), with `kv` as the
    /// key-value store and `max_idle` instances kept. `lbx run`, `lbx check` and
    /// `lbx validate` all load through this, so they try the same plugin the same way.
    pub fn from_spec(spec: &PluginSpec, kv: Arc<KvStore>, max_idle: usize) -> Self {
        Self {
            config_json: spec.config_json.clone(),
            limits: Limits {
                deadline: spec.deadline,
                memory_bytes: spec.memory_bytes,
            },
            max_idle,
            kv,
            body_prefix: spec.body_prefix,
            inherit_stdio: false,
        }
    }
}
