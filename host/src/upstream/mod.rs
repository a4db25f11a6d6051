//! The backend table: which backends exist, their identity, and their live stats.
//!
//! Readers take a snapshot ([`Upstreams::snapshot`]); a new backend set is built off the hot path
//! and published with one store. Stats and signal readings of backends that remain (same id)
//! are carried over.

mod deadline;
pub mod exchange;
pub mod h2;
pub mod health;
mod metrics;
mod pool;
pub mod probe;
mod readings;
mod response_body;
mod stats;
mod traffic;
pub mod transport;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{BackendScheme, BackendSpec};
use crate::shutdown::{self, StopReceiver, StopSender};
pub use deadline::{DeadlineTimer, Waited, earliest};
pub use exchange::{
    BodySource, Exchange, ExchangeError, ExchangeTimeouts, OutgoingRequest, Response, Step,
    Switched,
};
pub use metrics::BackendMetrics;
pub use pool::{Checkout, ConnectError, ConnectionPool, PoolSettings, UpstreamConn};
pub use readings::{Reading, SignalReadings};
pub use response_body::{ResponseBody, ResponseBodyError};
pub use stats::{Ejection, InFlight, LiveStats};
pub use traffic::{STATUS_CLASSES, Traffic, TrafficSnapshot};
pub use transport::{Protocol, Transport};

/// One backend as routing sees it.
#[derive(Debug)]
pub struct Backend {
    /// What it is, as resolved from the config file or the admin API: id, URL, scheme,
    /// address, TLS, weight, labels and health check.
    pub spec: BackendSpec,
    /// Live counters, shared with earlier and later sets that contain this backend.
    pub stats: Arc<LiveStats>,
    /// Keep-alive connections to this backend, shared like `stats`.
    pub pool: Arc<ConnectionPool>,
    /// Its backend signals as last scraped, shared like `stats`.
    pub signals: Arc<SignalReadings>,
}

impl Backend {
    /// Whether the backend may receive new requests (healthy, not ejected, not draining).
    pub fn is_usable(&self) -> bool {
        self.stats.is_usable()
    }
}

/// An immutable set of backends; the position of a backend is its index for plugins.
#[derive(Debug)]
pub struct BackendSet {
    /// Changes whenever the set changes, so plugin instances know to refresh their view.
    pub generation: u64,
    /// The backends, in configuration order.
    pub backends: Vec<Backend>,
}

impl BackendSet {
    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether there are no backends at all.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Whether at least one backend may receive new requests.
    pub fn any_usable(&self) -> bool {
        self.backends.iter().any(Backend::is_usable)
    }

    /// Whether one more backend may be ejected without exceeding `max_percent` of the set.
    /// One ejection is always allowed, so a lone failing backend is not kept forever.
    pub fn may_eject_another(&self, max_percent: u8) -> bool {
        let ejected = self
            .backends
            .iter()
            .filter(|b| b.stats.is_ejected())
            .count();
        ejected == 0 || (ejected + 1) * 100 <= usize::from(max_percent) * self.len()
    }
}

/// The current backend set, swappable while serving.
#[derive(Debug)]
pub struct Upstreams {
    current: ArcSwap<BackendSet>,
    generations: AtomicU64,
    pool_settings: PoolSettings,
    health_checks: Mutex<HealthChecks>,
}

/// The running health checkers: they belong to one backend set and are replaced with it.
#[derive(Debug, Default)]
struct HealthChecks {
    /// Process shutdown; `None` until checks are first started.
    shutdown: Option<StopReceiver>,
    /// Stops the checkers of the set in force.
    retire: Option<StopSender>,
}

impl Upstreams {
    /// Build the first backend set.
    pub fn new(specs: &[BackendSpec], pool_settings: PoolSettings) -> Result<Self, BuildError> {
        let set = build_set(specs, 1, &HashMap::new(), pool_settings)?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            generations: AtomicU64::new(1),
            pool_settings,
            health_checks: Mutex::default(),
        })
    }

    /// Start active health checks for every backend of the set in force that has one; they
    /// run until `shutdown`, or until a new set replaces this one (its own checks start then).
    pub fn spawn_health_checks(&self, shutdown: &StopReceiver) {
        let mut checks = self.health_checks.lock().expect("health lock");
        checks.shutdown = Some(shutdown.clone());
        self.restart_health_checks(&mut checks);
    }

    fn restart_health_checks(&self, checks: &mut HealthChecks) {
        let Some(shutdown) = checks.shutdown.clone() else {
            return; // not serving yet: `spawn_health_checks` starts them
        };
        if let Some(previous) = checks.retire.take() {
            let _ = previous.send(true);
        }
        let (retire, retired) = shutdown::channel();
        checks.retire = Some(retire);
        for backend in &self.snapshot().backends {
            if let Some(check) = &backend.spec.health {
                let target = health::Target {
                    id: backend.spec.id.clone(),
                    authority: backend.spec.authority.clone(),
                    transport: backend.pool.transport().clone(),
                    stats: backend.stats.clone(),
                    check: check.clone(),
                };
                tokio::spawn(health::run(target, shutdown.clone(), retired.clone()));
            }
        }
    }

    /// The set in force now; cheap, lock-free, and stable for as long as it is held.
    pub fn snapshot(&self) -> Arc<BackendSet> {
        self.current.load_full()
    }

    /// Build a new set without putting it in force (a reload checks the plugin against it
    /// first). Backends whose id remains keep their live stats and, if their address and
    /// certificate rules are unchanged, their open connections.
    pub fn prepare(&self, specs: &[BackendSpec]) -> Result<BackendSet, BuildError> {
        let old = self.snapshot();
        let carried: HashMap<&str, &Backend> = old
            .backends
            .iter()
            .map(|b| (b.spec.id.as_str(), b))
            .collect();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        build_set(specs, generation, &carried, self.pool_settings)
    }

    /// Put a prepared set in force and move the health checks over to it. Requests already
    /// routed keep the set they started with.
    pub fn publish(&self, set: Arc<BackendSet>) {
        let mut checks = self.health_checks.lock().expect("health lock");
        self.current.store(set);
        self.restart_health_checks(&mut checks);
    }
}

/// A backend that could not be built: its `https://` client configuration failed (an
/// unreadable CA file, a server name rustls refuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend {id:?}: {field}: {message}")]
pub struct BuildError {
    /// The backend.
    pub id: String,
    /// The setting at fault (`ca`, `server_name`).
    pub field: &'static str,
    /// What went wrong.
    pub message: String,
}

/// How to reach a backend: its scheme, and for `https://` a TLS client configuration.
fn transport_for(spec: &BackendSpec, pool_settings: PoolSettings) -> Result<Transport, BuildError> {
    let invalid = |field: &'static str, message: String| BuildError {
        id: spec.id.clone(),
        field,
        message,
    };
    let tls = if spec.scheme == BackendScheme::Https {
        if spec.tls.insecure_skip_verify {
            tracing::warn!(
                backend = %spec.url,
                "insecure_skip_verify: this backend's certificate is not verified; anyone on the \
                 path can impersonate it"
            );
        }
        let client = crate::tls::client::client_config(
            spec.tls.ca.as_deref(),
            spec.tls.insecure_skip_verify,
        )
        .map_err(|message| invalid("ca", message))?;
        Some((client, spec.tls.server_name.clone()))
    } else {
        None
    };
    Transport::new(
        spec.authority.clone(),
        spec.scheme,
        tls,
        pool_settings.connect_timeout,
    )
    .map_err(|message| invalid("server_name", message))
}

fn build_set(
    specs: &[BackendSpec],
    generation: u64,
    carried: &HashMap<&str, &Backend>,
    pool_settings: PoolSettings,
) -> Result<BackendSet, BuildError> {
    let mut backends = Vec::with_capacity(specs.len());
    for spec in specs {
        let previous = carried.get(spec.id.as_str());
        let stats = previous.map(|b| b.stats.clone()).unwrap_or_default();
        let signals = previous.map(|b| b.signals.clone()).unwrap_or_default();
        // Open connections are kept only if nothing they depend on changed.
        let pool = match previous.filter(|b| b.spec.url == spec.url && b.spec.tls == spec.tls) {
            Some(b) => b.pool.clone(),
            None => Arc::new(ConnectionPool::new(
                transport_for(spec, pool_settings)?,
                pool_settings,
            )),
        };
        backends.push(Backend {
            spec: spec.clone(),
            stats,
            pool,
            signals,
        });
    }
    Ok(BackendSet {
        generation,
        backends,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pool_settings() -> PoolSettings {
        PoolSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(60),
            max_idle: 8,
        }
    }

    /// A resolved backend at `url`, named `id` (default `host:port`).
    pub(crate) fn backend(url: &str, id: Option<&str>) -> BackendSpec {
        let config = crate::config::BackendConfig {
            id: id.map(Into::into),
            ..crate::config::BackendConfig::at(url)
        };
        BackendSpec::resolve(&config, &Default::default(), "backend").expect("valid test backend")
    }

    #[test]
    fn at_most_the_configured_share_of_backends_is_ejected() {
        let configs: Vec<_> = (1..=4)
            .map(|port| backend(&format!("http://127.0.0.1:{port}"), None))
            .collect();
        let upstreams = Upstreams::new(&configs, pool_settings()).unwrap();
        let set = upstreams.snapshot();
        let outlier = crate::config::OutlierConfig {
            consecutive_failures: 1,
            ..Default::default()
        };
        assert!(set.may_eject_another(50));
        set.backends[0].stats.record_failure(&outlier, true);
        assert!(set.may_eject_another(50), "2 of 4 is 50%");
        set.backends[1].stats.record_failure(&outlier, true);
        assert!(!set.may_eject_another(50), "3 of 4 would exceed 50%");
        assert!(set.may_eject_another(100));
    }

    #[test]
    fn a_lone_backend_may_always_be_ejected() {
        let upstreams =
            Upstreams::new(&[backend("http://127.0.0.1:1", None)], pool_settings()).unwrap();
        assert!(upstreams.snapshot().may_eject_another(10));
    }

    #[test]
    fn replacing_the_set_keeps_stats_and_signal_readings_of_remaining_backends() {
        let upstreams = Upstreams::new(
            &[
                backend("http://127.0.0.1:1", Some("a")),
                backend("http://127.0.0.1:2", Some("b")),
            ],
            pool_settings(),
        )
        .unwrap();
        let first = upstreams.snapshot();
        let _held = first.backends[0].stats.start_request();
        first.backends[0].signals.record_success(Reading {
            layout: 1,
            at: tokio::time::Instant::now(),
            values: vec![2.5].into(),
        });

        let next = upstreams
            .prepare(&[
                backend("http://127.0.0.1:3", Some("c")),
                backend("http://127.0.0.1:1", Some("a")),
            ])
            .unwrap();
        upstreams.publish(Arc::new(next));
        let second = upstreams.snapshot();
        assert!(second.generation > first.generation);
        assert_eq!(second.backends[1].spec.id, "a");
        assert_eq!(second.backends[1].stats.in_flight(), 1);
        assert_eq!(second.backends[0].stats.in_flight(), 0);
        let carried = second.backends[1].signals.last();
        assert_eq!(carried.as_ref().map(|r| r.values[0]), Some(2.5));
        assert!(second.backends[0].signals.last().is_none());
    }
}
