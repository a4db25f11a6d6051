//! What the host offers a plugin, in the host's own terms: the request a decision is about
//! (metadata copied out only on demand), logging, the clock and the key-value store, held in
//! the per-store state. The WIT glue of each contract version (`bindings::v0_1`, `v0_2`)
//! forwards the plugin's imports here.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::kv::KvStore;
use super::memory_cap::MemoryCap;
use crate::message::RequestHead;

/// The request a decision is about: moved into the store for the call and back out afterwards,
/// so no header is copied unless the plugin asks for it. (Cloned only for a shadow's sample.)
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Method, target, version and header fields of the client's request.
    pub head: RequestHead,
    /// The authority the request is for (Host, `:authority` or an absolute-form target).
    pub authority: Option<Bytes>,
    /// The client's socket address.
    pub client: SocketAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The first bytes of the body, read before deciding when the plugin's `body_prefix` is
    /// set; `None` when it is off.
    pub body_prefix: Option<Bytes>,
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
            body_prefix: None,
        }
    }

    /// The cookie called `name` from the `Cookie` fields, if the request has it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .get_all("cookie")
            .filter_map(|h| std::str::from_utf8(h).ok())
            .find_map(|header| find_cookie(header, name))
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
            body_prefix: None,
        }
    }
}

/// Data of one plugin store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory and instance caps for this store, and the memory it holds.
    pub limits: MemoryCap,
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
        limits: MemoryCap,
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

impl HostState {
    /// Write a plugin's log line at `level`, tagged with the plugin.
    pub fn log(&self, level: tracing::Level, message: &str) {
        let plugin = &*self.plugin_name;
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "lbx::plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "lbx::plugin", plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "lbx::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "lbx::plugin", plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "lbx::plugin", plugin, "{message}"),
        }
    }

    /// The request's method.
    pub fn method(&self) -> String {
        self.head()
            .map(|h| h.method.to_string())
            .unwrap_or_default()
    }

    /// The request's path, without the query.
    pub fn path(&self) -> String {
        self.head()
            .map(|h| h.path().to_string())
            .unwrap_or_default()
    }

    /// The request's query, without the `?`.
    pub fn query(&self) -> Option<String> {
        self.head()?.query().map(str::to_string)
    }

    /// The authority the request is for.
    pub fn authority(&self) -> Option<String> {
        let authority = self.request.as_ref()?.authority.as_ref()?;
        std::str::from_utf8(authority).ok().map(str::to_string)
    }

    /// The first field called `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head()?.headers.get_str(name).map(str::to_string)
    }

    /// The cookie called `name` from the `Cookie` fields.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.head()?
            .headers
            .get_all("cookie")
            .filter_map(|h| std::str::from_utf8(h).ok())
            .find_map(|header| find_cookie(header, name))
            .map(str::to_string)
    }

    /// The client's IP address as text.
    pub fn client_ip(&self) -> String {
        self.request
            .as_ref()
            .map(|r| r.client.ip().to_string())
            .unwrap_or_default()
    }

    /// The client's TCP port.
    pub fn client_port(&self) -> u16 {
        self.request.as_ref().map(|r| r.client.port()).unwrap_or(0)
    }

    /// The first bytes of the body, when lbx read them before deciding.
    pub fn body_prefix(&self) -> Option<Vec<u8>> {
        self.request
            .as_ref()?
            .body_prefix
            .as_ref()
            .map(|b| b.to_vec())
    }

    /// Microseconds on the process's monotonic clock.
    pub fn now_us(&self) -> u64 {
        monotonic_us()
    }

    fn head(&self) -> Option<&RequestHead> {
        self.request.as_ref().map(|r| &r.head)
    }
}

/// Microseconds since an arbitrary point fixed for the life of the process (the first call):
/// one clock for every instance and version of every plugin.
pub fn monotonic_us() -> u64 {
    static ZERO: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let zero = ZERO.get_or_init(std::time::Instant::now);
    u64::try_from(zero.elapsed().as_micros()).unwrap_or(u64::MAX)
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
