//! What a node in fleet mode lays over its own config file: the shared state of one store
//! revision, with the node's checked copy of the plugin module. The reload path takes it
//! ([`Applier`]) and puts it in force whole or not at all, exactly as it would a new config
//! file; the drained backends travel beside the config because a drain is runtime state.

use std::collections::HashSet;
use std::path::PathBuf;

use super::shared::SharedState;
use crate::config::{Config, Problem};

/// The fleet's part of a node's configuration, as of one store revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The store revision the shared state was read at.
    pub revision: i64,
    /// What the fleet shares.
    pub state: SharedState,
    /// The node's checked copy of the plugin module (`Some` exactly when a plugin is
    /// published).
    pub module: Option<PathBuf>,
    /// The node's checked copy of the running fleet canary's candidate module.
    pub canary_module: Option<PathBuf>,
}

impl Overlay {
    /// Lay the shared state over `config` (the node's own file). The plugin is the fleet's:
    /// none published means none, whatever the file says — every node must route alike.
    /// Returns the ids the fleet drained.
    pub fn apply_to(&self, config: &mut Config) -> Result<HashSet<String>, Problem> {
        let drained = self.state.apply_to(config, self.module.as_deref())?;
        if self.state.plugin.is_none() {
            config.plugin = None;
        }
        Ok(drained.into_iter().collect())
    }

    /// The sha256 of the published plugin, if any.
    pub fn plugin_sha256(&self) -> Option<&str> {
        self.state.plugin.as_ref().map(|p| p.sha256.as_str())
    }
}

/// What puts an overlay in force: the reload path (`reload::fleet`), behind this trait so the
/// fleet module does not depend on it.
pub trait Applier: Send + Sync + 'static {
    /// Put `overlay` in force over the node's own file, whole or not at all; what changed, or
    /// why it was refused (the running state keeps serving).
    fn apply_overlay(
        &self,
        overlay: Overlay,
    ) -> impl Future<Output = Result<String, String>> + Send;

    /// This node's figures for the fleet canary's step in progress, if it runs one.
    fn canary_counts(&self) -> Option<super::canary::NodeCanary>;
}
