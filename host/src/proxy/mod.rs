//! The request path: ask the router where a request goes, rewrite it for the backend, relay
//! the response, and account for it (in-flight, latency, failures, access log). A failed
//! attempt is retried on another backend when that is safe and the retry budget allows.

mod body;
mod error;
mod headers;
mod listener;
mod retry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;

pub use body::{AccessLog, ProxyBody, RelayedBody};
pub use error::ProxyError;
pub use listener::serve;

use crate::config::{OutlierConfig, RetryConfig, TimeoutConfig};
use crate::plugin::{RequestMeta, Route, Router};
use crate::upstream::{
    Backend, BackendSet, Ejection, ReplayBody, SendError, UpstreamBody, Upstreams,
};
use retry::{RetryBudget, is_idempotent};

/// The failure-handling settings the request path uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policies {
    /// Timeouts.
    pub timeouts: TimeoutConfig,
    /// Passive health.
    pub outlier: OutlierConfig,
    /// Retries.
    pub retry: RetryConfig,
}

/// Everything the request path needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    router: Arc<Router>,
    policies: Policies,
    retry_budget: RetryBudget,
}

/// How one attempt ended without a response to relay.
enum AttemptFailure {
    /// Not written at all: the request comes back and may go anywhere else.
    Unsent(ProxyError, Box<Request<UpstreamBody>>),
    /// Written, at least in part: only a replay-safe request may be sent again.
    Sent(ProxyError),
    /// The request's overall deadline passed: no time left for anything else.
    Deadline(ProxyError),
}

impl Proxy {
    /// A proxy over these backends, routed by `router`.
    pub fn new(upstreams: Arc<Upstreams>, router: Arc<Router>, policies: Policies) -> Self {
        Self {
            upstreams,
            router,
            retry_budget: RetryBudget::new(&policies.retry),
            policies,
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
        let mut log = AccessLog::enabled().then(|| AccessLog::new(&request, started));
        // The overall deadline is enforced by each attempt (the only waits in `forward`), so
        // a request arms one timer per attempt rather than two.
        let deadline = tokio::time::Instant::from_std(started) + self.policies.timeouts.request;
        match self.forward(request, client, deadline, &mut log).await {
            Ok(response) => response,
            Err(error) => respond_error(error, log),
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
        deadline: tokio::time::Instant,
        log: &mut Option<AccessLog>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        self.retry_budget.record_request();
        let set = self.upstreams.snapshot();
        let (parts, body) = request.into_parts();
        let retry = &self.policies.retry;
        // A request that reached a backend may be sent again only if its method is idempotent
        // or the operator opted in; its body must be empty or recorded (and still within the
        // recording limit when the retry comes).
        let may_replay_sent = is_idempotent(&parts.method) || retry.non_idempotent;
        let mut body = if retry.max_attempts > 1
            && may_replay_sent
            && !body.is_end_stream()
            && body.size_hint().lower() <= retry.replay_limit_bytes as u64
        {
            UpstreamBody::Replayable(ReplayBody::new(body, retry.replay_limit_bytes))
        } else {
            UpstreamBody::Streaming(body)
        };
        // Each attempt rewrites the request, so later attempts start from a copy of the
        // original. Only kept when a retry is possible at all.
        let original = (retry.max_attempts > 1).then(|| copy_parts(&parts));
        let mut meta = RequestMeta { parts, client };
        let mut tried: Vec<u32> = Vec::new();

        for attempt in 0.. {
            let (returned, routed) = self.router.route(meta, &set, attempt, &tried);
            if let Some(log) = log.as_mut() {
                log.decision += routed.elapsed;
                log.decided_by = routed.decided_by;
            }
            let (index, upstream_headers, downstream_headers) = match routed.route {
                Route::Forward {
                    index,
                    upstream_headers,
                    downstream_headers,
                } => (index, upstream_headers, downstream_headers),
                Route::Reject(status) => return Err(ProxyError::Rejected(status)),
                Route::NoUsableBackend => return Err(ProxyError::NoUsableBackend),
            };
            let backend = &set.backends[index];
            if let Some(log) = log.as_mut() {
                log.backend = Some((set.clone(), index));
            }
            let mut parts = returned.parts;
            rewrite_for_backend(&mut parts, client, backend, upstream_headers);
            let spare = if may_replay_sent { body.replay() } else { None };

            let failure = match self
                .attempt(backend, Request::from_parts(parts, body), deadline)
                .await
            {
                Ok((response, lease, in_flight)) => {
                    let (mut parts, body) = response.into_parts();
                    if parts.status.is_server_error() && self.policies.outlier.count_5xx {
                        self.note_failure(&set, index);
                    }
                    headers::strip_hop_by_hop(&mut parts.headers);
                    for (name, value) in downstream_headers {
                        parts.headers.append(name, value);
                    }
                    let mut log = log.take();
                    if let Some(log) = &mut log {
                        log.status = parts.status;
                    }
                    let body = RelayedBody::new(body, lease, in_flight, log);
                    return Ok(Response::from_parts(parts, Either::Left(body)));
                }
                Err(failure) => failure,
            };
            self.note_failure(&set, index);
            let (error, next_body) = match failure {
                AttemptFailure::Unsent(error, request) => (error, Some(request.into_body())),
                // Asked only now: the recording may have overflowed during the attempt.
                AttemptFailure::Sent(error) => (error, spare.and_then(|spare| spare.replay())),
                AttemptFailure::Deadline(error) => (error, None),
            };
            tried.push(index as u32);
            // Retrying makes sense only on a backend that has not failed this request yet.
            let untried_left = set
                .backends
                .iter()
                .enumerate()
                .any(|(i, b)| b.is_usable() && !tried.contains(&(i as u32)));
            let can_retry = attempt + 1 < self.policies.retry.max_attempts
                && untried_left
                && next_body.is_some()
                && original.is_some();
            if !can_retry || !self.retry_budget.try_retry() {
                return Err(error);
            }
            tracing::debug!(backend = %backend.id, attempt, %error, "retrying on another backend");
            body = next_body.expect("checked above");
            meta = RequestMeta {
                parts: copy_parts(original.as_ref().expect("checked above")),
                client,
            };
        }
        unreachable!("the attempt loop only ends by returning")
    }

    /// Send one attempt to `backend`, within the response-headers timeout.
    async fn attempt(
        &self,
        backend: &Backend,
        request: Request<UpstreamBody>,
        deadline: tokio::time::Instant,
    ) -> Result<
        (
            Response<Incoming>,
            crate::upstream::Lease,
            crate::upstream::InFlight,
        ),
        AttemptFailure,
    > {
        let in_flight = backend.stats.start_request();
        let sent_at = Instant::now();
        let timeout = self.policies.timeouts.response_headers;
        let attempt_deadline = deadline.min(tokio::time::Instant::from_std(sent_at) + timeout);
        match tokio::time::timeout_at(attempt_deadline, backend.pool.send(request)).await {
            Ok(Ok((response, lease))) => {
                if !response.status().is_server_error() {
                    backend.stats.record_success(sent_at.elapsed());
                }
                Ok((response, lease, in_flight))
            }
            Ok(Err(SendError::Connect { reason, request })) => Err(AttemptFailure::Unsent(
                ProxyError::BackendUnreachable {
                    backend: backend.id.clone(),
                    reason,
                },
                request,
            )),
            Ok(Err(SendError::Exchange(reason))) => {
                Err(AttemptFailure::Sent(ProxyError::BackendUnreachable {
                    backend: backend.id.clone(),
                    reason,
                }))
            }
            Err(_) if attempt_deadline == deadline => {
                Err(AttemptFailure::Deadline(ProxyError::Deadline {
                    after: self.policies.timeouts.request,
                }))
            }
            Err(_) => Err(AttemptFailure::Sent(ProxyError::BackendTimeout {
                backend: backend.id.clone(),
                after: timeout,
            })),
        }
    }

    fn note_failure(&self, set: &BackendSet, index: usize) {
        let backend = &set.backends[index];
        let outlier = &self.policies.outlier;
        let may_eject = set.may_eject_another(outlier.max_ejection_percent);
        match backend.stats.record_failure(outlier, may_eject) {
            Ejection::Ejected { failures, duration } => tracing::warn!(
                backend = %backend.id,
                failures,
                ejected_for_secs = duration.as_secs_f64(),
                "backend ejected after consecutive failures"
            ),
            Ejection::Spared { failures } => tracing::warn!(
                backend = %backend.id,
                failures,
                max_ejection_percent = outlier.max_ejection_percent,
                "backend keeps failing but is not ejected: too many backends are already out"
            ),
            Ejection::NotEjected => {}
        }
    }
}

/// Make the client's request one for `backend`: hop-by-hop headers out, forwarding headers
/// in, Host preserved (an HTTP/2 client's `:authority` becomes Host), origin-form target.
fn rewrite_for_backend(
    parts: &mut Parts,
    client: SocketAddr,
    backend: &Backend,
    upstream_headers: Vec<(HeaderName, HeaderValue)>,
) {
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
}

/// A copy of a request head (extensions are not carried: lbx sets none).
fn copy_parts(parts: &Parts) -> Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
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
