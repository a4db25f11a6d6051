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
mod engine;
mod failure;
mod fallback;
mod host_api;
mod kv;
mod loaded;
mod metrics;
mod options;
mod reason;
mod trim;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue, StatusCode};

pub use bindings::{Decision, RetryContext};
pub use breaker::{Breaker, Tripped};
pub use engine::PluginEngine;
pub use failure::{CallError, FailureKind, LoadError};
pub use fallback::LeastInFlight;
pub use host_api::RequestMeta;
pub use kv::KvStore;
pub use loaded::LoadedPlugin;
pub use metrics::DecisionMetrics;
pub use options::{Limits, LoadOptions};
pub use trim::return_free_memory;

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
    /// Indexes of the backends whose attempts failed, in order.
    pub tried: Vec<u32>,
}

impl RequestCtx {
    /// A request about to be routed for the first time.
    pub fn new(meta: RequestMeta) -> Self {
        Self {
            meta,
            attempt: 0,
            tried: Vec::new(),
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    /// Forward to the backend at this index of the set the decision was made on.
    Forward {
        /// Backend index.
        index: usize,
        /// Extra headers for the upstream request.
        upstream_headers: Vec<(HeaderName, HeaderValue)>,
        /// Extra headers for the client's response.
        downstream_headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Answer the client with this status (the plugin rejected the request).
    Reject(StatusCode),
    /// No backend can take the request.
    NoUsableBackend,
}

/// Who made a decision, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The plugin's own answer.
    Plugin,
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
    pub const ALL: [DecidedBy; 6] = [
        DecidedBy::Plugin,
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
    breaker: Breaker,
    fallback: LeastInFlight,
    metrics: DecisionMetrics,
}

impl Decider {
    /// A decider that asks `plugin` (or only the fallback when `None`).
    pub fn new(plugin: Option<LoadedPlugin>, breaker: Breaker, metrics: DecisionMetrics) -> Self {
        Self {
            plugin: ArcSwapOption::from(plugin.map(Arc::new)),
            breaker,
            fallback: LeastInFlight::default(),
            metrics,
        }
    }

    /// Put `plugin` in force (or none: fallback only) for every decision from now on, and
    /// close the breaker. Returns the version it replaced.
    pub fn install(&self, plugin: Option<LoadedPlugin>) -> Option<Arc<LoadedPlugin>> {
        let previous = self.plugin.swap(plugin.map(Arc::new));
        self.breaker.reset();
        previous
    }

    /// The plugin version in force.
    pub fn current(&self) -> Option<Arc<LoadedPlugin>> {
        self.plugin.load_full()
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
        let (attempt, tried) = (request.attempt, request.tried.as_slice());
        let without_plugin = |route, by| Decided {
            route,
            by,
            asked_plugin: false,
        };
        // With nothing usable there is nothing to choose; answering 503 beats guessing.
        if !set.any_usable() {
            return without_plugin(Route::NoUsableBackend, DecidedBy::Host);
        }
        let guard = self.plugin.load();
        let Some(plugin) = guard.as_ref() else {
            let route = self.fallback_route(set, tried);
            return without_plugin(route, DecidedBy::Builtin);
        };
        if !self.breaker.allows() {
            let route = self.fallback_route(set, tried);
            return without_plugin(route, DecidedBy::FallbackPluginDisabled);
        }

        let retry = (attempt > 0).then(|| RetryContext {
            attempt,
            tried: tried.to_vec(),
        });
        let result = plugin.choose(&mut request.meta, set, retry.as_ref());
        let outcome = result.and_then(|decision| {
            interpret(decision, set).map_err(|reason| CallError {
                kind: FailureKind::InvalidAnswer,
                reason,
            })
        });
        let (route, by) = match outcome {
            Ok(Some(route)) => {
                self.plugin_succeeded(plugin);
                (route, DecidedBy::Plugin)
            }
            Ok(None) => {
                self.plugin_succeeded(plugin);
                (
                    self.fallback_route(set, tried),
                    DecidedBy::FallbackNoOpinion,
                )
            }
            Err(error) => {
                self.plugin_failed(plugin, &error);
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
            Some(index) => Route::Forward {
                index,
                upstream_headers: Vec::new(),
                downstream_headers: Vec::new(),
            },
            None => Route::NoUsableBackend,
        }
    }
}

fn routed(route: Route, decided_by: DecidedBy, started: Instant) -> Routed {
    Routed {
        route,
        decided_by,
        elapsed: started.elapsed(),
    }
}

/// Check a plugin's answer against the backend set. `Ok(None)` means "no opinion"; `Err` says
/// why the answer cannot be used.
pub fn interpret(decision: Decision, set: &BackendSet) -> Result<Option<Route>, String> {
    match decision {
        Decision::NoOpinion => Ok(None),
        Decision::Reject(status) => StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .map(|s| Some(Route::Reject(s)))
            .ok_or_else(|| format!("reject with status {status}, which is not a 4xx or 5xx")),
        Decision::Pick(pick) => {
            let index = pick.backend as usize;
            let Some(backend) = set.backends.get(index) else {
                return Err(format!(
                    "picked backend {index}, but there are only {}",
                    set.len()
                ));
            };
            if !backend.is_usable() {
                return Err(format!(
                    "picked backend {}, which is not usable (down, ejected or draining)",
                    backend.spec.id
                ));
            }
            Ok(Some(Route::Forward {
                index,
                upstream_headers: convert_headers(pick.upstream_headers)?,
                downstream_headers: convert_headers(pick.downstream_headers)?,
            }))
        }
    }
}

fn convert_headers(
    headers: Vec<bindings::Header>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .into_iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("invalid header name {:?}", h.name))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|_| format!("invalid value for header {:?}", h.name))?;
            Ok((name, value))
        })
        .collect()
}
