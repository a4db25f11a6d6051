//! Running one plugin version: compile once, pre-instantiate once, keep a pool of live
//! instances, and make every call inside the sandbox (epoch deadline, memory cap, bare WASI).
//!
//! A call that traps, runs past its deadline or hits the memory cap fails only that call: the
//! instance is discarded (a trapped instance must not be re-entered) and the caller falls back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Linker, Resource};
use wasmtime::{Engine, Store, StoreLimitsBuilder};

use super::bindings::{BackendInfo, Decision, Plugin, PluginPre, RequestHandle, RetryContext};
use super::cache::{CompiledCache, ContentHash};
use super::compile::compile_component;
use super::contain::{contain, install_panic_hook};
use super::host_api::{HostState, RequestMeta};
use super::kv::KvStore;
use super::reason::{collapse, compile_failure, not_a_component, one_line};
use crate::upstream::BackendSet;

/// The finest epoch tick: shorter ticks cost more wakeups than they buy precision.
const MIN_EPOCH_TICK: Duration = Duration::from_millis(1);

/// Deadline for `init` and `backends-changed`, which may do real work (parse config, build
/// tables) and run off the per-request budget.
const SETUP_DEADLINE: Duration = Duration::from_secs(2);

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The bytes are not a Wasm component wasmtime can compile.
    #[error("plugin {name} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// File name or label of the plugin.
        name: String,
        /// The compiler's explanation.
        reason: String,
    },
    /// The component does not fit the `lbx:router/plugin` world.
    #[error("plugin {name} does not implement the lbx:router@0.1.0 `plugin` world: {reason}")]
    WrongWorld {
        /// File name or label of the plugin.
        name: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// Instantiation or `init` trapped.
    #[error("plugin {name} failed to start: {reason}")]
    Trap {
        /// File name or label of the plugin.
        name: String,
        /// The trap.
        reason: String,
    },
    /// The plugin's `init` rejected its configuration.
    #[error("plugin {name} rejected its configuration: {message}")]
    ConfigRejected {
        /// File name or label of the plugin.
        name: String,
        /// The plugin's own message.
        message: String,
    },
    /// The trial decision on a synthetic request failed.
    #[error("plugin {name} failed its trial decision: {reason}")]
    TrialDecision {
        /// File name or label of the plugin.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Sandbox limits applied to every instance of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time one `choose` call may run.
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
}

impl Limits {
    /// The limits `[plugin]` configures.
    pub fn from_settings(settings: &crate::config::PluginConfig) -> Self {
        Self {
            deadline: settings.deadline,
            memory_bytes: settings.memory_limit_mib as usize * 1024 * 1024,
        }
    }
}

/// How a plugin version is run: everything but its bytes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The plugin's configuration as JSON, passed to `init`.
    pub config_json: String,
    /// Sandbox limits.
    pub limits: Limits,
    /// Instances kept alive between decisions (one per worker thread is enough).
    pub max_idle: usize,
    /// The host key-value store, shared across versions.
    pub kv: Arc<KvStore>,
    /// Let the plugin write to lbx's stdout/stderr. Only for `lbx check`: on the proxy's
    /// async threads a write would fail the decision (see `contain`).
    pub inherit_stdio: bool,
}

impl LoadOptions {
    /// What `config` asks for (its `[plugin] config` for `init`, its sandbox limits), with
    /// `kv` as the key-value store and `max_idle` instances kept. `lbx run`, `lbx check` and
    /// `lbx validate` all load through this, so they try the same plugin the same way.
    pub fn from_config(config: &crate::config::Config, kv: Arc<KvStore>, max_idle: usize) -> Self {
        Self {
            config_json: config.plugin_config_json(),
            limits: Limits::from_settings(&config.plugin_settings()),
            max_idle,
            kv,
            inherit_stdio: false,
        }
    }
}

/// The wasmtime engine shared by all plugins, with the thread that advances its epoch and the
/// cache of compiled plugins.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    /// The configuration `engine` was built from, for the throwaway compiling engines.
    config: Arc<wasmtime::Config>,
    linker: Arc<Linker<HostState>>,
    tick: Duration,
    compiled: Arc<CompiledCache>,
}

impl PluginEngine {
    /// Create the engine and start its epoch ticker (which stops when the engine is dropped).
    ///
    /// The ticker advances every `deadline / 2` (at least 1 ms), so a decision is interrupted
    /// between 1× and 1.5× its deadline. A finer tick would wake a thread 1000 times a second
    /// on a busy proxy (measured: ~4% of throughput on one core) for precision nobody needs.
    pub fn new(deadline: Duration) -> anyhow::Result<Self> {
        install_panic_hook();
        let tick = (deadline / 2).max(MIN_EPOCH_TICK);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Measured with `cargo bench --bench decision`: no component-model-async bookkeeping
        // per call (lbx calls plugins synchronously) 949 -> 930 ns. Cross-function inlining
        // (`compiler_inlining`) would save another ~70 ns per decision, ~0.2% of a proxied
        // request, but compiles an 18 MB Python plugin in 26 s instead of ~3 s: left off.
        config.concurrency_support(false);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::<HostState>::new(&engine);
        // Rust guests for wasm32-wasip2 import WASI interfaces even when unused; they are backed
        // by a bare context (no files, env, network, stdio), so linking them grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Plugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("lbx-plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(tick);
                }
            })?;
        Ok(Self {
            engine,
            config: Arc::new(config),
            linker: Arc::new(linker),
            tick,
            compiled: Arc::default(),
        })
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

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

/// What kind of failure a failed call was, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The plugin trapped (panic, unreachable, out-of-bounds access…).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The plugin tried to grow its memory past the cap.
    Memory,
    /// No instance could be created or told about the backends.
    Setup,
    /// The plugin answered something unusable (index out of range, a down backend…).
    InvalidAnswer,
}

impl FailureKind {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Setup => "setup",
            FailureKind::InvalidAnswer => "invalid_answer",
        }
    }

    /// Every kind, for pre-registering metric series.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::Memory,
        FailureKind::Setup,
        FailureKind::InvalidAnswer,
    ];
}

/// A call into the plugin that failed: the request gets the fallback instead.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct CallError {
    /// What went wrong, for metrics.
    pub kind: FailureKind,
    /// One line for the log.
    pub reason: String,
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
        let (_, trial) = loaded.choose(RequestMeta::synthetic(), trial_set, None);
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

    /// Ask the plugin to choose for one request. The request metadata is always handed back.
    pub fn choose(
        &self,
        meta: RequestMeta,
        set: &BackendSet,
        retry: Option<&RetryContext>,
    ) -> (RequestMeta, Result<Decision, CallError>) {
        let (meta, result) = self.call_choose(meta, set, retry);
        let counter = if result.is_ok() {
            &self.decisions
        } else {
            &self.failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (meta, result)
    }

    fn call_choose(
        &self,
        meta: RequestMeta,
        set: &BackendSet,
        retry: Option<&RetryContext>,
    ) -> (RequestMeta, Result<Decision, CallError>) {
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
                    return (meta, Err(CallError { kind, reason }));
                }
            },
        };
        if instance.backends_generation != set.generation
            && let Err(e) = tell_backends(&mut instance, set, self.tick)
        {
            return (meta, Err(e));
        }
        flatten_stats(set, &mut instance.stats);

        let PluginInstance {
            store,
            plugin,
            stats,
            ..
        } = &mut instance;
        store.data_mut().request = Some(meta);
        store.set_epoch_deadline(self.deadline_ticks);
        let result = contain(|| {
            plugin.lbx_router_router().call_choose(
                &mut *store,
                Resource::<RequestHandle>::new_borrow(0),
                stats,
                retry,
            )
        });
        let meta = store
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
                (meta, Ok(decision))
            }
            // The instance is dropped here: after a trap it must not be entered again.
            Err(e) => (meta, Err(describe_failure(&e, self.options.limits))),
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
            backend.weight,
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
            id: b.id.clone(),
            address: b.authority.to_string(),
            weight: b.weight,
            labels: b.labels.clone(),
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

/// Epoch ticks to allow so that at least `duration` passes before the interrupt: the current
/// tick may be about to end, hence the extra one.
fn ticks_covering(duration: Duration, tick: Duration) -> u64 {
    (duration.as_micros().div_ceil(tick.as_micros()) as u64).max(1) + 1
}

/// Turn a failed `choose` into a kind for metrics and a one-line reason an operator can act on.
fn describe_failure(error: &wasmtime::Error, limits: Limits) -> CallError {
    let kind = classify(error);
    let reason = match kind {
        FailureKind::Timeout => format!("decision exceeded its {:?} deadline", limits.deadline),
        FailureKind::Memory => format!(
            "plugin hit its memory limit of {} MiB",
            limits.memory_bytes / (1024 * 1024)
        ),
        FailureKind::Trap if error.is::<wasmtime::Trap>() => {
            format!("plugin trapped: {}", one_line(error))
        }
        _ => format!("plugin call failed: {}", one_line(error)),
    };
    CallError { kind, reason }
}

/// Why instantiation or `init` failed, in one line: a trap or the memory cap by name.
fn start_failure(error: &wasmtime::Error, limits: Limits) -> String {
    match classify(error) {
        FailureKind::Memory => format!(
            "init hit the memory limit of {} MiB",
            limits.memory_bytes / (1024 * 1024)
        ),
        FailureKind::Timeout => format!("init ran past its {SETUP_DEADLINE:?} deadline"),
        _ => one_line(error),
    }
}

fn classify(error: &wasmtime::Error) -> FailureKind {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => FailureKind::Timeout,
        _ => classify_message(&format!("{error:#}")),
    }
}

/// The memory limiter reports a refused growth as an error whose text is the only marker.
fn classify_message(message: &str) -> FailureKind {
    if message.contains("growing memory") || message.contains("memory growth") {
        FailureKind::Memory
    } else if message.contains("interrupt") {
        FailureKind::Timeout
    } else {
        FailureKind::Trap
    }
}
