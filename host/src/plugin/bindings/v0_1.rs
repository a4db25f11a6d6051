//! `lbx:router@0.1.0` (frozen in `wit/v0.1/`): its bindings, the glue for its imports, and the
//! conversion of its calls. 0.1 plugins get no feedback, fallbacks, rewrite, body prefix,
//! signals or clock: what they return maps onto a 0.2 decision with those left empty.

use wasmtime::Store;
use wasmtime::component::Resource;

use super::{RequestHandle, identities, tracing_level};
use crate::plugin::decision::{Decision, Features, Header, Pick, RetryContext};
use crate::plugin::host_api::HostState;
use crate::upstream::BackendSet;

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
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
        .map(|()| Features::default()))
}

pub(super) fn backends_changed(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    set: &BackendSet,
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
        .call_backends_changed(store, &infos)
}

pub(super) fn choose(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    stats: &[u32],
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
        retry.as_ref(),
    )?;
    Ok(match decision {
        wit::Decision::Pick(pick) => Decision::Pick(Pick {
            backend: pick.backend,
            upstream_headers: headers(pick.upstream_headers),
            downstream_headers: headers(pick.downstream_headers),
            ..Pick::default()
        }),
        wit::Decision::Reject(status) => Decision::Reject {
            status,
            headers: Vec::new(),
        },
        wit::Decision::NoOpinion => Decision::NoOpinion,
    })
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
}

impl types::Host for HostState {}

super::request_glue!(types {});

super::kv_glue!(kv);
