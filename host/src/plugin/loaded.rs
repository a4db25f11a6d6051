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
use wasmtime::{Engine, Store, StoreLimitsBuilder};

use super::bindings::{Instance, Pre};
use super::cache::ContentHash;
use super::compile::compile_component;
use super::contain::contain;
use super::decision::{Contract, Decision, Features, RetryContext};
use super::engine::{PluginEngine, ticks_covering};
use super::failure::{
    CallError, FailureKind, LoadError, classify, classify_message, describe_failure, start_failure,
};
use super::host_api::{HostState, RequestMeta};
use super::memory_cap::MemoryCap;
use super::options::{LoadOptions, SETUP_DEADLINE};
use super::reason::{collapse, compile_failure, not_a_component, one_line};
use crate::outcome::Outcome;
use crate::signals::Signals;
use crate::upstream::BackendSet;

/// One live instance with the view of the backend set it was last told about.
struct PluginInstance {
    store: Store<HostState>,
    plugin: Instance,
    backends_generation: u64,
    /// How many signal names it was told with the backend set.
    signals_told: usize,
    /// Reused buffer for the flat per-request stats (see `flatten_stats`).
    stats: Vec<u32>,
    /// Reused buffer for the per-request backend signals.
    signals: Vec<f64>,
}

/// A loaded plugin version, ready to make decisions from any thread.
pub struct LoadedPlugin {
    name: Arc<str>,
    hash: ContentHash,
    /// Whether its compiled code came from the compile cache.
    from_cache: bool,
    loaded_at: SystemTime,
    engine: Engine,
    pre: Pre,
    /// What the plugin asked for when it started (the trial instance's answer).
    features: Features,
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
            .field("contract", &self.contract())
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
        let (component, from_cache) = engine.compiled.get_or_compile(hash, || {
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
        let pre = Pre::new(instance_pre).map_err(wrong_world)?;
        let mut loaded = Self {
            name: Arc::from(name),
            hash,
            from_cache,
            loaded_at: SystemTime::now(),
            engine: engine.engine.clone(),
            pre,
            features: Features::default(),
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
        let (trial_instance, features) = loaded.instantiate()?;
        loaded.features = features;
        loaded.idle.lock().expect("pool lock").push(trial_instance);
        let mut trial = loaded.choose(&mut RequestMeta::synthetic(), trial_set, None, None);
        if trial
            .as_ref()
            .is_err_and(|e| e.kind == FailureKind::Timeout)
        {
            // One missed deadline may be the machine's, not the plugin's (the process
            // descheduled for a few ms on a loaded host would refuse a good plugin); a plugin
            // too slow for its deadline misses it again, on a fresh instance.
            trial = loaded.choose(&mut RequestMeta::synthetic(), trial_set, None, None);
        }
        trial.map_err(|e| LoadError::TrialDecision {
            name: name.to_string(),
            reason: e.reason,
        })?;
        // The trial is not a decision anyone asked for: forget the instance it changed (a
        // round robin must start at its beginning) and the count. Its effects on the shared
        // key-value store, if any, remain.
        let (first, _) = loaded.instantiate()?;
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

    /// Whether its compiled code came from the compile cache (a version seen recently)
    /// rather than being compiled for this load.
    pub fn compiled_from_cache(&self) -> bool {
        self.from_cache
    }

    /// When this version was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The contract version the plugin speaks.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    /// What the plugin asked of the host when it started.
    pub fn features(&self) -> Features {
        self.features
    }

    /// How this version runs.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// The most linear memory one idle instance holds (bytes; memory only grows, so after
    /// decisions this is the peak they needed).
    pub fn idle_memory_bytes(&self) -> usize {
        self.idle
            .lock()
            .expect("pool lock")
            .iter()
            .map(|instance| instance.store.data().limits.held_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Calls that returned a decision, and calls that failed, since this version loaded.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.decisions.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// A new instance, initialised: with the features its `init` asked for.
    fn instantiate(&self) -> Result<(PluginInstance, Features), LoadError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.options.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(
            MemoryCap::new(limits),
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
        let features = contain(|| plugin.init(&mut store, &self.options.config_json))
            .map_err(trap)?
            .map_err(|message| LoadError::ConfigRejected {
                name: self.name.to_string(),
                message: collapse(&message),
            })?;
        let instance = PluginInstance {
            store,
            plugin,
            backends_generation: 0,
            signals_told: 0,
            stats: Vec::new(),
            signals: Vec::new(),
        };
        Ok((instance, features))
    }

    /// An idle instance, or a new one.
    fn take_instance(&self) -> Result<PluginInstance, CallError> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        match pooled {
            Some(instance) => Ok(instance),
            None => self
                .instantiate()
                .map(|(instance, _)| instance)
                .map_err(|e| {
                    let kind = match &e {
                        LoadError::Trap { reason, .. } => classify_message(reason),
                        _ => FailureKind::Setup,
                    };
                    CallError {
                        kind,
                        reason: e.to_string(),
                    }
                }),
        }
    }

    /// Put an instance whose call succeeded back in the pool (if the pool has room).
    fn return_instance(&self, instance: PluginInstance) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.options.max_idle {
            idle.push(instance);
        }
    }

    /// Tell the plugin how an attempt it decided went: `index` is the backend's position in the
    /// set the decision was made on, `tag` the pick's. A failure (trap, deadline) is counted
    /// like a failed decision; the caller decides what else it touches.
    pub fn on_outcome(&self, index: u32, outcome: &Outcome, tag: u64) -> Result<(), CallError> {
        let mut instance = self.take_instance()?;
        let PluginInstance { store, plugin, .. } = &mut instance;
        store.set_epoch_deadline(self.deadline_ticks);
        match contain(|| plugin.on_outcome(&mut *store, index, outcome, tag)) {
            Ok(()) => {
                self.return_instance(instance);
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let mut error = describe_failure(&e, self.options.limits);
                error.reason = format!("on-outcome failed: {}", error.reason);
                Err(error)
            }
        }
    }

    /// Ask the plugin to choose for one request, with the backend signals in force if any.
    pub fn choose(
        &self,
        meta: &mut RequestMeta,
        set: &BackendSet,
        signals: Option<&Signals>,
        retry: Option<&RetryContext>,
    ) -> Result<Decision, CallError> {
        let result = self.call_choose(meta, set, None, signals, retry);
        self.count(result)
    }

    /// Ask the plugin to choose for a request decided earlier, with the backend statistics
    /// taken then (`stats`: 5 numbers per backend of `set`, as `flatten_stats` lays them out)
    /// instead of the live ones: a shadow's view of a sampled request.
    pub fn choose_as_then(
        &self,
        meta: &mut RequestMeta,
        set: &BackendSet,
        stats: &[u32],
        signals: Option<&Signals>,
    ) -> Result<Decision, CallError> {
        let result = self.call_choose(meta, set, Some(stats), signals, None);
        self.count(result)
    }

    fn count(&self, result: Result<Decision, CallError>) -> Result<Decision, CallError> {
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
        stats_then: Option<&[u32]>,
        signals: Option<&Signals>,
        retry: Option<&RetryContext>,
    ) -> Result<Decision, CallError> {
        let mut instance = self.take_instance()?;
        // A 0.1 plugin has no signals to hear of.
        let signals = signals.filter(|s| s.is_enabled() && self.contract() != Contract::V0_1);
        let names = signals.map_or(&[][..], Signals::names);
        // A reload that renames the signals publishes a new backend set too; comparing the
        // count as well covers the moment between the two.
        if (instance.backends_generation != set.generation || instance.signals_told != names.len())
            && let Err(e) = tell_backends(&mut instance, set, names, self.tick)
        {
            return Err(e);
        }
        match stats_then {
            Some(stats) => {
                instance.stats.clear();
                instance.stats.extend_from_slice(stats);
            }
            None => flatten_stats(set, &mut instance.stats),
        }
        instance.signals.clear();
        if let Some(signals) = signals {
            signals.fill(set, &mut instance.signals);
        }
        let with_signals = signals.is_some();

        let PluginInstance {
            store,
            plugin,
            stats,
            signals,
            ..
        } = &mut instance;
        // The store owns the request for the call (its imports read it from there); a vacant
        // stand-in, which allocates nothing, holds its place meanwhile.
        store.data_mut().request = Some(std::mem::replace(meta, RequestMeta::vacant()));
        store.set_epoch_deadline(self.deadline_ticks);
        let signals = with_signals.then_some(signals.as_slice());
        let result = contain(|| plugin.choose(&mut *store, stats, signals, retry));
        *meta = store
            .data_mut()
            .request
            .take()
            .expect("request metadata stays in the store during the call");
        match result {
            Ok(decision) => {
                self.return_instance(instance);
                Ok(decision)
            }
            // The instance is dropped here: after a trap it must not be entered again.
            Err(e) => Err(describe_failure(&e, self.options.limits)),
        }
    }
}

/// The WIT `backend-stats` record flattened, 5 numbers per backend in field order: a flat
/// `list<u32>` crosses into the guest as one copy instead of a store per field.
pub fn flatten_stats(set: &BackendSet, out: &mut Vec<u32>) {
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
    signal_names: &[String],
    tick: Duration,
) -> Result<(), CallError> {
    instance
        .store
        .set_epoch_deadline(ticks_covering(SETUP_DEADLINE, tick));
    let PluginInstance { store, plugin, .. } = instance;
    contain(|| plugin.backends_changed(&mut *store, set, signal_names)).map_err(|e| CallError {
        kind: classify(&e),
        reason: format!("backends-changed failed: {}", one_line(&e)),
    })?;
    instance.backends_generation = set.generation;
    instance.signals_told = signal_names.len();
    Ok(())
}
