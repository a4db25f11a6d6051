//! The admin API's changes in fleet mode: each is one guarded transaction on the store, never
//! a change of this node alone. A change is checked the way every node will check it before
//! it is written; it is guarded on the revision of what it read (compare-and-swap), so two
//! operators editing the same backend cannot overwrite each other unseen: with `If-Match:
//! <revision>` a change to anything read later is a 412, without it lbx reads again and
//! retries a few times. The answer is the commit revision; `wait_applied` then waits until
//! every live node reports that revision applied (or refused).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::canary::{FleetCanaryState, SharedCanary};
use super::layout::MAX_STORED_MODULE;
use super::modules::sha256_hex;
use super::node::FleetNode;
use super::node::now;
use super::shared::{SharedPlugin, SharedState};
use super::status::NodeStatus;
use super::store::{CommitOutcome, Entry, Revision, Store, StoreError, Txn};
use crate::config::{BackendConfig, BackendSpec, HealthSettings, Problem};
use crate::runtime_backends::Patch;

/// How often a change whose guard failed is read and tried again (without `If-Match`).
const ATTEMPTS: usize = 5;

/// Why a fleet change was not made. Nothing was written in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The store is unreachable (503): nothing changed anywhere.
    #[error("{0}")]
    Unreachable(String),
    /// No backend has this id (404).
    #[error("no backend with id {0:?} in the fleet")]
    NotFound(String),
    /// There is nothing of that name to change (404).
    #[error("{0}")]
    Missing(String),
    /// The id is taken (409).
    #[error("backend {0:?} already exists in the fleet")]
    Exists(String),
    /// `If-Match` named a revision older than the key's last change (412).
    #[error("{key} changed at revision {changed}, after revision {read} named in If-Match")]
    Precondition {
        /// The key.
        key: String,
        /// Its last change.
        changed: Revision,
        /// The revision the client read.
        read: Revision,
    },
    /// The change is invalid; each problem names its field (422).
    #[error("invalid change")]
    Invalid(Vec<Problem>),
    /// The store refused or kept changing under us (409).
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        if error.is_unreachable() {
            WriteError::Unreachable(format!(
                "{error}; nothing was changed (the fleet's state lives in etcd: a change made on \
                 one node only would be lost)"
            ))
        } else {
            WriteError::Failed(error.to_string())
        }
    }
}

/// What every live node reported for a revision.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Each node's status when the wait ended.
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Nodes that have not applied the revision (still behind, or refused it).
    pub pending: Vec<String>,
    /// Nodes that refused it, with why.
    pub refused: BTreeMap<String, String>,
}

impl FleetNode {
    /// `POST /admin/backends` in fleet mode: add `backend` (drained if `drain`). Its commit
    /// revision.
    pub async fn add_backend(
        &self,
        backend: BackendConfig,
        drain: bool,
    ) -> Result<(String, Revision), WriteError> {
        let spec = BackendSpec::resolve(&backend, &HealthSettings::default(), "")
            .map_err(WriteError::Invalid)?;
        let id = spec.id;
        let key = self.layout.backend(&id);
        let mut table = to_table(&BackendConfig {
            id: Some(id.clone()),
            ..backend
        });
        if drain {
            table.insert("drain".into(), Value::Bool(true));
        }
        let value = self.checked(&key, &table)?;
        let txn = Txn::new().if_absent(key.clone()).put(key, value);
        match self.commit(txn).await? {
            CommitOutcome::Committed { revision } => Ok((id, revision)),
            CommitOutcome::Conflict => Err(WriteError::Exists(id)),
        }
    }

    /// `PATCH /admin/backends/{id}` in fleet mode: weight, labels, drain.
    pub async fn patch_backend(
        &self,
        id: &str,
        patch: &Patch,
        if_match: Option<Revision>,
    ) -> Result<Revision, WriteError> {
        let problems = patch.problems();
        if !problems.is_empty() {
            return Err(WriteError::Invalid(problems));
        }
        let key = self.layout.backend(id);
        self.read_modify_write(&key, id, if_match, |table| {
            if let Some(weight) = patch.weight {
                table.insert("weight".into(), weight.into());
            }
            if let Some(labels) = &patch.labels {
                table.insert(
                    "labels".into(),
                    serde_json::to_value(labels).unwrap_or_default(),
                );
            }
            match patch.drain {
                Some(true) => {
                    table.insert("drain".into(), Value::Bool(true));
                }
                Some(false) => {
                    table.remove("drain");
                }
                None => {}
            }
            true
        })
        .await
    }

    /// `DELETE /admin/backends/{id}` in fleet mode. Each node lets the requests already routed
    /// to it finish.
    pub async fn remove_backend(
        &self,
        id: &str,
        if_match: Option<Revision>,
    ) -> Result<Revision, WriteError> {
        let key = self.layout.backend(id);
        self.read_modify_write(&key, id, if_match, |_| false).await
    }

    /// Publish a plugin: its module (kept in the store when small enough, else fetched from
    /// `url` by every node) and its `config`, in one transaction. Every node checks the bytes
    /// against the sha256 and reports if it cannot load it.
    pub async fn publish_plugin(
        &self,
        module: Option<&[u8]>,
        sha256: Option<String>,
        url: Option<String>,
        config: Map<String, Value>,
    ) -> Result<(String, Revision), WriteError> {
        let invalid = |key: &str, message: String| {
            WriteError::Invalid(vec![Problem {
                key: key.into(),
                message,
            }])
        };
        let sha256 = match (module, sha256) {
            (Some(bytes), Some(claimed)) if sha256_hex(bytes) != claimed => {
                return Err(invalid(
                    "sha256",
                    format!(
                        "the module's sha256 is {}, not {claimed}",
                        sha256_hex(bytes)
                    ),
                ));
            }
            (Some(bytes), _) => sha256_hex(bytes),
            (None, Some(claimed)) => claimed,
            (None, None) => return Err(invalid("sha256", "give the module or its sha256".into())),
        };
        if module.is_some_and(|bytes| bytes.len() > MAX_STORED_MODULE) {
            return Err(invalid(
                "module",
                format!(
                    "{} bytes is more than etcd keeps in one value ({MAX_STORED_MODULE}): serve \
                     the module over HTTP and publish its url and sha256",
                    module.map_or(0, <[u8]>::len)
                ),
            ));
        }
        if module.is_none() && url.is_none() {
            return Err(invalid(
                "url",
                "give the module's bytes or a url to fetch it from".into(),
            ));
        }
        let plugin = SharedPlugin {
            sha256: sha256.clone(),
            config,
            url: if module.is_some() { None } else { url },
        };
        let value = serde_json::to_vec(&plugin).expect("a plugin key serialises");
        let mut txn = Txn::new().put(self.layout.plugin(), value);
        if let Some(bytes) = module {
            txn = txn.put(self.layout.module(&sha256), bytes.to_vec());
        }
        match self.commit(txn).await? {
            CommitOutcome::Committed { revision } => Ok((sha256, revision)),
            CommitOutcome::Conflict => Err(WriteError::Failed("unguarded write conflicted".into())),
        }
    }

    /// `POST /admin/fleet/modules`: keep a module in the store under its sha256 (for a canary
    /// or a later plugin), without putting it in force anywhere.
    pub async fn store_module(&self, bytes: &[u8]) -> Result<(String, Revision), WriteError> {
        if bytes.len() > MAX_STORED_MODULE {
            return Err(WriteError::Invalid(vec![Problem {
                key: "module".into(),
                message: format!(
                    "{} bytes is more than etcd keeps in one value ({MAX_STORED_MODULE}): serve \
                     the module over HTTP and give its url and sha256",
                    bytes.len()
                ),
            }]));
        }
        let sha256 = sha256_hex(bytes);
        let txn = Txn::new().put(self.layout.module(&sha256), bytes.to_vec());
        match self.commit(txn).await? {
            CommitOutcome::Committed { revision } => Ok((sha256, revision)),
            CommitOutcome::Conflict => Err(WriteError::Failed("unguarded write conflicted".into())),
        }
    }

    /// `POST /admin/fleet/canary`: start `canary` on every node (its id, step, start time and
    /// state are set here). 409 while another fleet canary runs.
    pub async fn start_fleet_canary(
        &self,
        mut canary: SharedCanary,
    ) -> Result<(String, Revision), WriteError> {
        let key = self.layout.canary();
        let current = self.read(&key).await?;
        if let Some(entry) = &current
            && let Ok(running) = serde_json::from_slice::<SharedCanary>(&entry.value)
            && running.state == FleetCanaryState::Running
        {
            return Err(WriteError::Failed(format!(
                "fleet canary {} is running: promote or abort it first",
                running.id
            )));
        }
        let started = now();
        canary.id = format!(
            "{}-{}",
            &canary.sha256[..canary.sha256.len().min(12)],
            started.replace([':', '.'], "")
        );
        canary.step = 0;
        canary.step_started = started;
        canary.state = FleetCanaryState::Running;
        canary.detail = None;
        let value = serde_json::to_vec(&canary).expect("a canary serialises");
        let mut kvs = vec![(key.clone(), value.clone())];
        // Checked as every node will check it: the module must be in the store or at a url.
        let module_key = self.layout.module(&canary.sha256);
        if canary.url.is_none() && self.read(&module_key).await?.is_some() {
            kvs.push((module_key, Vec::new()));
        }
        SharedState::decode(&self.layout, &kvs).map_err(|problems| {
            WriteError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        key: "canary".into(),
                        message: p.message,
                    })
                    .collect(),
            )
        })?;
        let txn = match &current {
            Some(entry) => Txn::new().if_unchanged(key.clone(), entry.mod_revision),
            None => Txn::new().if_absent(key.clone()),
        };
        match self.commit(txn.put(key, value)).await? {
            CommitOutcome::Committed { revision } => Ok((canary.id, revision)),
            CommitOutcome::Conflict => Err(WriteError::Failed(
                "another fleet canary was started meanwhile".into(),
            )),
        }
    }

    /// `POST /admin/fleet/canary/promote` (`promote`) or `…/abort`: end the running fleet
    /// canary on every node; a promotion makes its candidate the fleet's plugin.
    pub async fn end_fleet_canary(&self, promote: bool) -> Result<Revision, WriteError> {
        let key = self.layout.canary();
        let running = self
            .read(&key)
            .await?
            .and_then(|entry| serde_json::from_slice::<SharedCanary>(&entry.value).ok())
            .filter(|canary| canary.state == FleetCanaryState::Running)
            .ok_or_else(|| WriteError::Missing("no fleet canary is running".into()))?;
        let next = SharedCanary {
            state: if promote {
                FleetCanaryState::Promoted
            } else {
                FleetCanaryState::Aborted
            },
            detail: Some(if promote {
                format!(
                    "promoted by the operator at {}%",
                    running.steps[running.step]
                )
            } else {
                format!(
                    "aborted by the operator at {}%",
                    running.steps[running.step]
                )
            }),
            ..running.clone()
        };
        self.move_canary(&running.id, running.step, next)
            .await
            .map_err(WriteError::Failed)?
            .ok_or_else(|| WriteError::Failed("the canary moved meanwhile; look again".into()))
    }

    /// `PUT /admin/fleet/settings/{section}`: the fleet-wide `[health]`, `[outlier]`,
    /// `[retry]` or `[timeouts]`, as the config file writes it (in JSON).
    pub async fn put_settings(
        &self,
        section: &str,
        value: &Value,
        if_match: Option<Revision>,
    ) -> Result<Revision, WriteError> {
        let key = self.settings_key(section)?;
        let value = serde_json::to_vec(value).expect("JSON serialises");
        SharedState::decode(&self.layout, &[(key.clone(), value.clone())]).map_err(|problems| {
            WriteError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        key: section.to_string(),
                        message: p.message,
                    })
                    .collect(),
            )
        })?;
        let mut txn = Txn::new();
        if let Some(read) = if_match {
            match self.read(&key).await? {
                Some(entry) if entry.mod_revision > read => {
                    return Err(WriteError::Precondition {
                        key,
                        changed: entry.mod_revision,
                        read,
                    });
                }
                Some(entry) => txn = txn.if_unchanged(key.clone(), entry.mod_revision),
                None => txn = txn.if_absent(key.clone()),
            }
        }
        match self.commit(txn.put(key.clone(), value)).await? {
            CommitOutcome::Committed { revision } => Ok(revision),
            CommitOutcome::Conflict => Err(WriteError::Precondition {
                key,
                changed: 0,
                read: if_match.unwrap_or_default(),
            }),
        }
    }

    /// `DELETE /admin/fleet/settings/{section}`: each node goes back to its own file's.
    pub async fn delete_settings(&self, section: &str) -> Result<Revision, WriteError> {
        let key = self.settings_key(section)?;
        match self.commit(Txn::new().delete(key)).await? {
            CommitOutcome::Committed { revision } => Ok(revision),
            CommitOutcome::Conflict => Err(WriteError::Failed("unguarded write conflicted".into())),
        }
    }

    fn settings_key(&self, section: &str) -> Result<String, WriteError> {
        if super::layout::SETTINGS_SECTIONS.contains(&section) {
            Ok(self.layout.settings(section))
        } else {
            Err(WriteError::Invalid(vec![Problem {
                key: "section".into(),
                message: format!(
                    "{section:?} is not a fleet-wide section; these are: {}",
                    super::layout::SETTINGS_SECTIONS.join(", ")
                ),
            }]))
        }
    }

    /// Wait until every live node applied `revision` or refused it, at most `timeout`.
    pub async fn wait_applied(&self, revision: Revision, timeout: Duration) -> Applied {
        let mut statuses = self.watch_statuses();
        let mut own = self.own.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            statuses.borrow_and_update();
            own.borrow_and_update();
            let applied = self.applied(revision);
            // Done when every node applied it or refused it (a refusal will not change).
            if applied.pending.len() == applied.refused.len() {
                return applied;
            }
            let changed = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    changed = statuses.changed() => changed.is_ok(),
                    changed = own.changed() => changed.is_ok(),
                }
            })
            .await;
            if !matches!(changed, Ok(true)) {
                return self.applied(revision);
            }
        }
    }

    fn applied(&self, revision: Revision) -> Applied {
        let mut result = Applied {
            nodes: BTreeMap::new(),
            pending: Vec::new(),
            refused: BTreeMap::new(),
        };
        // This node by what it knows of itself (its status key may not be written yet, or
        // lag), every other live node by its status key.
        let mut statuses = self.statuses();
        statuses.insert(self.node_id.clone(), Ok(self.own_status()));
        for (node, status) in statuses {
            let Ok(status) = status else {
                result.pending.push(node);
                continue;
            };
            if status.applied_revision < revision {
                result.pending.push(node.clone());
                if let Some(refusal) = status.refused.as_ref().filter(|r| r.revision >= revision) {
                    result.refused.insert(node.clone(), refusal.reason.clone());
                }
            }
            result.nodes.insert(node, status);
        }
        result
    }

    /// Read `key`, change its table with `change` (false: delete it), write it back guarded on
    /// what was read.
    async fn read_modify_write(
        &self,
        key: &str,
        id: &str,
        if_match: Option<Revision>,
        change: impl Fn(&mut Map<String, Value>) -> bool,
    ) -> Result<Revision, WriteError> {
        for _ in 0..ATTEMPTS {
            let Some(entry) = self.read(key).await? else {
                return Err(WriteError::NotFound(id.to_string()));
            };
            if let Some(read) = if_match
                && entry.mod_revision > read
            {
                return Err(WriteError::Precondition {
                    key: key.to_string(),
                    changed: entry.mod_revision,
                    read,
                });
            }
            let mut table: Map<String, Value> = serde_json::from_slice(&entry.value)
                .map_err(|e| WriteError::Failed(format!("{key} does not read as JSON: {e}")))?;
            let txn = Txn::new().if_unchanged(key, entry.mod_revision);
            let txn = if change(&mut table) {
                let value = self.checked(key, &table)?;
                txn.put(key, value)
            } else {
                txn.delete(key)
            };
            match self.commit(txn).await? {
                CommitOutcome::Committed { revision } => return Ok(revision),
                CommitOutcome::Conflict if if_match.is_some() => {
                    let changed = self.read(key).await?.map_or(0, |e| e.mod_revision);
                    return Err(WriteError::Precondition {
                        key: key.to_string(),
                        changed,
                        read: if_match.unwrap_or_default(),
                    });
                }
                CommitOutcome::Conflict => continue,
            }
        }
        Err(WriteError::Failed(format!(
            "{key} kept changing under this change ({ATTEMPTS} attempts); try again"
        )))
    }

    /// Commit `txn`. A store that does not answer may still have applied it (the answer was
    /// lost): the error says so, since the change is then on every node or on none.
    async fn commit(&self, txn: Txn) -> Result<CommitOutcome, WriteError> {
        self.store.commit(txn).await.map_err(|error| {
            if error.is_unreachable() {
                WriteError::Unreachable(format!(
                    "{error}; the store did not confirm the change: it is in force on every \
                     node or on none — read it back (GET) before trying again"
                ))
            } else {
                WriteError::Failed(error.to_string())
            }
        })
    }

    /// The value of exactly `key`, with its last change's revision.
    async fn read(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let snapshot = self.store.list(key).await?;
        Ok(snapshot.kvs.into_iter().find(|e| e.key == key))
    }

    /// `table` as the value of `key`, checked as every node will check it.
    fn checked(&self, key: &str, table: &Map<String, Value>) -> Result<Vec<u8>, WriteError> {
        let value = serde_json::to_vec(table).expect("JSON serialises");
        SharedState::decode(&self.layout, &[(key.to_string(), value.clone())]).map_err(
            |problems| {
                WriteError::Invalid(
                    problems
                        .into_iter()
                        .map(|p| Problem {
                            key: p.message.split(':').next().unwrap_or("").trim().to_string(),
                            message: p.message,
                        })
                        .collect(),
                )
            },
        )?;
        Ok(value)
    }
}

fn to_table(backend: &BackendConfig) -> Map<String, Value> {
    match serde_json::to_value(backend) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}
