//! `lbx:router@0.2.0` (`wit/`): its bindings, the glue for its imports, and the
//! conversion of its calls.

use wasmtime::Store;
use wasmtime::component::Resource;

use super::{RequestHandle, identities, tracing_level};
use crate::outcome::{Fault, Outcome};
use crate::plugin::decision::{Decision, Features, Header, Pick, RetryContext};
use crate::plugin::host_api::HostState;
use crate::upstream::BackendSet;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    with: {
        "lbx:router/types.request": crate::plugin::bindings::RequestHandle,
    },
});

use self::exports::lbx::router::router as wit;
use self::lbx::router::{host, kv, types};

pub(super) fn init(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    config: &str,
) -> wasmtime::Result<Result<Features, String>> {
    Ok(plugin
        .lbx_router_router()
        .call_init(store, config)?
        .map(|features| Features {
            outcomes: features.contains(wit::Features::OUTCOMES),
        }))
}

pub(super) fn backends_changed(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    set: &BackendSet,
    signal_names: &[String],
) -> wasmtime::Result<()> {
    let infos: Vec<wit::BackendInfo> = identities(set)
        .map(|b| wit::BackendInfo {
            id: b.id,
            address: b.address,
            weight: b.weight,
            labels: b.labels,
        })
        .collect();
    plugin
        .lbx_router_router()
        .call_backends_changed(store, &infos, signal_names)
}

pub(super) fn choose(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    stats: &[u32],
    signals: Option<&[f64]>,
    retry: Option<&RetryContext>,
) -> wasmtime::Result<Decision> {
    let retry = retry.map(|r| wit::RetryContext {
        attempt: r.attempt,
        tried: r.tried.clone(),
    });
    let decision = plugin.lbx_router_router().call_choose(
        store,
        Resource::<RequestHandle>::new_borrow(0),
        stats,
        signals,
        retry.as_ref(),
    )?;
    Ok(match decision {
        wit::Decision::Pick(pick) => {
            let options = pick.options.unwrap_or(types::PickOptions {
                fallbacks: Vec::new(),
                retry_on: Vec::new(),
                rewrite: None,
                tag: 0,
            });
            Decision::Pick(Pick {
                backend: pick.backend,
                fallbacks: options.fallbacks,
                retry_on: options.retry_on,
                rewrite: options.rewrite,
                tag: options.tag,
                upstream_headers: headers(pick.upstream_headers),
                downstream_headers: headers(pick.downstream_headers),
            })
        }
        wit::Decision::Reject(rejection) => Decision::Reject {
            status: rejection.status,
            headers: headers(rejection.headers),
        },
        wit::Decision::NoOpinion => Decision::NoOpinion,
    })
}

pub(super) fn on_outcome(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    index: u32,
    outcome: &Outcome,
    tag: u64,
) -> wasmtime::Result<()> {
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let outcome = types::Outcome {
        backend: index,
        status: outcome.status.map(|s| s.as_u16()),
        fault: outcome.fault.map(|fault| match fault {
            Fault::Client => types::Fault::Client,
            Fault::Backend => types::Fault::Backend,
            Fault::Proxy => types::Fault::Lbx,
        }),
        ttfb_us: outcome.ttfb.map(micros),
        first_byte_us: outcome.first_body_byte.map(micros),
        total_us: micros(outcome.total),
        bytes_up: outcome.bytes_up,
        bytes_down: outcome.bytes_down,
        attempt: outcome.attempt,
        tag,
    };
    plugin.lbx_router_router().call_on_outcome(store, outcome)
}

fn headers(headers: Vec<types::Header>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|h| Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

impl host::Host for HostState {
    fn log(&mut self, level: host::LogLevel, message: String) {
        HostState::log(self, tracing_level!(level, host::LogLevel), &message);
    }

    fn now_us(&mut self) -> u64 {
        HostState::now_us(self)
    }
}

impl types::Host for HostState {}

super::request_glue!(types {
    fn body_prefix(&mut self, _: super::Handle) -> Option<Vec<u8>> {
        Self::body_prefix(self)
    }
});

super::kv_glue!(kv);
