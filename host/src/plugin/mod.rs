//! Routing decisions: the Wasm plugin when there is one, the built-in fallback otherwise.
//!
//! [`Decider::route`] is the only entry point the proxy uses. It never fails: a plugin that
//! traps, overruns its deadline, answers nonsense or picks a backend that is down is replaced
//! for that request by the fallback, and the reason is logged and counted. After repeated
//! failures the [`Breaker`] disables the plugin for a cool-down.
//!
//! The plugin in force is swapped with one atomic store ([`Decider::install`]): a decision in
//! progress finishes on the version it started with, whose instances are freed when the last
//! such decision returns.

mod bindings;
mod breaker;
mod cache;
mod compile;
mod contain;
mod decision;
mod engine;
mod failure;
mod fallback;
mod host_api;
mod kv;
mod loaded;
mod memory_cap;
mod metrics;
mod options;
mod reason;
mod split;
mod trim;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

pub use breaker::{Breaker, Tripped};
pub use cache::ContentHash;
pub use decision::{
    Contract, Decision, Directives, Features, Header, MAX_REWRITE_BYTES, Pick, RetryContext, Route,
    interpret,
};
pub use engine::PluginEngine;
pub use failure::{CallError, FailureKind, LoadError};
pub use fallback::LeastInFlight;
pub use host_api::{RequestMeta, monotonic_us};
pub use kv::KvStore;
pub use loaded::{LoadedPlugin, flatten_stats};
pub use metrics::DecisionMetrics;
pub use options::{Limits, LoadOptions};
pub use split::{Arm, Split, SplitKey};
pub use trim::return_free_memory;

use crate::outcome::Outcome;
use crate::signals::Scraper;
use crate::upstream::BackendSet;

/// One request as routing sees it: owned by the request for its whole life and lent to each
/// decision, so nothing is moved or copied per attempt (the metadata moves only into the
/// plugin's store for the length of a call, in `loaded`).
#[derive(Debug)]
pub struct RequestCtx {
    /// What the plugin may ask about the request.
    pub meta: RequestMeta,
    /// Attempts made so far: 0 for the first decision.
    pub attempt: u32,
    /// Indexes of the backends whose attempts failed (or answered with a status the pick
    /// wanted retried), in order.
    pub tried: Vec<u32>,
    /// What the decision in force asks of its attempts: alternates, retry statuses, rewrite,
    /// headers and tag.
    pub directives: Directives,
    /// The plugin version that made the decision in force, when it asked to hear outcomes.
    pub listener: Option<Arc<LoadedPlugin>>,
    /// Which side of a traffic split (a canary) decides this request; set at its first
    /// decision and kept for its retries.
    pub arm: Arm,
}

impl RequestCtx {
    /// A request about to be routed for the first time.
    pub fn new(meta: RequestMeta) -> Self {
        Self {
            meta,
            attempt: 0,
            tried: Vec::new(),
            directives: Directives::default(),
            listener: None,
            arm: Arm::Live,
        }
    }
}

/// Who made a decision, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The plugin's own answer.
    Plugin,
    /// The next of the alternates the plugin ranked with its pick, for a retry (the plugin
    /// was not asked again).
    PluginAlternate,
    /// The built-in choice, because no plugin is configured.
    Builtin,
    /// The built-in fallback, because the plugin answered `no-opinion`.
    FallbackNoOpinion,
    /// The fallback, because the plugin failed or answered something unusable.
    FallbackAfterPluginError,
    /// The fallback, because the breaker has disabled the plugin.
    FallbackPluginDisabled,
    /// Nothing was asked: no backend was usable.
    Host,
}

impl DecidedBy {
    /// Every value, in declaration order (metrics index by `as usize`).
    pub const ALL: [DecidedBy; 7] = [
        DecidedBy::Plugin,
        DecidedBy::PluginAlternate,
        DecidedBy::Builtin,
        DecidedBy::FallbackNoOpinion,
        DecidedBy::FallbackAfterPluginError,
        DecidedBy::FallbackPluginDisabled,
        DecidedBy::Host,
    ];

    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Plugin => "plugin",
            DecidedBy::PluginAlternate => "plugin_alternate",
            DecidedBy::Builtin => "builtin",
            DecidedBy::FallbackNoOpinion => "fallback_no_opinion",
            DecidedBy::FallbackAfterPluginError => "fallback_after_error",
            DecidedBy::FallbackPluginDisabled => "fallback_plugin_disabled",
            DecidedBy::Host => "host",
        }
    }
}

/// A decision and what it cost.
#[derive(Debug)]
pub struct Routed {
    /// The decision.
    pub route: Route,
    /// Who made it.
    pub decided_by: DecidedBy,
    /// Time spent deciding (plugin call included).
    pub elapsed: Duration,
}

/// What [`Decider::decide`] settled on.
struct Decided {
    route: Route,
    by: DecidedBy,
    /// Whether the plugin was called (its time goes into the latency histogram).
    asked_plugin: bool,
}

/// Chooses a backend for each request: the plugin in force, guarded by its breaker, or the
/// built-in fallback. (The host side of the guest SDK's `Router` trait, hence its own name.)
#[derive(Debug)]
pub struct Decider {
    plugin: ArcSwapOption<LoadedPlugin>,
    /// The plugin in force's `body_prefix` (0 without a plugin or for a 0.1 plugin, which
    /// cannot read it): kept apart so the request path reads one number to know.
    body_prefix: AtomicUsize,
    breaker: Breaker,
    fallback: LeastInFlight,
    metrics: DecisionMetrics,
    /// The backend signals, when lbx scrapes them (handed to plugins with each decision).
    signals: Option<Arc<Scraper>>,
    /// A candidate version taking a share of the requests (a canary), if one runs.
    split: ArcSwapOption<Split>,
}

impl Decider {
    /// A decider that asks `plugin` (or only the fallback when `None`).
    pub fn new(plugin: Option<LoadedPlugin>, breaker: Breaker, metrics: DecisionMetrics) -> Self {
        Self {
            body_prefix: AtomicUsize::new(body_prefix_of(plugin.as_ref())),
            plugin: ArcSwapOption::from(plugin.map(Arc::new)),
            breaker,
            fallback: LeastInFlight::default(),
            metrics,
            signals: None,
            split: ArcSwapOption::empty(),
        }
    }

    /// Hand the signals `scraper` keeps to the plugin with each decision.
    pub fn with_signals(mut self, scraper: Arc<Scraper>) -> Self {
        self.signals = Some(scraper);
        self
    }

    /// Put `plugin` in force (or none: fallback only) for every decision from now on, and
    /// close the breaker. Returns the version it replaced.
    pub fn install(&self, plugin: Option<LoadedPlugin>) -> Option<Arc<LoadedPlugin>> {
        // Set before the swap: a request that sees the new plugin finds its prefix read (one
        // that reads ahead for the old plugin only reads for nothing).
        let candidate = self.split.load();
        let candidate = candidate.as_ref().map(|s| &*s.plugin);
        self.body_prefix.store(
            body_prefix_of(plugin.as_ref()).max(body_prefix_of(candidate)),
            Ordering::Relaxed,
        );
        let previous = self.plugin.swap(plugin.map(Arc::new));
        self.breaker.reset();
        previous
    }

    /// Let `split`'s candidate decide its share of the requests from now on.
    pub fn start_split(&self, split: Arc<Split>) {
        let live = self.plugin.load();
        let prefix = body_prefix_of(live.as_deref()).max(body_prefix_of(Some(&split.plugin)));
        self.body_prefix.store(prefix, Ordering::Relaxed);
        self.split.store(Some(split));
    }

    /// End the traffic split: the plugin in force decides every request again.
    pub fn end_split(&self) -> Option<Arc<Split>> {
        let ended = self.split.swap(None);
        let live = self.plugin.load();
        self.body_prefix
            .store(body_prefix_of(live.as_deref()), Ordering::Relaxed);
        ended
    }

    /// The plugin version in force.
    pub fn current(&self) -> Option<Arc<LoadedPlugin>> {
        self.plugin.load_full()
    }

    /// How many bytes of a request body to read before deciding (0: none).
    pub fn body_prefix(&self) -> usize {
        self.body_prefix.load(Ordering::Relaxed)
    }

    /// The breaker guarding the plugin.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Its decision counters (registered with `/metrics` by whoever builds the registry).
    pub fn metrics(&self) -> &DecisionMetrics {
        &self.metrics
    }

    /// Decide where the request goes; `request.attempt` and `request.tried` describe earlier
    /// failed attempts.
    pub fn route(&self, request: &mut RequestCtx, set: &BackendSet) -> Routed {
        let started = Instant::now();
        let decision = self.decide(request, set);
        let routed = routed(decision.route, decision.by, started);
        self.metrics.decided(decision.by);
        if decision.asked_plugin {
            self.metrics.plugin_latency.observe(routed.elapsed);
        }
        routed
    }

    fn decide(&self, request: &mut RequestCtx, set: &BackendSet) -> Decided {
        let without_plugin = |route, by| Decided {
            route,
            by,
            asked_plugin: false,
        };
        // With nothing usable there is nothing to choose; answering 503 beats guessing.
        if !set.any_usable() {
            return without_plugin(Route::NoUsableBackend, DecidedBy::Host);
        }
        if let Some(index) = next_alternate(request, set) {
            return without_plugin(Route::Forward { index }, DecidedBy::PluginAlternate);
        }
        // Whatever decides now, the last pick's directives no longer apply.
        request.directives = Directives::default();
        request.listener = None;
        let split = self.split.load();
        if request.attempt == 0 {
            request.arm = split.as_ref().map_or(Arm::Live, |s| s.arm(&request.meta));
        }
        let candidate = split
            .as_ref()
            .filter(|_| request.arm == Arm::Candidate)
            .map(|s| &s.plugin);
        let tried = request.tried.as_slice();
        let guard = self.plugin.load();
        let Some(plugin) = candidate.or(guard.as_ref()) else {
            let route = self.fallback_route(set, tried);
            return without_plugin(route, DecidedBy::Builtin);
        };
        // The breaker guards the version in force; a candidate's failures are its canary's
        // fallback rate, judged by its gates.
        let guarded = candidate.is_none();
        if guarded && !self.breaker.allows() {
            let route = self.fallback_route(set, tried);
            return without_plugin(route, DecidedBy::FallbackPluginDisabled);
        }

        let retry = (request.attempt > 0).then(|| RetryContext {
            attempt: request.attempt,
            tried: tried.to_vec(),
        });
        // A 0.1 plugin has no signals to hear of: no need to load them for it.
        let signals = self
            .signals
            .as_ref()
            .filter(|_| plugin.contract() != Contract::V0_1)
            .map(|scraper| scraper.signals());
        let result = plugin.choose(
            &mut request.meta,
            set,
            signals.as_deref().map(|s| &**s),
            retry.as_ref(),
        );
        let outcome = result.and_then(|decision| {
            interpret(decision, set).map_err(|reason| CallError {
                kind: FailureKind::InvalidAnswer,
                reason,
            })
        });
        let tried = request.tried.as_slice();
        let (route, by) = match outcome {
            Ok(Some((route, directives))) => {
                if guarded {
                    self.plugin_succeeded(plugin);
                }
                if plugin.features().outcomes && matches!(route, Route::Forward { .. }) {
                    request.listener = Some(Arc::clone(plugin));
                }
                request.directives = directives;
                (route, DecidedBy::Plugin)
            }
            Ok(None) => {
                if guarded {
                    self.plugin_succeeded(plugin);
                }
                (
                    self.fallback_route(set, tried),
                    DecidedBy::FallbackNoOpinion,
                )
            }
            Err(error) => {
                if guarded {
                    self.plugin_failed(plugin, &error);
                } else {
                    self.metrics.failed(error.kind);
                    tracing::warn!(plugin = plugin.name(), kind = error.kind.as_str(),
                        reason = %error.reason, "canary plugin decision failed; using fallback");
                }
                let route = self.fallback_route(set, tried);
                (route, DecidedBy::FallbackAfterPluginError)
            }
        };
        Decided {
            route,
            by,
            asked_plugin: true,
        }
    }

    /// Tell `plugin` (the version that decided) how an attempt on backend `index` went. A
    /// failure counts against the breaker like a failed decision, if that version is still in
    /// force (an old version's failure says nothing about the new one).
    pub fn hear(&self, plugin: &Arc<LoadedPlugin>, index: usize, outcome: &Outcome, tag: u64) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if let Err(error) = plugin.on_outcome(index, outcome, tag) {
            let in_force = self
                .plugin
                .load()
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, plugin));
            if in_force {
                self.plugin_failed(plugin, &error);
            } else {
                tracing::warn!(plugin = plugin.name(), reason = %error.reason,
                    "replaced plugin version failed to hear an outcome");
            }
        }
    }

    fn plugin_succeeded(&self, plugin: &LoadedPlugin) {
        if self.breaker.record_success() {
            tracing::info!(plugin = plugin.name(), "plugin answered again; re-enabled");
        }
    }

    fn plugin_failed(&self, plugin: &LoadedPlugin, error: &CallError) {
        self.metrics.failed(error.kind);
        tracing::warn!(plugin = plugin.name(), kind = error.kind.as_str(), reason = %error.reason,
            "plugin decision failed; using fallback");
        if self.breaker.record_failure() == Tripped::Yes {
            self.metrics.plugin_disabled.inc();
            tracing::error!(
                plugin = plugin.name(),
                cooldown = ?self.breaker.cooldown(),
                "plugin disabled after consecutive failures; the built-in fallback routes \
                 until the cool-down passes or a new version loads"
            );
        }
    }

    fn fallback_route(&self, set: &BackendSet, tried: &[u32]) -> Route {
        match self.fallback.choose(set, tried) {
            Some(index) => Route::Forward { index },
            None => Route::NoUsableBackend,
        }
    }
}

/// The body prefix `plugin` can use: its configured one, if its contract has `body-prefix`.
fn body_prefix_of(plugin: Option<&LoadedPlugin>) -> usize {
    plugin
        .filter(|p| p.contract() != Contract::V0_1)
        .map_or(0, |p| p.options().body_prefix)
}

fn routed(route: Route, decided_by: DecidedBy, started: Instant) -> Routed {
    Routed {
        route,
        decided_by,
        elapsed: started.elapsed(),
    }
}

/// On a retry, the next alternate the plugin ranked that is usable and not yet tried; the
/// alternates passed over are dropped.
fn next_alternate(request: &mut RequestCtx, set: &BackendSet) -> Option<usize> {
    if request.attempt == 0 {
        return None;
    }
    let fallbacks = &mut request.directives.fallbacks;
    while !fallbacks.is_empty() {
        let index = fallbacks.remove(0);
        let usable = set
            .backends
            .get(index as usize)
            .is_some_and(|b| b.is_usable());
        if usable && !request.tried.contains(&index) {
            return Some(index as usize);
        }
    }
    None
}
