//! Routing decisions: the Wasm plugin when there is one, the built-in fallback otherwise.
//!
//! [`Router::route`] is the only entry point the proxy uses. It never fails: a plugin that
//! traps, overruns its deadline, answers nonsense or picks a backend that is down is replaced
//! for that request by the fallback, and the reason is logged.

mod bindings;
mod fallback;
mod host_api;
mod runtime;

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, StatusCode};

pub use fallback::LeastInFlight;
pub use host_api::RequestMeta;
pub use runtime::{Limits, LoadError, LoadedPlugin, PluginEngine};

use crate::upstream::BackendSet;
use bindings::{Decision, RetryContext};

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
    /// The built-in fallback (no plugin, or the plugin had no opinion).
    Fallback,
    /// The fallback, because the plugin failed or answered something unusable.
    FallbackAfterPluginError,
    /// Nothing was asked: no backend was usable.
    Host,
}

impl DecidedBy {
    /// Short label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Plugin => "plugin",
            DecidedBy::Fallback => "fallback",
            DecidedBy::FallbackAfterPluginError => "fallback-after-error",
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

/// Chooses a backend for each request.
#[derive(Debug)]
pub struct Router {
    plugin: Option<LoadedPlugin>,
    fallback: LeastInFlight,
}

impl Router {
    /// A router that asks `plugin` (or only the fallback when `None`).
    pub fn new(plugin: Option<LoadedPlugin>) -> Self {
        Self {
            plugin,
            fallback: LeastInFlight::default(),
        }
    }

    /// Decide where the request goes. `attempt` and `tried` describe earlier failed attempts.
    pub fn route(
        &self,
        meta: RequestMeta,
        set: &BackendSet,
        attempt: u32,
        tried: &[u32],
    ) -> (RequestMeta, Routed) {
        let started = Instant::now();
        // With nothing usable there is nothing to choose; answering 503 beats guessing.
        if !set.any_usable() {
            return (
                meta,
                routed(Route::NoUsableBackend, DecidedBy::Host, started),
            );
        }
        let Some(plugin) = &self.plugin else {
            let route = self.fallback_route(set, tried);
            return (meta, routed(route, DecidedBy::Fallback, started));
        };

        let retry = (attempt > 0).then(|| RetryContext {
            attempt,
            tried: tried.to_vec(),
        });
        let (meta, result) = plugin.choose(meta, set, retry.as_ref());
        let outcome = match result {
            Ok(decision) => interpret(decision, set),
            Err(e) => Err(e.to_string()),
        };
        let (route, decided_by) = match outcome {
            Ok(Some(route)) => (route, DecidedBy::Plugin),
            Ok(None) => (self.fallback_route(set, tried), DecidedBy::Fallback),
            Err(reason) => {
                tracing::warn!(plugin = plugin.name(), %reason, "plugin decision failed; using fallback");
                (
                    self.fallback_route(set, tried),
                    DecidedBy::FallbackAfterPluginError,
                )
            }
        };
        (meta, routed(route, decided_by, started))
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

/// Check a plugin's answer against the backend set. `Ok(None)` means "no opinion".
fn interpret(decision: Decision, set: &BackendSet) -> Result<Option<Route>, String> {
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
                return Err(format!("picked backend {} which is down", backend.id));
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
