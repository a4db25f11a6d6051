//! Running one plugin version: compile once, pre-instantiate once, keep a pool of live
//! instances, and make every call inside the sandbox (epoch deadline, memory cap, bare WASI).
//!
//! A call that traps, runs past its deadline or hits the memory cap fails only that call: the
//! instance is discarded (a trapped instance must not be re-entered) and the caller falls back.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store, StoreLimitsBuilder};

use super::bindings::{BackendInfo, Decision, Plugin, PluginPre, RetryContext};
use super::host_api::{HostState, RequestHandle, RequestMeta};
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
}

/// Sandbox limits applied to every instance of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time one `choose` call may run.
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
}

/// The wasmtime engine shared by all plugins, with the thread that advances its epoch.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    tick: Duration,
}

impl PluginEngine {
    /// Create the engine and start its epoch ticker (which stops when the engine is dropped).
    ///
    /// The ticker advances every `deadline / 2` (at least 1 ms), so a decision is interrupted
    /// between 1× and 1.5× its deadline. A finer tick would wake a thread 1000 times a second
    /// on a busy proxy (measured: ~4% of throughput on one core) for precision nobody needs.
    pub fn new(deadline: Duration) -> anyhow::Result<Self> {
        let tick = (deadline / 2).max(MIN_EPOCH_TICK);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Measured with `cargo bench --bench decision`: no component-model-async bookkeeping
        // per call (lbx calls plugins synchronously) 949 -> 930 ns, inlining -> 860 ns.
        config.concurrency_support(false);
        config.compiler_inlining(wasmtime::Inlining::Yes);
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
            linker: Arc::new(linker),
            tick,
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
    engine: Engine,
    pre: PluginPre<HostState>,
    config_json: String,
    limits: Limits,
    deadline_ticks: u64,
    tick: Duration,
    idle: Mutex<Vec<PluginInstance>>,
    max_idle: usize,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A call into the plugin that failed: the request gets the fallback instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(String);

impl LoadedPlugin {
    /// Read, compile, link and smoke-test (instantiate + `init`) a plugin file.
    pub fn load_file(
        engine: &PluginEngine,
        path: &Path,
        config_json: String,
        limits: Limits,
        max_idle: usize,
    ) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|reason| LoadError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let name = path.display().to_string();
        Self::load_bytes(engine, &name, &bytes, config_json, limits, max_idle)
    }

    /// Like [`LoadedPlugin::load_file`] for a plugin already in memory (e.g. embedded).
    pub fn load_bytes(
        engine: &PluginEngine,
        name: &str,
        bytes: &[u8],
        config_json: String,
        limits: Limits,
        max_idle: usize,
    ) -> Result<Self, LoadError> {
        if is_core_module(bytes) {
            return Err(LoadError::Compile {
                name: name.to_string(),
                reason: "it is a core Wasm module, not a component; build the plugin for \
                         wasm32-wasip2, or wrap it with `wasm-tools component new`"
                    .into(),
            });
        }
        let component = Component::new(&engine.engine, bytes).map_err(|e| LoadError::Compile {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        let instance_pre =
            engine
                .linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::WrongWorld {
                    name: name.to_string(),
                    reason: format!("{e:#}"),
                })?;
        let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::WrongWorld {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        let deadline_ticks = ticks_covering(limits.deadline, engine.tick);
        let loaded = Self {
            name: Arc::from(name),
            engine: engine.engine.clone(),
            pre,
            config_json,
            limits,
            deadline_ticks,
            tick: engine.tick,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        };
        // Smoke test: a plugin that cannot start is refused now, not on the first request.
        let first = loaded.instantiate()?;
        loaded.idle.lock().expect("pool lock").push(first);
        Ok(loaded)
    }

    /// The plugin's name (its path) for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn instantiate(&self) -> Result<PluginInstance, LoadError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, HostState::new(limits, self.name.clone()));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks_covering(SETUP_DEADLINE, self.tick));
        let trap = |e: wasmtime::Error| LoadError::Trap {
            name: self.name.to_string(),
            reason: format!("{e:#}"),
        };
        let plugin = self.pre.instantiate(&mut store).map_err(trap)?;
        plugin
            .lbx_router_router()
            .call_init(&mut store, &self.config_json)
            .map_err(trap)?
            .map_err(|message| LoadError::ConfigRejected {
                name: self.name.to_string(),
                message,
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
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut instance = match pooled {
            Some(instance) => instance,
            None => match self.instantiate() {
                Ok(instance) => instance,
                Err(e) => return (meta, Err(CallError(e.to_string()))),
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
        let result = plugin.lbx_router_router().call_choose(
            &mut *store,
            Resource::<RequestHandle>::new_borrow(0),
            stats,
            retry,
        );
        let meta = store
            .data_mut()
            .request
            .take()
            .expect("request metadata stays in the store during the call");
        match result {
            Ok(decision) => {
                let mut idle = self.idle.lock().expect("pool lock");
                if idle.len() < self.max_idle {
                    idle.push(instance);
                }
                (meta, Ok(decision))
            }
            // The instance is dropped here: after a trap it must not be entered again.
            Err(e) => (meta, Err(CallError(describe_trap(&e, self.limits)))),
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
    instance
        .plugin
        .lbx_router_router()
        .call_backends_changed(&mut instance.store, &infos)
        .map_err(|e| CallError(format!("backends-changed failed: {e:#}")))?;
    instance.backends_generation = set.generation;
    Ok(())
}

/// A core module starts with `\0asm` and version 1; a component uses a different layer/version.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x01\0\0\0")
}

/// Epoch ticks to allow so that at least `duration` passes before the interrupt: the current
/// tick may be about to end, hence the extra one.
fn ticks_covering(duration: Duration, tick: Duration) -> u64 {
    (duration.as_micros().div_ceil(tick.as_micros()) as u64).max(1) + 1
}

/// Turn a wasmtime error into a one-line reason an operator can act on.
fn describe_trap(error: &wasmtime::Error, limits: Limits) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            format!("decision exceeded its {:?} deadline", limits.deadline)
        }
        Some(trap) => format!("plugin trapped: {trap}"),
        None => format!("plugin call failed: {error:#}"),
    }
}
