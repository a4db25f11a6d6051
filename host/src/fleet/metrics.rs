//! The node's fleet metrics: `lbx_fleet_applied_revision` (the store revision whose shared
//! state is in force), `lbx_fleet_shared_revision` (the last change to the shared state this
//! node saw: the two differ while it refuses one), `lbx_fleet_connected` (1 while it watches
//! the store), `lbx_fleet_applies_total{result}` (`applied`, `refused`), and
//! `lbx_fleet_nodes` (live nodes: status keys whose lease is kept alive). Set off the request
//! path, when the node applies a change or the store's view moves.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::RegisterMetrics;

type Labels = Vec<(&'static str, &'static str)>;

/// The fleet series of one node.
#[derive(Debug, Clone, Default)]
pub struct FleetMetrics {
    pub(super) applied_revision: Gauge,
    pub(super) shared_revision: Gauge,
    pub(super) connected: Gauge,
    pub(super) nodes: Gauge,
    applies: Family<Labels, Counter>,
}

impl FleetMetrics {
    /// Count one change applied (`true`) or refused.
    pub(super) fn applied(&self, ok: bool) {
        let result = if ok { "applied" } else { "refused" };
        self.applies.get_or_create(&vec![("result", result)]).inc();
    }
}

impl RegisterMetrics for FleetMetrics {
    fn register(&self, registry: &mut Registry) {
        for result in ["applied", "refused"] {
            drop(self.applies.get_or_create(&vec![("result", result)]));
        }
        registry.register(
            "fleet_applied_revision",
            "The etcd revision whose shared state this node has in force",
            self.applied_revision.clone(),
        );
        registry.register(
            "fleet_shared_revision",
            "The etcd revision of the last change to the shared state this node saw",
            self.shared_revision.clone(),
        );
        registry.register(
            "fleet_connected",
            "1 while this node watches the fleet store, 0 while it serves from memory",
            self.connected.clone(),
        );
        registry.register(
            "fleet_nodes",
            "Live nodes of the fleet (status keys whose lease is kept alive)",
            self.nodes.clone(),
        );
        registry.register(
            "fleet_applies",
            "Changes of the fleet's shared state this node applied or refused",
            self.applies.clone(),
        );
    }
}
