//! The wasmtime engine every plugin runs on: its configuration (component model, epoch
//! interruption, Cranelift settings, the perf map for profiling), the linker with the host's
//! imports, the thread that advances the epoch, and the cache of compiled plugins.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Linker;

use super::cache::CompiledCache;
use super::contain::install_panic_hook;
use super::host_api::HostState;

/// The finest epoch tick: shorter ticks cost more wakeups than they buy precision.
const MIN_EPOCH_TICK: Duration = Duration::from_millis(1);

/// Set (to anything but `0`), wasmtime writes the address and name of every compiled plugin
/// function to `/tmp/perf-<pid>.map` as plugins load, so `perf report` names a plugin's own
/// functions (a Python plugin's are CPython's) instead of bare addresses. Off by default: the
/// file grows with every load and hot swap.
const PERF_MAP_ENV: &str = "LBX_PERF_MAP";

/// Whether `LBX_PERF_MAP` asks for the perf map.
fn perf_map_wanted() -> bool {
    std::env::var_os(PERF_MAP_ENV).is_some_and(|value| !value.is_empty() && value != "0")
}

/// The wasmtime engine shared by all plugins, with the thread that advances its epoch and the
/// cache of compiled plugins.
#[derive(Clone)]
pub struct PluginEngine {
    pub(super) engine: Engine,
    /// The configuration `engine` was built from, for the throwaway compiling engines.
    pub(super) config: Arc<wasmtime::Config>,
    pub(super) linker: Arc<Linker<HostState>>,
    pub(super) tick: Duration,
    pub(super) compiled: Arc<CompiledCache>,
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
        if perf_map_wanted() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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
        super::bindings::add_to_linker(&mut linker)?;

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

/// Epoch ticks to allow so that at least `duration` passes before the interrupt: the current
/// tick may be about to end, hence the extra one.
pub(super) fn ticks_covering(duration: Duration, tick: Duration) -> u64 {
    (duration.as_micros().div_ceil(tick.as_micros()) as u64).max(1) + 1
}
