//! One plugin version, loaded: compiled once, pre-instantiated once, with a pool of live
//! instances, and every call made inside the sandbox (epoch deadline, memory cap, bare WASI).
//!
//! A call that traps, runs past its deadline or hits the memory cap fails only that call: the
//! instance is discarded (a trapped instance must not be re-entered) and the caller falls back.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Resource;
use wasmtime::{Engine, Store, StoreLimitsBuilder};

use super::bindings::{BackendInfo, Decision, Plugin, PluginPre, RequestHandle, RetryContext};
use super::cache::ContentHash;
use super::compile::compile_component;
use super::contain::contain;
use super::engine::{PluginEngine, ticks_covering};
use super::failure::{
    CallError, FailureKind, LoadError, classify, classify_message, describe_failure, start_failure,
};
use super::host_api::{HostState, RequestMeta};
use super::options::{LoadOptions, SETUP_DEADLINE};
use super::reason::{collapse, compile_failure, not_a_component, one_line};
use crate::upstream::BackendSet;

/// One live instance with the view of the backend set it was last told about.
struct PluginInstance {
    store: Store<HostState>,
    plugin: Plugin,
    backends_generation: u64,
    /// Reused buffer for the flat per-request stats (see `flatten_stats`).
    stats: Vec<u32>,
}

/// A loaded plugin version, ready to make decisions from any thread.
pub struct LoadedPlugin {
    name: Arc<str>,
    hash: ContentHash,
    loaded_at: SystemTime,
    engine: Engine,
    pre: PluginPre<HostState>,
    options: LoadOptions,
    deadline_ticks: u64,
    tick: Duration,
    idle: Mutex<Vec<PluginInstance>>,
    decisions: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256())
            .field("limits", &self.options.limits)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Read, compile, link and smoke-test a plugin file (see [`LoadedPlugin::load_bytes`]).
    pub fn load_file(
        engine: &PluginEngine,
        path: &Path,
        options: LoadOptions,
        trial_set: &BackendSet,
    ) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|reason| LoadError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let name = path.display().to_string();
        Self::load_bytes(engine, &name, &bytes, options, trial_set)
    }

    /// Compile (or take from the cache), link and smoke-test a plugin: instantiate it, run
    /// `init` with its configuration and one decision on a synthetic request over
    /// `trial_set`. A plugin that cannot do that is refused now, not on the first request.
    pub fn load_bytes(
        engine: &PluginEngine,
        name: &str,
        bytes: &[u8],
        options: LoadOptions,
        trial_set: &BackendSet,
    ) -> Result<Self, LoadError> {
        if let Some(reason) = not_a_component(bytes) {
            return Err(LoadError::Compile {
                name: name.to_string(),
                reason,
            });
        }
        let hash: ContentHash = Sha256::digest(bytes).into();
        let component = engine.compiled.get_or_compile(hash, || {
            compile_component(&engine.config, &engine.engine, bytes).map_err(|e| {
                LoadError::Compile {
                    name: name.to_string(),
                    reason: compile_failure(&e),
                }
            })
        })?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            name: name.to_string(),
            reason: one_line(&e),
        };
        let instance_pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = PluginPre::new(instance_pre).map_err(wrong_world)?;
        let loaded = Self {
            name: Arc::from(name),
            hash,
            loaded_at: SystemTime::now(),
            engine: engine.engine.clone(),
            pre,
            deadline_ticks: ticks_covering(options.limits.deadline, engine.tick),
            tick: engine.tick,
            options: LoadOptions {
                max_idle: options.max_idle.max(1),
                ..options
            },
            idle: Mutex::new(Vec::new()),
            decisions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        };
        let trial_instance = loaded.instantiate()?;
        loaded.idle.lock().expect("pool lock").push(trial_instance);
        let trial = loaded.choose(&mut RequestMeta::synthetic(), trial_set, None);
        trial.map_err(|e| LoadError::TrialDecision {
            name: name.to_string(),
            reason: e.reason,
        })?;
        // The trial is not a decision anyone asked for: forget the instance it changed (a
        // round robin must start at its beginning) and the count. Its effects on the shared
        // key-value store, if any, remain.
        let first = loaded.instantiate()?;
        *loaded.idle.lock().expect("pool lock") = vec![first];
        loaded.decisions.store(0, Ordering::Relaxed);
        Ok(loaded)
    }

    /// The plugin's name (its path) for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hex SHA-256 of the plugin's bytes: its version.
    pub fn sha256(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Content hash, to tell whether a file on disk is this version.
    pub fn content_hash(&self) -> &ContentHash {
        &self.hash
    }

    /// When this version was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// How this version runs.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// Calls that returned a decision, and calls that failed, since this version loaded.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.decisions.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    fn instantiate(&self) -> Result<PluginInstance, LoadError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.options.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(
            limits,
            self.name.clone(),
            self.options.kv.clone(),
            self.options.inherit_stdio,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks_covering(SETUP_DEADLINE, self.tick));
        let trap = |e: wasmtime::Error| {
            tracing::debug!(plugin = %self.name, error = ?e, "plugin failed to start");
            LoadError::Trap {
                name: self.name.to_string(),
                reason: start_failure(&e, self.options.limits),
            }
        };
        let plugin = self.pre.instantiate(&mut store).map_err(trap)?;
        contain(|| {
            plugin
                .lbx_router_router()
                .call_init(&mut store, &self.options.config_json)
        })
        .map_err(trap)?
        .map_err(|message| LoadError::ConfigRejected {
            name: self.name.to_string(),
            message: collapse(&message),
        })?;
        Ok(PluginInstance {
            store,
            plugin,
            backends_generation: 0,
            stats: Vec::new(),
        })
    }

    /// Ask the plugin to choose for one request.
    pub fn choose(
        &self,
        meta: &mut RequestMeta,
        set: &BackendSet,
        retry: Option<&RetryContext>,
    ) -> Result<Decision, CallError> {
        let result = self.call_choose(meta, set, retry);
        let counter = if result.is_ok() {
            &self.decisions
        } else {
            &self.failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn call_choose(
        &self,
        meta: &mut RequestMeta,
        set: &BackendSet,
        retry: Option<&RetryContext>,
    ) -> Result<Decision, CallError> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut instance = match pooled {
            Some(instance) => instance,
            None => match self.instantiate() {
                Ok(instance) => instance,
                Err(e) => {
                    let kind = match &e {
                        LoadError::Trap { reason, .. } => classify_message(reason),
                        _ => FailureKind::Setup,
                    };
                    let reason = e.to_string();
                    return Err(CallError { kind, reason });
                }
            },
        };
        if instance.backends_generation != set.generation
            && let Err(e) = tell_backends(&mut instance, set, self.tick)
        {
            return Err(e);
        }
        flatten_stats(set, &mut instance.stats);

        let PluginInstance {
            store,
            plugin,
            stats,
            ..
        } = &mut instance;
        // The store owns the request for the call (its imports read it from there); a vacant
        // stand-in, which allocates nothing, holds its place meanwhile.
        store.data_mut().request = Some(std::mem::replace(meta, RequestMeta::vacant()));
        store.set_epoch_deadline(self.deadline_ticks);
        let result = contain(|| {
            plugin.lbx_router_router().call_choose(
                &mut *store,
                Resource::<RequestHandle>::new_borrow(0),
                stats,
                retry,
            )
        });
        *meta = store
            .data_mut()
            .request
            .take()
            .expect("request metadata stays in the store during the call");
        match result {
            Ok(decision) => {
                let mut idle = self.idle.lock().expect("pool lock");
                if idle.len() < self.options.max_idle {
                    idle.push(instance);
                }
                Ok(decision)
            }
            // The instance is dropped here: after a trap it must not be entered again.
            Err(e) => Err(describe_failure(&e, self.options.limits)),
        }
    }
}

/// The WIT `backend-stats` record flattened, 5 numbers per backend in field order: a flat
/// `list<u32>` crosses into the guest as one copy instead of a store per field.
fn flatten_stats(set: &BackendSet, out: &mut Vec<u32>) {
    out.clear();
    for backend in &set.backends {
        out.extend_from_slice(&[
            u32::from(backend.is_usable()),
            backend.spec.weight,
            backend.stats.in_flight(),
            backend.stats.ewma_latency_us(),
            backend.stats.consecutive_failures(),
        ]);
    }
}

fn tell_backends(
    instance: &mut PluginInstance,
    set: &BackendSet,
    tick: Duration,
) -> Result<(), CallError> {
    let infos: Vec<BackendInfo> = set
        .backends
        .iter()
        .map(|b| BackendInfo {
            id: b.spec.id.clone(),
            address: b.spec.authority.to_string(),
            weight: b.spec.weight,
            labels: b.spec.labels.clone(),
        })
        .collect();
    instance
        .store
        .set_epoch_deadline(ticks_covering(SETUP_DEADLINE, tick));
    let PluginInstance { store, plugin, .. } = instance;
    contain(|| {
        plugin
            .lbx_router_router()
            .call_backends_changed(&mut *store, &infos)
    })
    .map_err(|e| CallError {
        kind: classify(&e),
        reason: format!("backends-changed failed: {}", one_line(&e)),
    })?;
    instance.backends_generation = set.generation;
    Ok(())
}
