//! The request path: ask the router where a request goes, rewrite it for the backend, relay
//! the response, and account for it (in-flight, latency, failures, access log).

mod body;
mod error;
mod headers;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;

pub use body::{AccessLog, ProxyBody, RelayedBody};
pub use error::ProxyError;
pub use listener::serve;

use crate::config::UpstreamConfig;
use crate::plugin::{RequestMeta, Route, Routed, Router};
use crate::upstream::{BackendSet, Ejection, SendError, Upstreams};

/// Everything the request path needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    router: Arc<Router>,
    settings: UpstreamConfig,
}

impl Proxy {
    /// A proxy over these backends, routed by `router`.
    pub fn new(upstreams: Arc<Upstreams>, router: Arc<Router>, settings: UpstreamConfig) -> Self {
        Self {
            upstreams,
            router,
            settings,
        }
    }

    /// The backend table this proxy routes over.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// Serve one request from `client`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let set = self.upstreams.snapshot();
        let (parts, body) = request.into_parts();
        let (meta, routed) = self
            .router
            .route(RequestMeta { parts, client }, &set, 0, &[]);
        let mut parts = meta.parts;
        let mut log = AccessLog::enabled().then(|| AccessLog {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            status: http::StatusCode::OK,
            backend: None,
            started,
            decision: routed.elapsed,
            decided_by: routed.decided_by,
        });
        let Routed { route, .. } = routed;
        let (index, upstream_headers, downstream_headers) = match route {
            Route::Forward {
                index,
                upstream_headers,
                downstream_headers,
            } => (index, upstream_headers, downstream_headers),
            Route::Reject(status) => return respond_error(ProxyError::Rejected(status), log),
            Route::NoUsableBackend => return respond_error(ProxyError::NoUsableBackend, log),
        };
        let backend = &set.backends[index];

        // Host is preserved; an HTTP/2 client sends `:authority` instead, which becomes Host.
        let host = parts.headers.get(HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        headers::strip_hop_by_hop(&mut parts.headers);
        headers::add_forwarded(&mut parts.headers, client.ip(), host.as_ref());
        if let Some(host) = host {
            parts.headers.insert(HOST, host);
        }
        for (name, value) in upstream_headers {
            parts.headers.append(name, value);
        }
        parts.uri = upstream_uri(&parts.uri, &backend.authority);
        parts.version = Version::HTTP_11;

        let in_flight = backend.stats.start_request();
        let upstream_started = Instant::now();
        match backend.pool.send(Request::from_parts(parts, body)).await {
            Ok((response, lease)) => {
                backend.stats.record_success(upstream_started.elapsed());
                let (mut parts, body) = response.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers);
                for (name, value) in downstream_headers {
                    parts.headers.append(name, value);
                }
                if let Some(log) = &mut log {
                    log.status = parts.status;
                    log.backend = Some((set.clone(), index));
                }
                let body = RelayedBody::new(body, lease, in_flight, log);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(e) => {
                drop(in_flight);
                self.note_failure(&set, index);
                if let Some(log) = &mut log {
                    log.backend = Some((set.clone(), index));
                }
                let reason = match e {
                    SendError::Connect { reason, .. } => reason,
                    SendError::Exchange(reason) => reason,
                };
                let error = ProxyError::BackendUnreachable {
                    backend: backend.id.clone(),
                    reason,
                };
                respond_error(error, log)
            }
        }
    }

    fn note_failure(&self, set: &BackendSet, index: usize) {
        let backend = &set.backends[index];
        let ejection = backend
            .stats
            .record_failure(self.settings.eject_after_failures, self.settings.eject_for);
        if let Ejection::Ejected { failures } = ejection {
            tracing::warn!(
                backend = %backend.id,
                failures,
                for_secs = self.settings.eject_for.as_secs_f64(),
                "backend ejected after consecutive failures"
            );
        }
    }
}

fn respond_error(error: ProxyError, log: Option<AccessLog>) -> Response<ProxyBody> {
    let response = error.to_response();
    if let Some(mut log) = log {
        log.status = response.status();
        log.emit(true);
    }
    response.map(Either::Right)
}

/// `http://<backend>/<the client's path and query>`.
fn upstream_uri(original: &Uri, backend: &http::uri::Authority) -> Uri {
    let path = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(backend.clone())
        .path_and_query(path)
        .build()
        .expect("scheme, authority and path are each valid")
}
