//! Wiring: from a validated [`Config`] to a bound, running proxy. Tests and `main` both start
//! lbx through [`Server::bind`] and [`Server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Config, TimeoutConfig};
use crate::plugin::{Limits, LoadedPlugin, PluginEngine, Router};
use crate::proxy::{self, Policies, Proxy};
use crate::upstream::Upstreams;

/// Where the routing plugin comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A `.wasm` file on disk.
    File(PathBuf),
    /// A component compiled into the lbx binary (the demo's plugin).
    Embedded {
        /// Name for logs.
        name: &'static str,
        /// The component's bytes.
        bytes: &'static [u8],
    },
}

/// A proxy bound to its listen address, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    timeouts: TimeoutConfig,
}

impl Server {
    /// Validate `config`, load the plugin it names and bind the listener.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let source = config
            .plugin
            .as_ref()
            .map(|p| PluginSource::File(p.path.clone()));
        Self::bind_with_plugin(config, source).await
    }

    /// Like [`Server::bind`], with the plugin given explicitly (e.g. embedded).
    pub async fn bind_with_plugin(
        config: &Config,
        source: Option<PluginSource>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let upstreams = Arc::new(Upstreams::new(
            &config.backends,
            config.pool_settings(),
            config.health.clone(),
        )?);
        let plugin = match source {
            Some(source) => Some(load_plugin(config, source).await?),
            None => None,
        };
        if let Some(plugin) = &plugin {
            tracing::info!(plugin = plugin.name(), "routing plugin loaded");
        } else {
            tracing::info!("no routing plugin: using built-in least-in-flight");
        }
        let router = Arc::new(Router::new(plugin));
        let policies = Policies {
            timeouts: config.timeouts,
            outlier: config.outlier,
            retry: config.retry,
        };
        let proxy = Arc::new(Proxy::new(upstreams, router, policies));

        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self {
            listener,
            proxy,
            timeouts: config.timeouts,
        })
    }

    /// The address clients connect to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Set how long in-flight requests get to finish after shutdown starts.
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.timeouts.drain = drain;
        self
    }

    /// Start health checks, serve until `shutdown` turns true, then drain and return.
    pub async fn run(self, shutdown: crate::shutdown::StopReceiver) {
        self.proxy.upstreams().spawn_health_checks(&shutdown);
        tracing::info!(listen = %self.local_addr(), "lbx listening");
        proxy::serve(
            self.listener,
            self.proxy,
            shutdown,
            self.timeouts.drain,
            self.timeouts.request_headers,
        )
        .await;
    }
}

async fn load_plugin(config: &Config, source: PluginSource) -> anyhow::Result<LoadedPlugin> {
    let settings = config.plugin.clone();
    let limits = Limits {
        deadline: settings
            .as_ref()
            .map_or(Duration::from_millis(5), |p| p.deadline),
        memory_bytes: settings.as_ref().map_or(64, |p| p.memory_limit_mib) as usize * 1024 * 1024,
    };
    let config_json = config.plugin_config_json();
    let pool_size = worker_count(config.workers);
    // Compiling takes milliseconds to seconds: keep it off the async threads.
    tokio::task::spawn_blocking(move || {
        let engine = PluginEngine::new(limits.deadline)?;
        let loaded = match source {
            PluginSource::File(path) => {
                LoadedPlugin::load_file(&engine, &path, config_json, limits, pool_size)
            }
            PluginSource::Embedded { name, bytes } => {
                LoadedPlugin::load_bytes(&engine, name, bytes, config_json, limits, pool_size)
            }
        };
        Ok(loaded?)
    })
    .await?
}

/// Worker threads for a `workers` setting (0 = one per core).
pub fn worker_count(workers: usize) -> usize {
    if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}
