//! This lbx as a node of a fleet: how it starts ([`FleetNode::start`]: from the store, seeding
//! an empty one from its own file, or — store down — from the state it last applied), and the
//! handle the rest of the host uses while it runs: the fleet's statuses for `/admin/fleet`,
//! the store for the admin API's writes ([`super::writes`]), and the task that keeps the node
//! in step ([`super::sync`]).
//!
//! A node's first start needs the store or a state file; after that, it starts and serves
//! whatever the store does (apisix#3878: an APISIX node cannot start while etcd is down).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;

use super::canary::{FleetCanaryState, SharedCanary};
use super::etcd::{EtcdSettings, EtcdStore};
use super::follow::{Connection, Follower, Statuses};
use super::layout::{Entry, Layout, MAX_STORED_MODULE};
use super::metrics::FleetMetrics;
use super::modules::{ModuleCache, sha256_hex};
use super::overlay::Overlay;
use super::shared::{SharedPlugin, SharedState};
use super::state_file::{self, AppliedState};
use super::status::NodeStatus;
use super::store::{CommitOutcome, Store, StoreError, Txn};
use crate::config::{Config, FleetConfig};

/// Longest wait for a module fetched by URL.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// This node of the fleet.
pub struct FleetNode {
    pub(super) store: Arc<EtcdStore>,
    pub(super) layout: Layout,
    pub(super) node_id: String,
    pub(super) modules: ModuleCache,
    pub(super) state_path: PathBuf,
    pub(super) status_ttl: Duration,
    /// This node's status, as published under its status key.
    pub(super) own: watch::Sender<NodeStatus>,
    /// The revision of the last change to the shared state this node saw.
    pub(super) shared_revision: watch::Sender<i64>,
    /// Every node's status, from the follower.
    pub(super) statuses: watch::Receiver<Statuses>,
    /// Whether the follower reaches the store.
    pub(super) connection: watch::Receiver<Connection>,
    /// The follower, until the sync task takes it.
    pub(super) follower: Mutex<Option<Follower<EtcdStore>>>,
    /// This node's fleet series.
    pub(super) metrics: FleetMetrics,
    /// The fleet canary in the shared state in force.
    pub(super) canary: watch::Sender<Option<SharedCanary>>,
}

impl std::fmt::Debug for FleetNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetNode")
            .field("node_id", &self.node_id)
            .field("prefix", &self.layout.root())
            .field("endpoints", &self.store.endpoints())
            .finish_non_exhaustive()
    }
}

/// Where a node's start-up state came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartedFrom {
    /// The store, at this revision.
    Store(i64),
    /// The state file (the store was unreachable: why).
    StateFile(String),
}

impl FleetNode {
    /// Join the fleet `settings` names: read its shared state (seeding an empty store from
    /// `local`, the node's own file, once), or, when the store cannot be reached, the state
    /// this node last applied. Returns the node and the overlay to start with.
    pub async fn start(
        settings: &FleetConfig,
        config_file: &Path,
        local: &Config,
    ) -> anyhow::Result<(Arc<Self>, Overlay, StartedFrom)> {
        let node_id = settings
            .node_name()
            .context("[fleet] node_id: the host name could not be read; set node_id")?;
        let layout = Layout::new(&settings.prefix);
        let store_settings = EtcdSettings::from_config(settings).map_err(anyhow::Error::msg)?;
        let store = Arc::new(
            EtcdStore::connect(store_settings)
                .await
                .map_err(anyhow::Error::msg)?,
        );
        let modules = ModuleCache::new(modules_dir(config_file));
        let state_path = state_file::default_path(config_file);
        let follower = Follower::new(store.clone(), layout.clone());
        let now = now();
        let own = watch::Sender::new(NodeStatus {
            node: node_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started: now.clone(),
            updated: now,
            applied_revision: 0,
            plugin_sha256: None,
            refused: None,
            connected: false,
            canary: None,
        });
        let node = Arc::new(Self {
            store,
            layout,
            node_id,
            modules,
            state_path,
            status_ttl: settings.status_ttl,
            own,
            shared_revision: watch::Sender::new(0),
            statuses: follower.statuses(),
            connection: follower.connection(),
            follower: Mutex::new(Some(follower)),
            metrics: FleetMetrics::default(),
            canary: watch::Sender::new(None),
        });
        let (overlay, from, changed_at) = match node.read_store(config_file, local).await {
            Ok((overlay, changed_at)) => {
                let revision = overlay.revision;
                (overlay, StartedFrom::Store(revision), changed_at)
            }
            Err(StartError::Unreachable(error)) => {
                let overlay = node.read_state_file(&error)?;
                tracing::warn!(%error, revision = overlay.revision, state_file = %node.state_path.display(),
                    "fleet store unreachable: starting from the state this node last applied");
                let revision = overlay.revision;
                (overlay, StartedFrom::StateFile(error.to_string()), revision)
            }
            Err(StartError::Other(error)) => return Err(error),
        };
        node.own.send_modify(|status| {
            status.applied_revision = overlay.revision;
            status.plugin_sha256 = overlay.plugin_sha256().map(str::to_string);
            status.connected = matches!(from, StartedFrom::Store(_));
        });
        node.shared_revision.send_replace(changed_at);
        node.canary.send_replace(overlay.state.canary.clone());
        node.metrics.applied_revision.set(overlay.revision);
        node.metrics.shared_revision.set(changed_at);
        Ok((node, overlay, from))
    }

    /// This node's fleet metrics, to register.
    pub fn metrics(&self) -> &FleetMetrics {
        &self.metrics
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The prefix the fleet's keys live under.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The store's endpoints, as messages name them.
    pub fn endpoints(&self) -> &str {
        self.store.endpoints()
    }

    /// This node's own status.
    pub fn own_status(&self) -> NodeStatus {
        self.own.borrow().clone()
    }

    /// The revision of the last change to the shared state this node saw.
    pub fn shared_revision(&self) -> i64 {
        *self.shared_revision.borrow()
    }

    /// Whether the store is reached now.
    pub fn connection(&self) -> Connection {
        self.connection.borrow().clone()
    }

    /// Every live node's status (its key exists: its lease is kept alive), by node id; a
    /// value that does not read is reported as the error text.
    pub fn statuses(&self) -> BTreeMap<String, Result<NodeStatus, String>> {
        decode_statuses(&self.statuses.borrow())
    }

    /// A receiver of the raw statuses, to wait on.
    pub(super) fn watch_statuses(&self) -> watch::Receiver<Statuses> {
        self.statuses.clone()
    }

    /// List the store; seed it from the node's file when it holds nothing of the fleet yet.
    /// The overlay, and the revision of the last change to the shared keys.
    async fn read_store(
        &self,
        config_file: &Path,
        local: &Config,
    ) -> Result<(Overlay, i64), StartError> {
        let root = self.layout.root();
        let mut snapshot = self.store.list(&root).await?;
        let is_shared = |key: &str| {
            matches!(
                self.layout.entry(key),
                Some(Entry::Backend(_) | Entry::Plugin | Entry::Settings(_) | Entry::Canary)
            )
        };
        if !snapshot.kvs.iter().any(|e| is_shared(&e.key)) {
            self.seed(config_file, local).await?;
            snapshot = self.store.list(&root).await?;
        }
        let shared: Vec<_> = snapshot
            .kvs
            .into_iter()
            .filter(|e| !matches!(self.layout.entry(&e.key), Some(Entry::Status(_)) | None))
            .collect();
        let changed_at = shared.iter().map(|e| e.mod_revision).max().unwrap_or(0);
        let kvs: Vec<(String, Vec<u8>)> = shared.into_iter().map(|e| (e.key, e.value)).collect();
        let overlay = self
            .overlay_for(snapshot.revision, &kvs)
            .await
            .map_err(|reason| {
                StartError::Other(anyhow::anyhow!(
                    "the fleet's state in etcd at revision {} cannot be applied: {reason}",
                    snapshot.revision
                ))
            })?;
        self.save_applied(overlay.revision, &kvs);
        Ok((overlay, changed_at))
    }

    /// Write the node's own backends, settings and plugin to an empty store, in one
    /// transaction that holds only if every key is still absent (two nodes starting together
    /// seed once).
    async fn seed(&self, config_file: &Path, local: &Config) -> Result<(), StartError> {
        let text = std::fs::read_to_string(config_file)
            .with_context(|| format!("cannot read {}", config_file.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not TOML", config_file.display()))?;
        let mut puts = SharedState::seed(&self.layout, &table)
            .map_err(|problem| anyhow::anyhow!("seeding the fleet store: {problem}"))?;
        if let Some(plugin) = &local.plugin {
            let bytes = std::fs::read(&plugin.path).with_context(|| {
                format!(
                    "seeding the fleet store: cannot read {}",
                    plugin.path.display()
                )
            })?;
            if bytes.len() > MAX_STORED_MODULE {
                return Err(StartError::Other(anyhow::anyhow!(
                    "seeding the fleet store: the plugin {} is {} bytes, more than etcd keeps in \
                     one value ({MAX_STORED_MODULE}); publish it by URL instead (POST \
                     /admin/fleet/plugin with a url)",
                    plugin.path.display(),
                    bytes.len()
                )));
            }
            let sha256 = sha256_hex(&bytes);
            let config = match serde_json::to_value(&plugin.config) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            let published = SharedPlugin {
                sha256: sha256.clone(),
                config,
                url: None,
            };
            puts.push((self.layout.module(&sha256), bytes));
            puts.push((
                self.layout.plugin(),
                serde_json::to_vec(&published).expect("a plugin key serialises"),
            ));
        }
        let mut txn = Txn::new();
        for (key, value) in puts {
            txn = txn.if_absent(key.clone()).put(key, value);
        }
        match self.store.commit(txn).await? {
            CommitOutcome::Committed { revision } => {
                tracing::info!(revision, prefix = %self.layout.root(),
                    "fleet store was empty: seeded it from this node's config file");
            }
            CommitOutcome::Conflict => {
                tracing::info!("another node seeded the fleet store first: using its state");
            }
        }
        Ok(())
    }

    /// The overlay a listing of the shared keys makes: decoded and checked, with the plugin
    /// module fetched and checked. The reason names the key when it is refused.
    pub(super) async fn overlay_for(
        &self,
        revision: i64,
        kvs: &[(String, Vec<u8>)],
    ) -> Result<Overlay, String> {
        let state = SharedState::decode(&self.layout, kvs).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let module = match &state.plugin {
            Some(plugin) => Some(self.module(plugin, kvs).await?),
            None => None,
        };
        let canary_module = match state
            .canary
            .as_ref()
            .filter(|c| c.state == FleetCanaryState::Running)
        {
            Some(canary) => Some(self.module(&SharedPlugin::from_canary(canary), kvs).await?),
            None => None,
        };
        Ok(Overlay {
            revision,
            state,
            module,
            canary_module,
        })
    }

    /// The node's checked copy of `plugin`'s module: kept already, in the listing, or fetched
    /// from its URL.
    async fn module(
        &self,
        plugin: &SharedPlugin,
        kvs: &[(String, Vec<u8>)],
    ) -> Result<PathBuf, String> {
        if let Some(path) = self.modules.get(&plugin.sha256) {
            return Ok(path);
        }
        let key = self.layout.module(&plugin.sha256);
        let plugin_key = self.layout.plugin();
        let bytes = match kvs.iter().find(|(k, _)| *k == key) {
            Some((_, bytes)) => bytes.clone(),
            None => match &plugin.url {
                Some(url) => super::fetch::fetch(url, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| format!("{plugin_key}: cannot fetch the module: {e}"))?,
                None => {
                    return Err(format!(
                        "{plugin_key}: module {} is neither in the store ({key}) nor at a url",
                        plugin.sha256
                    ));
                }
            },
        };
        self.modules
            .insert(&plugin.sha256, &bytes)
            .map_err(|e| format!("{plugin_key}: {e}"))
    }

    /// The overlay of the state file, for a start while the store is unreachable.
    fn read_state_file(&self, error: &StoreError) -> anyhow::Result<Overlay> {
        let Some(applied) =
            AppliedState::load(&self.state_path, &self.layout).map_err(anyhow::Error::msg)?
        else {
            bail!(
                "{error}; and this node has no fleet state file ({}) to start from: a node's \
                 first start needs the store",
                self.state_path.display()
            );
        };
        let mut kvs = applied.kvs();
        // The state file keeps no module bytes: the module of its plugin is the node's copy.
        // It stands in for the store's module key, so the plugin key reads as it did.
        let plugin_key = self.layout.plugin();
        let kept = kvs
            .iter()
            .find(|(key, _)| *key == plugin_key)
            .and_then(|(_, value)| serde_json::from_slice::<SharedPlugin>(value).ok())
            .filter(|plugin| self.modules.get(&plugin.sha256).is_some());
        if let Some(plugin) = kept {
            kvs.push((self.layout.module(&plugin.sha256), Vec::new()));
        }
        let state = SharedState::decode(&self.layout, &kvs).map_err(|problems| {
            anyhow::anyhow!(
                "fleet state file {}: {}",
                self.state_path.display(),
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        let module = match &state.plugin {
            Some(plugin) => Some(self.modules.get(&plugin.sha256).with_context(|| {
                format!(
                    "{error}; the state file names plugin module {}, which is not kept in {}",
                    plugin.sha256,
                    self.modules.path(&plugin.sha256).display()
                )
            })?),
            None => None,
        };
        Ok(Overlay {
            revision: applied.revision,
            // The state file keeps no canary: a node started without the store serves the
            // fleet's plugin alone until it can follow the canary again.
            state: SharedState {
                canary: None,
                ..state
            },
            module,
            canary_module: None,
        })
    }

    /// Keep what was applied at `revision` in the state file (a failure is logged: the node
    /// keeps serving, it only could not start from it while the store is down).
    pub(super) fn save_applied(&self, revision: i64, kvs: &[(String, Vec<u8>)]) {
        let applied = AppliedState::new(&self.layout, revision, now(), kvs);
        if let Err(error) = applied.save(&self.state_path) {
            tracing::error!(%error, "cannot keep the fleet state file; this node could not start \
                from it while the store is down");
        }
    }
}

/// Why a node could not read its start-up state from the store.
enum StartError {
    /// The store did not answer: start from the state file.
    Unreachable(StoreError),
    /// Anything else: no start.
    Other(anyhow::Error),
}

impl From<StoreError> for StartError {
    fn from(error: StoreError) -> Self {
        if error.is_unreachable() {
            StartError::Unreachable(error)
        } else {
            StartError::Other(anyhow::Error::msg(error))
        }
    }
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

/// The statuses by node id, each decoded.
pub fn decode_statuses(raw: &Statuses) -> BTreeMap<String, Result<NodeStatus, String>> {
    raw.iter()
        .map(|(node, value)| {
            let status = serde_json::from_slice::<NodeStatus>(value)
                .map_err(|e| format!("status of node {node:?} does not read: {e}"));
            (node.clone(), status)
        })
        .collect()
}

/// Where a node keeps its module copies: `<config stem>.fleet-modules/` beside the file.
fn modules_dir(config_file: &Path) -> PathBuf {
    let stem = config_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lbx".into());
    config_file.with_file_name(format!("{stem}.fleet-modules"))
}

/// Now, RFC 3339.
pub(super) fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
