//! The admin listener: a separate port (default 127.0.0.1:9901) for operators and scrapers.
//!
//! - `GET /admin/plugin`: the plugin in force (path, sha256, loaded at, decisions, failures,
//!   state), the last refused reload, the key-value store's usage and decisions by who made
//!   them, as JSON;
//! - `POST /admin/plugin/reload`: re-read the plugin file now; 200 when applied or unchanged,
//!   422 with the reason when refused (the old version keeps serving);
//! - `POST /admin/reload`: re-read the config file, the plugin and the TLS certificates, as
//!   SIGHUP does; 200 or 422 likewise;
//! - `/admin/plugin/canary`: a canary plugin — start, follow, promote, abort ([`canary`]);
//! - `/admin/plugin/shadow`: shadow plugins — list, start, stop ([`shadow`] lists the
//!   endpoints);
//! - `GET`/`POST /admin/record`: recording a sample of routing decisions for `lbx replay`
//!   — its state, switching it on and off ([`record`]);
//! - `GET /admin/plugin/history`, `POST /admin/plugin/rollback`: the plugin versions put in
//!   force, and going back to one ([`plugin_history`]);
//! - `/admin/backends`: the backend set with live stats and traffic figures (responses by class,
//!   errors, retries, bytes, latency histograms) and, with `[signals]`, each backend's scraped
//!   signals; adding, changing, draining and removing backends at runtime ([`backends`] lists
//!   the endpoints); `GET /admin/reloads`: the reload history;
//! - `GET /admin/discovery`: the DNS names backends are discovered from, and how their
//!   lookups fare ([`discovery`]);
//! - `GET /metrics`: Prometheus text format;
//! - `GET /live`, `GET /ready`: liveness and readiness probes ([`probes`]; no token needed);
//! - `GET /`: the live dashboard, a static page polling the endpoints above (`dashboard.rs`).
//!
//! Who may call it: the admin API answers only requests whose `Host` (and `Origin`, when a
//! browser sends one) names a loopback address or one of `[admin] allowed_hosts` — a web page
//! cannot reach it through a DNS name rebound to 127.0.0.1, nor post to it across sites. With
//! `[admin] token_file`, every request must also carry `Authorization: Bearer <token>`, but
//! for the probes (why: [`probes`]) and the dashboard's files (they hold no data; the page asks
//! for the token); without one, lbx refuses to start the admin API on a non-loopback address.
//! A request head must
//! arrive within `[timeouts] request_headers`, as on the proxy port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

mod access;
mod backends;
mod canary;
mod dashboard;
mod discovery;
mod fleet;
mod json_body;
mod plugin_history;
pub mod probes;
mod record;
mod shadow;
mod signals;
mod traffic;

pub use access::Access;
pub use probes::Readiness;

use crate::accept::accept_loop;
use crate::canary::Canaries;
use crate::fleet::FleetNode;
use crate::metrics::Metrics;
use crate::plugin::{Decider, KvStore};
use crate::recording::Recording;
use crate::reload::{Outcome, Reloader, VersionSource};
use crate::shadow::Shadows;
use crate::shutdown::StopReceiver;
use crate::signals::Scraper;
use crate::upstream::Upstreams;

/// What the admin endpoints read and act on.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The decider (plugin in force, breaker, fallback).
    pub decider: Arc<Decider>,
    /// The shadow plugins running beside it.
    pub shadows: Arc<Shadows>,
    /// The decision recorder.
    pub recording: Arc<Recording>,
    /// The canary in progress (or the last one).
    pub canaries: Arc<Canaries>,
    /// Reloads on request.
    pub reloader: Arc<Reloader>,
    /// The backend table.
    pub upstreams: Arc<Upstreams>,
    /// The backend signals in force (shown per backend).
    pub signals: Arc<Scraper>,
    /// The plugins' key-value store.
    pub kv: Arc<KvStore>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Who may use it.
    pub access: Access,
    /// Time a client has to send a request head (and a keep-alive connection may idle).
    pub header_timeout: Duration,
    /// What `/ready` reports.
    pub readiness: Readiness,
    /// This node of its fleet, in fleet mode.
    pub fleet: Option<Arc<FleetNode>>,
}

/// Serve the admin API on `listener` until `stop`. The server raises `stop` when the proxy's
/// drain ends, not when shutdown starts, so `/ready` answers 503 throughout the drain. Open
/// admin connections are dropped then: nothing there needs to drain.
pub async fn serve(listener: TcpListener, admin: Admin, mut stop: StopReceiver) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(admin = %addr, "admin API listening");
    }
    accept_loop(&listener, &mut stop, "admin", |stream, peer| {
        let admin = admin.clone();
        async move {
            let header_timeout = admin.header_timeout;
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.handle(request).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(client = %peer, error = %e, "admin connection ended with an error");
            }
        }
    })
    .await;
}

impl Admin {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let refusal = if probes::is_probe(path) || dashboard::is_dashboard(path) {
            self.access.host_refusal(&request)
        } else {
            self.access.refusal(&request)
        };
        if let Some(refusal) = refusal {
            return refusal;
        }
        if path == "/admin/backends" || path.starts_with("/admin/backends/") {
            // In fleet mode, changes go to the fleet's store; reads are this node's.
            if let Some(fleet) = &self.fleet
                && matches!(
                    *request.method(),
                    Method::POST | Method::PATCH | Method::DELETE
                )
            {
                return fleet::backend_write(fleet, request).await;
            }
            return backends::handle(self, request).await;
        }
        if path == record::PATH {
            return record::handle(self, request).await;
        }
        if shadow::is_shadow(path) {
            return shadow::handle(self, request).await;
        }
        if canary::is_canary(path) {
            return canary::handle(self, request).await;
        }
        if fleet::is_fleet(path) {
            return fleet::handle(self, request).await;
        }
        if path == "/admin/plugin/rollback" && request.method() == Method::POST {
            return plugin_history::rollback(self, request).await;
        }
        match (request.method(), path) {
            (&Method::GET, _) if dashboard::is_dashboard(path) => dashboard::file(path),
            (&Method::GET, "/admin/plugin") => json_response(StatusCode::OK, self.plugin_status()),
            (&Method::POST, "/admin/plugin/reload") => self.reload().await,
            (&Method::POST, "/admin/reload") => self.reload_all().await,
            (&Method::GET, "/admin/plugin/history") => plugin_history::history(self),
            (&Method::GET, "/admin/reloads") => backends::reloads(self),
            (&Method::GET, discovery::PATH) => discovery::report(self),
            (&Method::GET, "/metrics") => Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .body(Full::new(Bytes::from(self.metrics.render())))
                .expect("static response parts are valid"),
            (&Method::GET | &Method::HEAD, probes::LIVE) => probes::live(),
            (&Method::GET | &Method::HEAD, probes::READY) => probes::ready(&self.readiness),
            (_, probes::LIVE | probes::READY) => method_not_allowed("GET, HEAD"),
            (
                _,
                "/admin/plugin"
                | "/admin/plugin/history"
                | "/admin/reloads"
                | "/metrics"
                | discovery::PATH,
            ) => method_not_allowed("GET"),
            (_, _) if dashboard::is_dashboard(path) => method_not_allowed("GET"),
            (_, "/admin/plugin/reload" | "/admin/plugin/rollback" | "/admin/reload") => {
                method_not_allowed("POST")
            }
            _ => text_response(
                StatusCode::NOT_FOUND,
                "not found; try /, /admin/plugin, /admin/backends, /metrics\n",
            ),
        }
    }

    pub(crate) fn plugin_status(&self) -> serde_json::Value {
        let mut status = self.plugin_state();
        traffic::add_decisions(&mut status, self.decider.metrics());
        status["shadows"] = json!(self.shadows.reports());
        status["record"] = json!(self.recording.status());
        status["canary"] = json!(self.canaries.report());
        status
    }

    fn plugin_state(&self) -> serde_json::Value {
        let (keys, bytes) = self.kv.usage();
        let kv = json!({ "keys": keys, "bytes": bytes });
        let last_refused_reload = self.reloader.last_refusal();
        let Some(plugin) = self.decider.current() else {
            return json!({
                "state": "none",
                "detail": "no plugin: the built-in least-in-flight fallback routes",
                "last_refused_reload": last_refused_reload,
                "kv": kv,
            });
        };
        let (decisions, failures) = plugin.counts();
        let state = if self.decider.breaker().is_open() {
            "disabled"
        } else {
            "active"
        };
        let loaded_at = plugin.loaded_at();
        json!({
            "state": state,
            "path": plugin.name(),
            "sha256": plugin.sha256(),
            "loaded_at": humantime::format_rfc3339_millis(loaded_at).to_string(),
            "decisions": decisions,
            "failures": failures,
            "deadline_ms": plugin.options().limits.deadline.as_secs_f64() * 1000.0,
            "memory_limit_bytes": plugin.options().limits.memory_bytes,
            "last_refused_reload": last_refused_reload,
            "kv": kv,
        })
    }

    /// Config, plugin and certificates together, as SIGHUP does.
    async fn reload_all(&self) -> Response<Full<Bytes>> {
        match self.reloader.reload_all(VersionSource::Api).await {
            Ok(Outcome::Applied(what)) => json_response(
                StatusCode::OK,
                json!({ "result": "applied", "detail": what }),
            ),
            Ok(Outcome::Unchanged) => {
                json_response(StatusCode::OK, json!({ "result": "unchanged" }))
            }
            Err(refused) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "result": "refused", "reason": refused.0 }),
            ),
        }
    }

    async fn reload(&self) -> Response<Full<Bytes>> {
        match self.reloader.reload_plugin(VersionSource::Api).await {
            Ok(Outcome::Applied(what)) => json_response(
                StatusCode::OK,
                json!({ "result": "applied", "detail": what, "plugin": self.plugin_status() }),
            ),
            Ok(Outcome::Unchanged) => json_response(
                StatusCode::OK,
                json!({ "result": "unchanged", "plugin": self.plugin_status() }),
            ),
            Err(refused) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "result": "refused", "reason": refused.0 }),
            ),
        }
    }
}

/// Bind the admin listener (fails start if the port is taken, like the proxy's own).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the admin API ([admin] listen)"))
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(&body).expect("JSON values serialise");
    text.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("static response parts are valid")
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}
