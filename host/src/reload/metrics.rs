//! Reload outcomes, `lbx_reloads_total{what,result}`, and plugin rollbacks,
//! `lbx_plugin_rollbacks_total{result}`: owned and registered by the reloader.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::metrics::RegisterMetrics;

/// What was reloaded.
#[derive(Debug, Clone, Copy)]
pub enum ReloadKind {
    /// The routing plugin.
    Plugin,
    /// The configuration file.
    Config,
    /// The HTTPS listener's certificates.
    Certificates,
}

/// Reload outcomes. Counted off the request path (a reload is rare), so a label lookup per
/// count is fine here.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    outcomes: Family<Vec<(&'static str, &'static str)>, Counter>,
    rollbacks: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Default for ReloadMetrics {
    /// Every series exists from the start at 0, so the family is exposed (and `rate()` has a
    /// starting point) before the first reload.
    fn default() -> Self {
        let metrics = Self {
            outcomes: Family::default(),
            rollbacks: Family::default(),
        };
        for result in ["applied", "refused"] {
            drop(metrics.rollbacks.get_or_create(&vec![("result", result)]));
        }
        for what in ["plugin", "config", "certificates"] {
            for result in ["ok", "refused"] {
                drop(
                    metrics
                        .outcomes
                        .get_or_create(&vec![("what", what), ("result", result)]),
                );
            }
        }
        metrics
    }
}

impl ReloadMetrics {
    /// Count a reload of `what` that was applied (`ok`) or refused.
    pub fn record(&self, what: ReloadKind, ok: bool) {
        let what = match what {
            ReloadKind::Plugin => "plugin",
            ReloadKind::Config => "config",
            ReloadKind::Certificates => "certificates",
        };
        let result = if ok { "ok" } else { "refused" };
        self.outcomes
            .get_or_create(&vec![("what", what), ("result", result)])
            .inc();
    }
}

impl ReloadMetrics {
    /// Count a rollback that was applied, or not (refused, unknown version, already in force).
    pub fn record_rollback(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.rollbacks
            .get_or_create(&vec![("result", result)])
            .inc();
    }
}

impl RegisterMetrics for ReloadMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "reloads",
            "Plugin, config and certificate reloads, by what and result (ok, refused)",
            self.outcomes.clone(),
        );
        registry.register(
            "plugin_rollbacks",
            "Plugin rollbacks, by result (applied, refused: not done for any reason)",
            self.rollbacks.clone(),
        );
    }
}
