//! What the host offers a plugin: the `request` resource (metadata copied out only on demand),
//! logging and the key-value store. Also the per-store state those imports read.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::StoreLimits;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::lbx::router::{host, kv, types};
use super::bindings::{LogLevel, RequestHandle};
use super::kv::{KvError, KvStore};
use crate::message::RequestHead;

/// The request a decision is about: moved into the store for the call and back out afterwards,
/// so no header is copied unless the plugin asks for it.
#[derive(Debug)]
pub struct RequestMeta {
    /// Method, target, version and header fields of the client's request.
    pub head: RequestHead,
    /// The authority the request is for (Host, `:authority` or an absolute-form target).
    pub authority: Option<Bytes>,
    /// The client's socket address.
    pub client: SocketAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
}

impl RequestMeta {
    /// The request a new plugin version is tried on before it serves: `GET /` for
    /// `lbx-trial.invalid` from 127.0.0.1, with a `User-Agent` and no cookies.
    pub fn synthetic() -> Self {
        let request = http::Request::get("/")
            .header(http::header::HOST, "lbx-trial.invalid")
            .header(http::header::USER_AGENT, "lbx-trial")
            .body(())
            .expect("a static request is valid");
        Self::from_http(&request, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A request that stands in for nothing: holds the place of one lent to a plugin's store.
    /// Allocates nothing.
    pub(super) fn vacant() -> Self {
        Self {
            head: RequestHead {
                method: http::Method::GET,
                target: Bytes::new(),
                version: http::Version::HTTP_11,
                headers: crate::message::Headers::default(),
            },
            authority: None,
            client: SocketAddr::from(([0, 0, 0, 0], 0)),
            secure: false,
        }
    }

    /// The view of an `http::Request` (synthetic requests of `lbx check`, benchmarks): its
    /// path and query as target, its header fields in order, Host as authority.
    pub fn from_http<B>(request: &http::Request<B>, client: SocketAddr) -> Self {
        let headers = crate::message::from_header_map(request.headers());
        let target = request.uri().path_and_query().map_or_else(
            || Bytes::from_static(b"/"),
            |p| Bytes::copy_from_slice(p.as_str().as_bytes()),
        );
        let authority = headers.get("host").cloned();
        Self {
            head: RequestHead {
                method: request.method().clone(),
                target,
                version: request.version(),
                headers,
            },
            authority,
            client,
            secure: false,
        }
    }
}

/// Data of one plugin store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory and instance caps for this store.
    pub limits: StoreLimits,
    /// The request being decided, present only during `choose`.
    pub request: Option<RequestMeta>,
    /// Names the plugin in log lines.
    pub plugin_name: Arc<str>,
    /// The host key-value store (shared by all instances and versions).
    pub kv: Arc<KvStore>,
}

impl HostState {
    /// A store's state with a bare WASI context: no files, environment, network or stdio.
    /// With `inherit_stdio` the plugin's stdout and stderr go to lbx's own (for `lbx check`,
    /// which runs outside the async runtime, so that a Python traceback is visible).
    pub fn new(
        limits: StoreLimits,
        plugin_name: Arc<str>,
        kv: Arc<KvStore>,
        inherit_stdio: bool,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        if inherit_stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            request: None,
            plugin_name,
            kv,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        let plugin = &*self.plugin_name;
        match level {
            LogLevel::Trace => tracing::trace!(target: "lbx::plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "lbx::plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "lbx::plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "lbx::plugin", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "lbx::plugin", plugin, "{message}"),
        }
    }
}

impl types::Host for HostState {}

impl types::HostRequest for HostState {
    fn method(&mut self, _: Resource<RequestHandle>) -> String {
        self.head()
            .map(|h| h.method.to_string())
            .unwrap_or_default()
    }

    fn path(&mut self, _: Resource<RequestHandle>) -> String {
        self.head()
            .map(|h| h.path().to_string())
            .unwrap_or_default()
    }

    fn query(&mut self, _: Resource<RequestHandle>) -> Option<String> {
        self.head()?.query().map(str::to_string)
    }

    fn authority(&mut self, _: Resource<RequestHandle>) -> Option<String> {
        let authority = self.request.as_ref()?.authority.as_ref()?;
        std::str::from_utf8(authority).ok().map(str::to_string)
    }

    fn header(&mut self, _: Resource<RequestHandle>, name: String) -> Option<String> {
        self.head()?.headers.get_str(&name).map(str::to_string)
    }

    fn cookie(&mut self, _: Resource<RequestHandle>, name: String) -> Option<String> {
        self.head()?
            .headers
            .get_all("cookie")
            .filter_map(|h| std::str::from_utf8(h).ok())
            .find_map(|header| find_cookie(header, &name))
            .map(str::to_string)
    }

    fn client_ip(&mut self, _: Resource<RequestHandle>) -> String {
        self.request
            .as_ref()
            .map(|r| r.client.ip().to_string())
            .unwrap_or_default()
    }

    fn client_port(&mut self, _: Resource<RequestHandle>) -> u16 {
        self.request.as_ref().map(|r| r.client.port()).unwrap_or(0)
    }

    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        // Handles are only ever lent to the guest (`borrow<request>`), never owned by it.
        Ok(())
    }
}

impl HostState {
    fn head(&self) -> Option<&RequestHead> {
        self.request.as_ref().map(|r| &r.head)
    }
}

/// The value of cookie `name` in one `Cookie` header (`a=1; b=2`). Same rules as the guest
/// SDK's `cookie_value`: space around names and values is ignored, one pair of quotes stripped.
fn find_cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if key.trim_matches([' ', '\t']) != name {
            return None;
        }
        let value = value.trim_matches([' ', '\t']);
        Some(
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value),
        )
    })
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        self.kv.set(key, value).map_err(wit_kv_error)
    }

    fn insert(&mut self, key: String, value: Vec<u8>) -> Result<bool, kv::KvError> {
        self.kv.insert(key, value).map_err(wit_kv_error)
    }

    fn delete(&mut self, key: String) -> bool {
        self.kv.delete(&key)
    }

    fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::KvError> {
        self.kv.increment(key, delta).map_err(wit_kv_error)
    }
}

fn wit_kv_error(error: KvError) -> kv::KvError {
    match error {
        KvError::KeyTooLong => kv::KvError::KeyTooLong,
        KvError::StoreFull => kv::KvError::StoreFull,
    }
}

#[cfg(test)]
mod tests {
    use super::find_cookie;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "session=abc; lbx_sticky=\"b2\"; sticky =zz";
        assert_eq!(find_cookie(header, "lbx_sticky"), Some("b2"));
        assert_eq!(find_cookie(header, "sticky"), Some("zz"));
        assert_eq!(find_cookie(header, "missing"), None);
    }
}
