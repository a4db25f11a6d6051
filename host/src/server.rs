//! Wiring: from a validated [`Config`] to a bound, running proxy with its admin listener and
//! hot reload. Tests and `main` both start lbx through a `Server::bind*` and [`Server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admin::{self, Admin, Readiness};
use crate::canary::{Canaries, CanaryMetrics};
use crate::config::{Config, Overrides, TimeoutConfig};
use crate::discovery::Discovery;
use crate::fleet::{Applier, FleetNode};
use crate::history::ReloadHistory;
use crate::logging::LogMetrics;
use crate::metrics::Metrics;
use crate::plugin::{Breaker, Decider, DecisionMetrics, KvStore};
use crate::proxy::{self, AccessLogSettings, Listener, Policies, Proxy, Role};
use crate::recording::{RecordMetrics, Recording};
pub use crate::reload::PluginSource;
use crate::reload::{ReloadMetrics, Reloader, ReloaderParts};
use crate::runtime_backends::BackendManager;
use crate::shadow::{ShadowMetrics, Shadows};
use crate::signals::{Scraper, SignalMetrics};
use crate::tls::{Certificates, TlsTerminator};
use crate::upstream::{BackendMetrics, PoolSettings};

/// Where the configuration came from, so a reload can read it again.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The config file, if any (watched, and re-read on reload).
    pub config_file: Option<PathBuf>,
    /// Command-line settings to apply again over every re-read of the file.
    pub overrides: Overrides,
}

/// A proxy bound to its listen addresses (plain, HTTPS, admin), ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    redirect_http: bool,
    tls: Option<(TcpListener, TlsTerminator)>,
    proxy: Arc<Proxy>,
    timeouts: TimeoutConfig,
    admin: Option<(TcpListener, Admin)>,
    reloader: Arc<Reloader>,
    readiness: Readiness,
    signals: Arc<Scraper>,
    discovery: Arc<Discovery>,
    fleet: Option<Arc<FleetNode>>,
}

impl Server {
    /// Validate `config`, load the plugin it names and bind the listeners.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        Self::bind_inner(config, None, Origin::default()).await
    }

    /// Like [`Server::bind`], remembering where the config came from so that it is watched
    /// and reloaded (`lbx run --config`).
    pub async fn bind_from(config: &Config, origin: Origin) -> anyhow::Result<Self> {
        Self::bind_inner(config, None, origin).await
    }

    /// Like [`Server::bind`], routing with a plugin compiled into the binary (the demo's)
    /// instead of the config's `[plugin] path`.
    pub async fn bind_embedded(
        config: &Config,
        name: &'static str,
        bytes: &'static [u8],
    ) -> anyhow::Result<Self> {
        let embedded = PluginSource::Embedded { name, bytes };
        Self::bind_inner(config, Some(embedded), Origin::default()).await
    }

    async fn bind_inner(
        config: &Config,
        embedded: Option<PluginSource>,
        origin: Origin,
    ) -> anyhow::Result<Self> {
        // In fleet mode the backends, plugin and fleet-wide settings are the fleet's, laid
        // over the file before anything is built from it.
        let mut fleet_config;
        let (config, fleet) = match &config.fleet {
            Some(settings) => {
                let Some(file) = origin.config_file.as_deref() else {
                    anyhow::bail!(
                        "[fleet] needs lbx run --config FILE (the state file and \
                        module copies are kept beside it)"
                    );
                };
                let (node, overlay, from) = FleetNode::start(settings, file, config).await?;
                fleet_config = config.clone();
                overlay
                    .apply_to(&mut fleet_config)
                    .map_err(|problem| anyhow::anyhow!("fleet state: {problem}"))?;
                tracing::info!(node = node.node_id(), revision = overlay.revision, from = ?from,
                    backends = fleet_config.backends.len(), "fleet mode: joined the fleet");
                (&fleet_config, Some((node, overlay)))
            }
            None => (config, None),
        };
        let resolved = config.validate()?;
        // Before anything below logs (an insecure backend's warning, the plugin loading).
        crate::logging::set_format(config.log.format);
        let history = Arc::new(ReloadHistory::default());
        // In fleet mode the admin API's changes go to the store, not to a state file.
        let state_file = match fleet {
            Some(_) => None,
            None => config.state_file(origin.config_file.as_deref()),
        };
        let backends = Arc::new(BackendManager::start(
            config.backends.clone(),
            config.health.clone(),
            PoolSettings::from_config(config),
            state_file,
            history.clone(),
        )?);
        let upstreams = backends.upstreams().clone();
        // Before the plugin loads: it starts with the backends DNS knows.
        let discovery = Arc::new(Discovery::new(backends.clone()));
        discovery.start(&config.discovery.dns).await;
        let signals = Arc::new(Scraper::new(resolved.signals, upstreams.clone()));
        let reloads = ReloadMetrics::default();
        let access_log = Arc::new(AccessLogSettings::new(&config.log));
        let plugin_settings = config.plugin_settings();
        let breaker = Breaker::new(
            plugin_settings.disable_after_failures,
            plugin_settings.disabled_for,
        );
        let kv = Arc::new(KvStore::new(plugin_settings.kv_max_bytes));
        let certificates = if config.tls.enabled() {
            let loaded = Certificates::load(&config.tls.certificates, crate::tls::provider())
                .context("cannot load [tls] certificates")?;
            Some(Arc::new(loaded))
        } else {
            None
        };
        let decider = Arc::new(
            Decider::new(None, breaker, DecisionMetrics::default()).with_signals(signals.clone()),
        );
        let shadows = Arc::new(Shadows::new(signals.clone()));
        let recording = Arc::new(Recording::new(config.record.clone()));
        let canaries = Arc::new(Canaries::default());
        let reloader = Reloader::new(ReloaderParts {
            config: config.clone(),
            config_file: origin.config_file,
            overrides: origin.overrides,
            embedded,
            decider: decider.clone(),
            shadows: shadows.clone(),
            canaries: canaries.clone(),
            backends,
            discovery: discovery.clone(),
            signals: signals.clone(),
            kv: kv.clone(),
            certificates: certificates.clone(),
            metrics: reloads.clone(),
            history,
            access_log: access_log.clone(),
            pool_size: worker_count(config.workers),
        });
        reloader.load_initial().await?;
        if let Some((_, overlay)) = &fleet {
            // The drains, and the overlay every later reload keeps.
            reloader
                .apply_overlay(overlay.clone())
                .await
                .map_err(|reason| anyhow::anyhow!("fleet state: {reason}"))?;
        }
        let fleet = fleet.map(|(node, _)| node);
        reloader.restore_canary().await;
        reloader.start_canary_at_start().await;

        let policies = Policies {
            timeouts: config.timeouts,
            outlier: config.outlier,
            retry: config.retry,
            proxy: config.proxy.clone(),
            access_log,
        };
        let proxy = Arc::new(
            Proxy::new(upstreams.clone(), decider.clone(), policies)
                .with_shadows(shadows.clone())
                .with_recording(recording.clone())
                .with_canaries(canaries.clone()),
        );
        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let tls = match (&config.tls.listen_addr(), &certificates) {
            (Some(addr), Some(certificates)) => {
                let terminator = TlsTerminator::new(certificates.clone())
                    .context("cannot set up TLS for [tls] listen")?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} ([tls] listen)"))?;
                Some((listener, terminator))
            }
            _ => None,
        };
        // After the listeners bind: an lbx that cannot serve leaves no recording behind.
        recording
            .start_configured()
            .context("cannot start [record]")?;
        let readiness = Readiness::default();
        let admin = if config.admin.enabled {
            let addr: SocketAddr = config.admin.listen.parse()?;
            // Each component registers what it owns.
            let mut metrics = Metrics::default();
            metrics.register(decider.metrics());
            metrics.register(&reloads);
            metrics.register(&BackendMetrics::new(upstreams.clone()));
            metrics.register(&SignalMetrics::new(signals.clone()));
            metrics.register(&*proxy);
            metrics.register(&LogMetrics);
            metrics.register(&ShadowMetrics(shadows.clone()));
            metrics.register(&RecordMetrics(recording.clone()));
            metrics.register(&CanaryMetrics(canaries.clone()));
            metrics.register(discovery.metrics());
            if let Some(fleet) = &fleet {
                metrics.register(fleet.metrics());
            }
            if let Some((_, terminator)) = &tls {
                metrics.register(terminator);
            }
            let metrics = Arc::new(metrics);
            let token = config
                .admin
                .read_token()
                .map_err(|problem| crate::config::ConfigError::Invalid(vec![problem]))?;
            let admin = Admin {
                decider,
                shadows,
                recording,
                canaries,
                reloader: reloader.clone(),
                upstreams,
                signals: signals.clone(),
                kv,
                metrics,
                access: admin::Access {
                    token,
                    allowed_hosts: config.admin.allowed_hosts.clone(),
                },
                header_timeout: config.timeouts.request_headers,
                readiness: readiness.clone(),
                fleet: fleet.clone(),
            };
            Some((admin::bind(addr).await?, admin))
        } else {
            None
        };
        Ok(Self {
            listener,
            redirect_http: config.tls.redirect_http,
            tls,
            proxy,
            timeouts: config.timeouts,
            admin,
            reloader,
            readiness,
            signals,
            discovery,
            fleet,
        })
    }

    /// The address clients connect to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The HTTPS address, if HTTPS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .map(|(listener, _)| listener.local_addr().expect("bound listener"))
    }

    /// The admin API's address, if it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .map(|(listener, _)| listener.local_addr().expect("bound listener"))
    }

    /// The backend signals in force and their scraper.
    pub fn signals(&self) -> &Arc<Scraper> {
        &self.signals
    }

    /// What reloads the plugin and config (the admin API and SIGHUP call it too).
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Set how long in-flight requests get to finish after shutdown starts.
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.timeouts.drain = drain;
        self
    }

    /// Start health checks, signal scrapes, file watching and the admin API, serve until `shutdown` turns
    /// true, then drain and return. The admin API answers until the drain ends, `/ready` with
    /// 503 from the moment shutdown starts.
    pub async fn run(self, shutdown: crate::shutdown::StopReceiver) {
        self.proxy.upstreams().spawn_health_checks(&shutdown);
        self.signals.spawn(&shutdown);
        if let Some(fleet) = &self.fleet {
            let stop = tokio_util::sync::CancellationToken::new();
            fleet.spawn(self.reloader.clone(), stop.clone());
            let mut stopping = shutdown.clone();
            tokio::spawn(async move {
                crate::shutdown::stopped(&mut stopping).await;
                stop.cancel();
            });
        }
        if let Err(e) = crate::reload::watch::spawn(self.reloader.clone(), &shutdown).await {
            tracing::warn!(error = %e, "cannot watch files for changes; reload with SIGHUP or the admin API");
        }
        // The admin API has a stop signal of its own: it outlives the proxy's accept loops.
        let (stop_admin, admin_stopped) = crate::shutdown::channel();
        let admin_task = self
            .admin
            .map(|(listener, admin)| tokio::spawn(admin::serve(listener, admin, admin_stopped)));
        // Listeners are bound and the plugin is loaded (`bind` did both): ready. Set before the
        // drain watcher starts, so a shutdown already raised still ends in "draining".
        self.readiness.serving();
        let readiness = self.readiness.clone();
        let mut draining = shutdown.clone();
        tokio::spawn(async move {
            crate::shutdown::stopped(&mut draining).await;
            readiness.draining();
        });
        let address = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut listeners = Vec::new();
        match self.tls {
            Some((tls_listener, terminator)) => {
                tracing::info!(
                    listen = %address(&self.listener),
                    tls_listen = %address(&tls_listener),
                    "lbx listening"
                );
                for (cert, names) in terminator.certificates().describe() {
                    tracing::info!(certificate = %cert.display(), names = ?names, "serving certificate");
                }
                let plain_role = match tls_listener.local_addr() {
                    Ok(addr) if self.redirect_http => Role::RedirectToHttps(addr.port()),
                    _ => Role::Plain,
                };
                listeners.push(Listener {
                    tcp: self.listener,
                    role: plain_role,
                });
                listeners.push(Listener {
                    tcp: tls_listener,
                    role: Role::Tls(terminator),
                });
            }
            None => {
                tracing::info!(listen = %address(&self.listener), "lbx listening");
                listeners.push(Listener {
                    tcp: self.listener,
                    role: Role::Plain,
                });
            }
        }
        proxy::serve(listeners, self.proxy, shutdown, self.timeouts.drain).await;
        self.discovery.stop();
        let _ = stop_admin.send(true);
        if let Some(admin_task) = admin_task {
            let _ = admin_task.await;
        }
    }
}

/// Worker threads for a `workers` setting (0 = one per core).
pub fn worker_count(workers: usize) -> usize {
    if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}
