//! Backends changed at runtime: the admin API adds, drains, re-weights and removes backends;
//! a config reload brings a new file; service discovery brings each name's latest answer
//! ([`discovered`] has how it merges). All end here, as one merged list of specs put in force
//! with one store ([`Upstreams::publish`]), and the API's changes are kept in the state file so
//! that a reload or a restart re-applies them ([`changes`] has the merge rule).
//!
//! Changes are serialised by one lock. Each is built and written to the state file before it
//! is put in force: a change that cannot be kept (the disk refused the write) is refused whole.
//! A removal first drains the backend (no new requests) and takes it out of the set once its
//! in-flight requests are done, or its timeout passes; requests already routed to it finish,
//! since they hold the set they started with.

pub mod changes;
pub mod discovered;
pub mod state_file;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::{BackendConfig, BackendSpec, HealthSettings, Problem};
use crate::history::ReloadHistory;
use crate::upstream::{BackendSet, PoolSettings, Upstreams};
pub use changes::{ChangeError, Outcome, Patch, Posted, RuntimeChanges, Source};
pub use discovered::Diff;

/// How often a removal checks whether the drained backend's last request is done.
const REMOVAL_POLL: Duration = Duration::from_millis(20);

/// Why an admin API change was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No backend has this id.
    NotFound(String),
    /// The change conflicts with the set in force; the text says how.
    Conflict(String),
    /// The input is invalid; each problem names its field.
    Invalid(Vec<Problem>),
    /// lbx could not keep the change (state file) or build it; nothing was changed.
    Failed(String),
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NotFound(_) => ApiError::NotFound(error.to_string()),
            ChangeError::Conflict(text) => ApiError::Conflict(text),
        }
    }
}

/// What the admin API shows about each backend beyond the backend set itself.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    /// Where each backend comes from.
    pub sources: HashMap<String, Source>,
    /// Backends being removed (drained, leaving once idle).
    pub removing: HashSet<String>,
    /// For each backend found by service discovery, the name that found it.
    pub discovered: HashMap<String, String>,
}

/// The backend set's owner for changes made while running.
#[derive(Debug)]
pub struct BackendManager {
    upstreams: Arc<Upstreams>,
    state_file: Option<PathBuf>,
    history: Arc<ReloadHistory>,
    roles: ArcSwap<Roles>,
    inner: tokio::sync::Mutex<Inner>,
    /// Whether the operator was told that changes are not kept (no state file).
    warned_unkept: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Inner {
    /// The config file's backends in force.
    file: Vec<BackendConfig>,
    /// The config file's `[health]`, for backends added through the API.
    health_defaults: HealthSettings,
    changes: RuntimeChanges,
    /// Backends removed through the API, or gone from a discovered name's answer, that still
    /// finish requests.
    removing: Vec<BackendSpec>,
    /// What each discovered name contributes.
    discovered: discovered::Contributions,
    /// Of `removing`, the ones a discovered name contributed, with that name.
    leaving_discovered: HashMap<String, String>,
    /// In fleet mode, the backends an operator drained fleet-wide (the store says so; the
    /// API's own changes are not used there).
    fleet_drained: HashSet<String>,
}

/// A set built from a change, not yet in force.
struct Prepared {
    set: Arc<BackendSet>,
    drained: HashSet<String>,
    roles: Roles,
    changes: RuntimeChanges,
    cleared: Vec<String>,
}

impl BackendManager {
    /// The first backend set: the config file's backends merged with the state file's
    /// changes. A state file that cannot be read is an error (lbx must not start with a set
    /// other than the one its operator built).
    pub fn start(
        file: Vec<BackendConfig>,
        health_defaults: HealthSettings,
        pool_settings: PoolSettings,
        state_file: Option<PathBuf>,
        history: Arc<ReloadHistory>,
    ) -> anyhow::Result<Self> {
        let changes = match &state_file {
            Some(path) => state_file::load(path).map_err(anyhow::Error::msg)?,
            None => RuntimeChanges::new(),
        };
        let inner = Inner {
            file,
            health_defaults,
            changes: RuntimeChanges::new(),
            removing: Vec::new(),
            discovered: discovered::Contributions::new(),
            leaving_discovered: HashMap::new(),
            fleet_drained: HashSet::new(),
        };
        let (specs, drained, roles, merged) = resolve(&inner, &changes)
            .map_err(|e| anyhow::anyhow!("backends from the state file: {}", describe(&e)))?;
        let upstreams = Arc::new(Upstreams::new(&specs, pool_settings)?);
        for backend in &upstreams.snapshot().backends {
            backend
                .stats
                .set_draining(drained.contains(&backend.spec.id));
        }
        for note in &merged.cleared {
            tracing::warn!(state_file = ?state_file, "{note}");
        }
        if !merged.changes.is_empty() {
            tracing::info!(
                added = merged.changes.added.len(),
                changed = merged.changes.overrides.len(),
                removed = merged.changes.removed.len(),
                "runtime backend changes re-applied from the state file"
            );
        }
        // What the file overruled is gone from the state file too.
        if let Some(path) = &state_file
            && merged.changes != changes
        {
            state_file::save(path, &merged.changes).map_err(anyhow::Error::msg)?;
        }
        Ok(Self {
            upstreams,
            state_file,
            history,
            roles: ArcSwap::from_pointee(roles),
            inner: tokio::sync::Mutex::new(Inner {
                changes: merged.changes,
                ..inner
            }),
            warned_unkept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The backend table.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// Sources and removals of the backends in force.
    pub fn roles(&self) -> Arc<Roles> {
        self.roles.load_full()
    }

    /// Where changes are kept, if anywhere.
    pub fn state_file(&self) -> Option<&PathBuf> {
        self.state_file.as_ref()
    }

    /// Add a backend, or bring back a file backend the API removed (`POST /admin/backends`;
    /// [`changes`] has the rule). Answers with the id and what was done, once it is in force.
    pub async fn add(&self, posted: Posted) -> Result<(String, Outcome), ApiError> {
        // The input's own problems first, with bare field names.
        let spec = BackendSpec::resolve(&posted.backend, &HealthSettings::default(), "")
            .map_err(ApiError::Invalid)?;
        let id = spec.id;
        let mut inner = self.inner.lock().await;
        if inner.removing.iter().any(|r| r.id == id) {
            return Err(ApiError::Conflict(format!(
                "backend {id:?} is being removed; add it again once it is gone (or remove it at \
                 once with ?now=true)"
            )));
        }
        let set = self.upstreams.snapshot();
        let taken: Vec<&str> = set.backends.iter().map(|b| b.spec.id.as_str()).collect();
        let mut changes = inner.changes.clone();
        let outcome = changes.add(posted, &taken, &inner.file)?;
        let prepared = self.prepare(&inner, &changes)?;
        // A 201 must mean the backend serves: refuse a change the merge would overrule.
        if !prepared.roles.sources.contains_key(&id) {
            return Err(ApiError::Failed(format!(
                "backend {id:?} would not be in force after this change ({}); nothing was changed",
                prepared.cleared.join("; ")
            )));
        }
        self.commit(&mut inner, prepared)?;
        self.note(match outcome {
            Outcome::Added => format!("added {id}"),
            Outcome::Restored => format!("restored {id}: the config file's entry is back"),
        });
        Ok((id, outcome))
    }

    /// Change a backend's weight, labels or drain state (`PATCH /admin/backends/{id}`).
    pub async fn patch(&self, id: &str, patch: &Patch) -> Result<(), ApiError> {
        let problems = patch.problems();
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems));
        }
        let mut inner = self.inner.lock().await;
        if inner.removing.iter().any(|r| r.id == id) {
            return Err(ApiError::Conflict(format!(
                "backend {id:?} is being removed"
            )));
        }
        self.refuse_discovered(id)?;
        let mut changes = inner.changes.clone();
        changes.patch(id, patch, &inner.file)?;
        let prepared = self.prepare(&inner, &changes)?;
        self.commit(&mut inner, prepared)?;
        let mut what = Vec::new();
        if let Some(drain) = patch.drain {
            what.push(if drain { "drained" } else { "undrained" }.to_string());
        }
        if let Some(weight) = patch.weight {
            what.push(format!("weight {weight}"));
        }
        if patch.labels.is_some() {
            what.push("labels".into());
        }
        self.note(format!("{id}: {}", what.join(", ")));
        Ok(())
    }

    /// Remove a backend (`DELETE /admin/backends/{id}`): drained now, taken out of the set when
    /// its in-flight requests are done or `timeout` passes — or at once with `now`.
    pub async fn remove(
        self: &Arc<Self>,
        id: &str,
        now: bool,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        if inner.removing.iter().any(|r| r.id == id) && !now {
            return Ok(()); // already on its way out
        }
        let set = self.upstreams.snapshot();
        let Some(backend) = set.backends.iter().find(|b| b.spec.id == id) else {
            return Err(ApiError::NotFound(format!("no backend with id {id:?}")));
        };
        if !inner.removing.iter().any(|r| r.id == id) {
            self.refuse_discovered(id)?;
        }
        let staying = set
            .backends
            .iter()
            .filter(|b| b.spec.id != id && !inner.removing.iter().any(|r| r.id == b.spec.id))
            .count();
        if staying == 0 {
            return Err(ApiError::Conflict(format!(
                "{id:?} is the last backend; add another before removing it (or drain it)"
            )));
        }
        let mut changes = inner.changes.clone();
        if !inner.removing.iter().any(|r| r.id == id) {
            changes.remove(id, &inner.file)?;
        }
        let stats = backend.stats.clone();
        inner.removing.retain(|r| r.id != id);
        if !now {
            inner.removing.push(backend.spec.clone());
        }
        let prepared = self.prepare(&inner, &changes);
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                inner.removing.retain(|r| r.id != id);
                return Err(e);
            }
        };
        if let Err(e) = self.commit(&mut inner, prepared) {
            inner.removing.retain(|r| r.id != id);
            return Err(e);
        }
        drop(inner);
        if now {
            self.note(format!("removed {id}"));
            return Ok(());
        }
        self.note(format!("removing {id}: drained, leaving once idle"));
        self.remove_once_idle(id.to_string(), stats, timeout);
        Ok(())
    }

    /// Take `id` (drained, in `removing`) out of the set once its in-flight requests are done
    /// or `timeout` passes.
    fn remove_once_idle(
        self: &Arc<Self>,
        id: String,
        stats: Arc<crate::upstream::LiveStats>,
        timeout: Duration,
    ) {
        let manager = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            while stats.in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(REMOVAL_POLL).await;
            }
            manager.finish_removal(&id, stats.in_flight()).await;
        });
    }

    /// A backend found by service discovery follows its DNS answer: the API cannot change it.
    fn refuse_discovered(&self, id: &str) -> Result<(), ApiError> {
        match self.roles().discovered.get(id) {
            Some(name) => Err(ApiError::Conflict(format!(
                "backend {id:?} was found in DNS ([[discovery.dns]] name {name:?}) and follows \
                 its answer: change the DNS records or the discovery settings instead"
            ))),
            None => Ok(()),
        }
    }

    /// Put `next` in force as everything the discovered `name` contributes (empty: nothing, as
    /// when its `[[discovery.dns]]` is gone). Only what differs from its last answer changes
    /// ([`discovered`]); backends gone from it are drained and removed once idle or after
    /// `removal_timeout`. Refused, keeping the last answer, when it would leave lbx with no
    /// backend at all.
    pub async fn set_discovered(
        self: &Arc<Self>,
        name: &str,
        next: Vec<BackendConfig>,
        removal_timeout: Duration,
    ) -> Result<Diff, String> {
        let mut inner = self.inner.lock().await;
        let last = inner.discovered.get(name).cloned().unwrap_or_default();
        let diff = discovered::diff(&last, &next);
        if diff.is_empty() {
            return Ok(diff);
        }
        let set = self.upstreams.snapshot();
        let roles = self.roles();
        let mut leaving = Vec::new();
        for id in &diff.gone {
            // Only what this name put in force leaves (an id the file owns stays).
            if roles.discovered.get(id).map(String::as_str) != Some(name) {
                continue;
            }
            if let Some(backend) = set.backends.iter().find(|b| &b.spec.id == id) {
                leaving.push((backend.spec.clone(), backend.stats.clone()));
            }
        }
        let before = (inner.removing.clone(), inner.leaving_discovered.clone());
        // An id back in the answer while still leaving stays: it is no longer removed.
        inner.removing.retain(|r| !diff.added.contains(&r.id));
        for (spec, _) in &leaving {
            inner.removing.retain(|r| r.id != spec.id);
            inner
                .leaving_discovered
                .insert(spec.id.clone(), name.to_string());
            inner.removing.push(spec.clone());
        }
        let previous = if next.is_empty() {
            inner.discovered.remove(name)
        } else {
            inner.discovered.insert(name.to_string(), next)
        };
        let changes = inner.changes.clone();
        let result = self.prepare(&inner, &changes).and_then(|prepared| {
            let staying = prepared.roles.sources.len() - prepared.roles.removing.len();
            if staying == 0 {
                return Err(ApiError::Conflict(format!(
                    "DNS name {name:?}: this change would leave lbx with no backend; its last \
                     answer stays in force"
                )));
            }
            for id in &diff.added {
                if prepared.roles.discovered.get(id).map(String::as_str) != Some(name) {
                    tracing::warn!(
                        discovery = name,
                        backend = %id,
                        "a backend found in DNS has the id of a backend already in force (from \
                         the config file, the admin API or another name); that one is kept"
                    );
                }
            }
            self.commit(&mut inner, prepared)
        });
        if let Err(e) = result {
            (inner.removing, inner.leaving_discovered) = before;
            match previous {
                Some(previous) => inner.discovered.insert(name.to_string(), previous),
                None => inner.discovered.remove(name),
            };
            return Err(describe(&e));
        }
        drop(inner);
        self.history
            .record("backends", true, format!("dns {name}: {}", diff.describe()));
        for (spec, stats) in leaving {
            self.remove_once_idle(spec.id, stats, removal_timeout);
        }
        Ok(diff)
    }

    async fn finish_removal(&self, id: &str, in_flight: u32) {
        let mut inner = self.inner.lock().await;
        if !inner.removing.iter().any(|r| r.id == id) {
            return; // removed at once meanwhile
        }
        inner.removing.retain(|r| r.id != id);
        inner.leaving_discovered.remove(id);
        let changes = inner.changes.clone();
        let result = self
            .prepare(&inner, &changes)
            .and_then(|prepared| self.commit(&mut inner, prepared));
        match result {
            Ok(()) if in_flight == 0 => self.note(format!("removed {id}")),
            Ok(()) => self.note(format!(
                "removed {id} after its timeout, with {in_flight} request(s) still finishing"
            )),
            Err(e) => tracing::error!(backend = id, error = %describe(&e), "cannot remove backend"),
        }
    }

    /// Hold the set for a config reload: build the new file's backends merged with the runtime
    /// changes, let the caller try its plugin on them, then commit or drop. `fleet_drained` is
    /// what the fleet drained (empty outside fleet mode).
    pub async fn reconfigure(
        &self,
        file: Vec<BackendConfig>,
        health_defaults: HealthSettings,
        fleet_drained: HashSet<String>,
    ) -> Result<Reconfiguration<'_>, String> {
        let mut inner = self.inner.lock().await;
        let previous = Previous {
            file: std::mem::replace(&mut inner.file, file),
            health_defaults: std::mem::replace(&mut inner.health_defaults, health_defaults),
            fleet_drained: std::mem::replace(&mut inner.fleet_drained, fleet_drained),
        };
        let changes = inner.changes.clone();
        match self.prepare(&inner, &changes) {
            Ok(prepared) => Ok(Reconfiguration {
                manager: self,
                inner,
                prepared: Some(prepared),
                previous: Some(previous),
            }),
            Err(e) => {
                previous.restore(&mut inner);
                Err(describe(&e))
            }
        }
    }

    /// The backends the fleet drained, as in force.
    pub async fn fleet_drained(&self) -> HashSet<String> {
        self.inner.lock().await.fleet_drained.clone()
    }

    fn prepare(&self, inner: &Inner, changes: &RuntimeChanges) -> Result<Prepared, ApiError> {
        let (specs, drained, roles, merged) = resolve(inner, changes)?;
        let set = self.upstreams.prepare(&specs).map_err(|e| {
            ApiError::Invalid(vec![Problem {
                key: e.field.into(),
                message: e.message,
            }])
        })?;
        Ok(Prepared {
            set: Arc::new(set),
            drained,
            roles,
            changes: merged.changes,
            cleared: merged.cleared,
        })
    }

    /// Keep the changes (state file), then put the set in force.
    fn commit(&self, inner: &mut Inner, prepared: Prepared) -> Result<(), ApiError> {
        if prepared.changes != inner.changes {
            self.persist(&prepared.changes)
                .map_err(|e| ApiError::Failed(e.to_string()))?;
        }
        for note in &prepared.cleared {
            tracing::warn!("{note}");
        }
        inner.changes = prepared.changes;
        // Stats are shared with the set in force, so a drain takes effect at once.
        for backend in &prepared.set.backends {
            backend
                .stats
                .set_draining(prepared.drained.contains(&backend.spec.id));
        }
        self.roles.store(Arc::new(prepared.roles));
        self.upstreams.publish(prepared.set);
        Ok(())
    }

    fn persist(&self, changes: &RuntimeChanges) -> anyhow::Result<()> {
        match &self.state_file {
            Some(path) => state_file::save(path, changes).map_err(anyhow::Error::msg),
            None => Ok(()),
        }
    }

    fn note(&self, detail: String) {
        tracing::info!(change = %detail, "backend set changed through the admin API");
        if self.state_file.is_none()
            && !self
                .warned_unkept
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "admin API backend changes are not kept across restarts: lbx runs without a \
                 config file or [admin] state_file"
            );
        }
        self.history.record("backends", true, detail);
    }
}

/// A config reload's new backend set, built and holding the lock until committed or dropped
/// (dropping it keeps the file's backends that were in force).
pub struct Reconfiguration<'a> {
    manager: &'a BackendManager,
    inner: tokio::sync::MutexGuard<'a, Inner>,
    prepared: Option<Prepared>,
    /// What was in force before, restored unless committed.
    previous: Option<Previous>,
}

/// The inputs a reconfiguration replaced.
struct Previous {
    file: Vec<BackendConfig>,
    health_defaults: HealthSettings,
    fleet_drained: HashSet<String>,
}

impl Previous {
    fn restore(self, inner: &mut Inner) {
        inner.file = self.file;
        inner.health_defaults = self.health_defaults;
        inner.fleet_drained = self.fleet_drained;
    }
}

impl std::fmt::Debug for Reconfiguration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconfiguration")
            .field("backends", &self.prepared.as_ref().map(|p| p.set.len()))
            .finish()
    }
}

impl Reconfiguration<'_> {
    /// The set that would be put in force.
    pub fn set(&self) -> Arc<BackendSet> {
        self.prepared
            .as_ref()
            .expect("prepared until committed")
            .set
            .clone()
    }

    /// Put it in force.
    pub fn commit(mut self) -> Result<(), String> {
        let prepared = self.prepared.take().expect("prepared until committed");
        self.manager
            .commit(&mut self.inner, prepared)
            .map_err(|e| describe(&e))?;
        self.previous = None;
        Ok(())
    }
}

impl Drop for Reconfiguration<'_> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            previous.restore(&mut self.inner);
        }
    }
}

type Resolution = (Vec<BackendSpec>, HashSet<String>, Roles, changes::Merged);

/// Merge and resolve: the specs in order, the drained ids, and what the API shows.
fn resolve(inner: &Inner, changes: &RuntimeChanges) -> Result<Resolution, ApiError> {
    let merged = changes.merge(&inner.file);
    let mut specs = Vec::with_capacity(merged.backends.len() + inner.removing.len());
    let mut drained = HashSet::new();
    let mut roles = Roles::default();
    for effective in &merged.backends {
        let key = format!("backend {:?}", effective.id);
        let spec = BackendSpec::resolve(&effective.backend, &inner.health_defaults, &key)
            .map_err(ApiError::Invalid)?;
        if effective.drain || inner.fleet_drained.contains(&spec.id) {
            drained.insert(spec.id.clone());
        }
        roles.sources.insert(spec.id.clone(), effective.source);
        specs.push(spec);
    }
    // Discovered backends after them; an id already in force keeps its first owner.
    for (name, backends) in &inner.discovered {
        for backend in backends {
            let id = changes::backend_id(backend);
            if roles.sources.contains_key(&id) {
                continue;
            }
            let key = format!("discovery {name:?} backend {id:?}");
            let spec = BackendSpec::resolve(backend, &inner.health_defaults, &key)
                .map_err(ApiError::Invalid)?;
            roles.sources.insert(spec.id.clone(), Source::Dns);
            roles.discovered.insert(spec.id.clone(), name.clone());
            specs.push(spec);
        }
    }
    for leaving in &inner.removing {
        if roles.sources.contains_key(&leaving.id) {
            continue;
        }
        drained.insert(leaving.id.clone());
        roles.removing.insert(leaving.id.clone());
        let source = if inner
            .file
            .iter()
            .any(|b| changes::backend_id(b) == leaving.id)
        {
            Source::Config
        } else if let Some(name) = inner.leaving_discovered.get(&leaving.id) {
            roles.discovered.insert(leaving.id.clone(), name.clone());
            Source::Dns
        } else {
            Source::Api
        };
        roles.sources.insert(leaving.id.clone(), source);
        specs.push(leaving.clone());
    }
    Ok((specs, drained, roles, merged))
}

/// One line for an error.
pub fn describe(error: &ApiError) -> String {
    match error {
        ApiError::NotFound(text) | ApiError::Conflict(text) | ApiError::Failed(text) => {
            text.clone()
        }
        ApiError::Invalid(problems) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    }
}
