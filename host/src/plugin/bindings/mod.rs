//! Everything generated from the WIT contracts lives under here: one `bindgen!` per contract
//! version (`v0_1`, `v0_2`), each with the glue that forwards the plugin's imports to
//! [`HostState`] and converts its answers into the host's own types ([`super::decision`]). The
//! rest of the crate sees only [`Pre`] and [`Instance`], which hide which version a plugin
//! speaks.

mod v0_1;
mod v0_2;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::decision::{Contract, Decision, Features, RetryContext};
use super::host_api::HostState;
use crate::outcome::Outcome;
use crate::upstream::BackendSet;

/// Marker type for the guest's handle on the current request. The handle carries no data: a
/// store serves one decision at a time, and the request it is about sits in the store's
/// `HostState`.
#[derive(Debug)]
pub struct RequestHandle;

/// Define every contract version's imports in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    v0_1::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

/// A linked plugin of either contract version, ready to instantiate.
pub enum Pre {
    /// `lbx:router@0.1.0`.
    V0_1(v0_1::PluginPre<HostState>),
    /// `lbx:router@0.2.0`.
    V0_2(v0_2::PluginPre<HostState>),
}

impl Pre {
    /// The version the component exports a router for (0.2 preferred), or why it exports none.
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        match v0_2::PluginPre::new(pre.clone()) {
            Ok(pre) => Ok(Pre::V0_2(pre)),
            Err(newer) => v0_1::PluginPre::new(pre).map(Pre::V0_1).map_err(|older| {
                wasmtime::format_err!(
                    "it does not export lbx:router/router@0.2.0 ({newer}) nor \
                     lbx:router/router@0.1.0 ({older})"
                )
            }),
        }
    }

    /// The contract version.
    pub fn contract(&self) -> Contract {
        match self {
            Pre::V0_1(_) => Contract::V0_1,
            Pre::V0_2(_) => Contract::V0_2,
        }
    }

    /// A new instance in `store`.
    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate(store)?),
        })
    }
}

/// One live plugin instance of either contract version.
pub enum Instance {
    /// `lbx:router@0.1.0`.
    V0_1(v0_1::Plugin),
    /// `lbx:router@0.2.0`.
    V0_2(v0_2::Plugin),
}

impl Instance {
    /// Run `init`: the plugin's features, or its refusal.
    pub fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Features, String>> {
        match self {
            Instance::V0_1(plugin) => v0_1::init(plugin, store, config),
            Instance::V0_2(plugin) => v0_2::init(plugin, store, config),
        }
    }

    /// Tell the plugin the backend set (and, from 0.2, the names of the signal slots).
    pub fn backends_changed(
        &self,
        store: &mut Store<HostState>,
        set: &BackendSet,
        signal_names: &[String],
    ) -> wasmtime::Result<()> {
        match self {
            Instance::V0_1(plugin) => v0_1::backends_changed(plugin, store, set),
            Instance::V0_2(plugin) => v0_2::backends_changed(plugin, store, set, signal_names),
        }
    }

    /// Ask for a decision; the request sits in the store's state. `signals` is `None` when
    /// none are configured: an absent list is free to pass, an empty one costs a call into the
    /// plugin to allocate it.
    pub fn choose(
        &self,
        store: &mut Store<HostState>,
        stats: &[u32],
        signals: Option<&[f64]>,
        retry: Option<&RetryContext>,
    ) -> wasmtime::Result<Decision> {
        match self {
            Instance::V0_1(plugin) => v0_1::choose(plugin, store, stats, retry),
            Instance::V0_2(plugin) => v0_2::choose(plugin, store, stats, signals, retry),
        }
    }

    /// Tell the plugin how an attempt on backend `index` went (0.2 only; 0.1 has no feedback).
    pub fn on_outcome(
        &self,
        store: &mut Store<HostState>,
        index: u32,
        outcome: &Outcome,
        tag: u64,
    ) -> wasmtime::Result<()> {
        match self {
            Instance::V0_1(_) => Ok(()),
            Instance::V0_2(plugin) => v0_2::on_outcome(plugin, store, index, outcome, tag),
        }
    }
}

/// A backend's identity as every contract version describes it.
struct Identity {
    id: String,
    address: String,
    weight: u32,
    labels: Vec<(String, String)>,
}

fn identities(set: &BackendSet) -> impl Iterator<Item = Identity> + '_ {
    set.backends.iter().map(|b| Identity {
        id: b.spec.id.clone(),
        address: b.spec.authority.to_string(),
        weight: b.spec.weight,
        labels: b.spec.labels.clone(),
    })
}

/// A WIT log level in tracing's terms (the same five levels in both versions).
macro_rules! tracing_level {
    ($level:expr, $ty:ty) => {{
        type L = $ty;
        match $level {
            L::Trace => tracing::Level::TRACE,
            L::Debug => tracing::Level::DEBUG,
            L::Info => tracing::Level::INFO,
            L::Warn => tracing::Level::WARN,
            L::Error => tracing::Level::ERROR,
        }
    }};
}
use tracing_level;

/// The `request` resource's methods every contract version has, forwarded to [`HostState`];
/// a version's own methods follow in the braces. One body for every version's generated
/// `HostRequest` trait, which are distinct types with the same methods.
macro_rules! request_glue {
    ($types:ident { $($own:tt)* }) => {
        impl $types::HostRequest for $crate::plugin::host_api::HostState {
            fn method(&mut self, _: $crate::plugin::bindings::Handle) -> String {
                Self::method(self)
            }

            fn path(&mut self, _: $crate::plugin::bindings::Handle) -> String {
                Self::path(self)
            }

            fn query(&mut self, _: $crate::plugin::bindings::Handle) -> Option<String> {
                Self::query(self)
            }

            fn authority(&mut self, _: $crate::plugin::bindings::Handle) -> Option<String> {
                Self::authority(self)
            }

            fn header(&mut self, _: $crate::plugin::bindings::Handle, name: String) -> Option<String> {
                Self::header(self, &name)
            }

            fn cookie(&mut self, _: $crate::plugin::bindings::Handle, name: String) -> Option<String> {
                Self::cookie(self, &name)
            }

            fn client_ip(&mut self, _: $crate::plugin::bindings::Handle) -> String {
                Self::client_ip(self)
            }

            fn client_port(&mut self, _: $crate::plugin::bindings::Handle) -> u16 {
                Self::client_port(self)
            }

            fn drop(&mut self, _: $crate::plugin::bindings::Handle) -> wasmtime::Result<()> {
                // Handles are only ever lent to the guest (`borrow<request>`), never owned by it.
                Ok(())
            }

            $($own)*
        }
    };
}
use request_glue;

/// The guest's handle on the request, as every version's glue receives it.
pub(super) type Handle = wasmtime::component::Resource<RequestHandle>;

/// The `kv` interface (the same in every version), forwarded to the host's store.
macro_rules! kv_glue {
    ($kv:ident) => {
        impl $kv::Host for $crate::plugin::host_api::HostState {
            fn get(&mut self, key: String) -> Option<Vec<u8>> {
                self.kv.get(&key)
            }

            fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), $kv::KvError> {
                self.kv.set(key, value).map_err(kv_error)
            }

            fn insert(&mut self, key: String, value: Vec<u8>) -> Result<bool, $kv::KvError> {
                self.kv.insert(key, value).map_err(kv_error)
            }

            fn delete(&mut self, key: String) -> bool {
                self.kv.delete(&key)
            }

            fn increment(&mut self, key: String, delta: i64) -> Result<i64, $kv::KvError> {
                self.kv.increment(key, delta).map_err(kv_error)
            }
        }

        fn kv_error(error: $crate::plugin::kv::KvError) -> $kv::KvError {
            match error {
                $crate::plugin::kv::KvError::KeyTooLong => $kv::KvError::KeyTooLong,
                $crate::plugin::kv::KvError::StoreFull => $kv::KvError::StoreFull,
            }
        }
    };
}
use kv_glue;
