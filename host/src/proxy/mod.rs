//! The request path: ask the router where a request goes, send it to that backend over one of
//! its pooled HTTP/1.1 connections, relay interim and final responses, and account for the
//! outcome. A failed attempt is retried on another backend when that is safe and the retry
//! budget allows.
//!
//! Every failure is classified before anything is counted ([`error::Fault`]): the client's own
//! faults (malformed request or body, gone, too slow) end the request without touching backend
//! statistics, ejection, retries or the retry budget.

mod access_log;
mod client_body;
mod client_h1;
mod client_h2;
mod connection;
mod error;
mod headers;
mod listener;
mod outlier;
mod relay;
mod request;
mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{Method, StatusCode};

pub use access_log::AccessLog;
pub use client_body::{BodyFeed, ClientBodyError, ClientSource, H1Body, H2Body, NoBody};
pub use connection::ConnectionInfo;
pub use error::{Fault, ProxyError};
pub use listener::{Listener, Role, serve};
pub use relay::RelayedBody;
pub use request::{ClientRequest, RequestBody, RequestId};

use crate::config::{OutlierConfig, ProxyConfig, RetryConfig, TimeoutConfig};
use crate::http1::BodyEncoding;
use crate::message::ResponseHead;
use crate::plugin::{RequestMeta, Route, Router};
use crate::upstream::{
    Backend, ConnectError, Exchange, ExchangeError, ExchangeTimeouts, InFlight, OutgoingRequest,
    Step, Upstreams,
};
use headers::{UpstreamFraming, client_response_head, write_upstream_head};
use outlier::note_failure;
use relay::ServedBy;
use retry::{RetryBudget, is_idempotent};

/// How long a request body waits for the backend's `100 Continue` before it is sent anyway
/// (curl waits 1 s too).
const EXPECT_WAIT: Duration = Duration::from_secs(1);

/// The settings the request path uses.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Timeouts.
    pub timeouts: TimeoutConfig,
    /// Passive health.
    pub outlier: OutlierConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Forwarding headers and trusted proxies.
    pub proxy: ProxyConfig,
}

/// Everything the request path needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    router: Arc<Router>,
    policies: Policies,
    retry_budget: RetryBudget,
}

/// Where 1xx responses go: an HTTP/1.1 client connection relays them; HTTP/2 and HTTP/1.0
/// clients get none.
pub trait InterimSink {
    /// Whether the client can be sent interim responses at all.
    fn accepts_interim(&self) -> bool;
    /// Send one interim response head.
    fn send_interim(
        &mut self,
        head: &ResponseHead,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// A client that cannot receive interim responses.
#[derive(Debug)]
pub struct NoInterim;

impl InterimSink for NoInterim {
    fn accepts_interim(&self) -> bool {
        false
    }

    async fn send_interim(&mut self, _: &ResponseHead) -> std::io::Result<()> {
        Ok(())
    }
}

/// A backend's response on its way to the client.
#[derive(Debug)]
pub struct Forwarded {
    /// The head for the client (hop-by-hop fields removed, plugin fields added).
    pub head: ResponseHead,
    /// The body, streamed from the backend.
    pub body: RelayedBody,
    /// Whether the client's request body was read to its end (if not, the client connection
    /// cannot carry another request).
    pub request_complete: bool,
}

/// How one attempt ended without a response to relay.
enum AttemptError {
    /// Nothing was sent (no connection): the request may go anywhere else.
    Unsent(ProxyError),
    /// Sent, at least in part: only a replay-safe request may go again.
    Sent(ProxyError),
    /// Nothing more may be tried (the client's fault, or the deadline).
    Final(ProxyError),
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

    /// The settings in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Serve one request: its body comes from `source`, interim responses go to `interim`.
    /// An error is logged (with the request id) and access-logged here; the caller answers
    /// the client with [`ProxyError::response`].
    pub async fn handle<S: ClientSource, I: InterimSink>(
        &self,
        request: ClientRequest,
        source: &mut S,
        interim: &mut I,
    ) -> Result<Forwarded, ProxyError> {
        let id = request.id;
        let mut log = AccessLog::enabled().then(|| {
            AccessLog::new(
                id,
                &request.head.method,
                &request.head.target,
                request.received_at,
            )
        });
        let result = self.forward(request, source, interim, &mut log).await;
        if let Err(error) = &result {
            error.log(id);
            if let Some(mut log) = log {
                log.status = error
                    .status()
                    .unwrap_or(StatusCode::from_u16(499).expect("499 is a valid code"));
                log.emit(false);
            }
        }
        result
    }

    async fn forward<S: ClientSource, I: InterimSink>(
        &self,
        request: ClientRequest,
        source: &mut S,
        interim: &mut I,
        log: &mut Option<AccessLog>,
    ) -> Result<Forwarded, ProxyError> {
        self.retry_budget.record_request();
        let set = self.upstreams.snapshot();
        let retry = &self.policies.retry;
        // A request that reached a backend may go again only if its method is idempotent or
        // the operator opted in, and its body is recorded (within the limit) or empty.
        let may_replay_sent = is_idempotent(&request.head.method) || retry.non_idempotent;
        let record = retry.max_attempts > 1
            && may_replay_sent
            && match request.body {
                RequestBody::None => false,
                RequestBody::Length(n) => n <= retry.replay_limit_bytes as u64,
                RequestBody::Streaming => true,
            };
        let complete_on_arrival = (request.body == RequestBody::None)
            .then(|| tokio::time::Instant::from_std(request.received_at));
        let mut feed = BodyFeed::new(
            source,
            record.then_some(retry.replay_limit_bytes),
            complete_on_arrival,
        );
        let ClientRequest {
            head,
            authority,
            body,
            expect_continue,
            client,
            secure,
            ..
        } = request;
        let mut meta = RequestMeta {
            head,
            authority,
            client,
            secure,
        };
        let mut tried: Vec<u32> = Vec::new();
        let mut continue_relayed = false;

        for attempt in 0.. {
            let (returned, routed) = self.router.route(meta, &set, attempt, &tried);
            meta = returned;
            if let Some(log) = log.as_mut() {
                log.decision += routed.elapsed;
                log.decided_by = routed.decided_by;
                log.attempts = attempt + 1;
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
            // Expect goes upstream only while the client still waits for an answer to it,
            // and only if lbx can relay that answer.
            let expect = expect_continue && !continue_relayed && interim.accepts_interim();
            let mut head = BytesMut::new();
            write_upstream_head(
                &meta,
                &backend.authority,
                &upstream_headers,
                &self.policies.proxy,
                UpstreamFraming {
                    body,
                    expect_continue: expect,
                },
                &mut head,
            );
            let outgoing = OutgoingRequest {
                head: head.freeze(),
                method: meta.head.method.clone(),
                encoding: match body {
                    RequestBody::None => BodyEncoding::Empty,
                    RequestBody::Length(_) => BodyEncoding::Length,
                    RequestBody::Streaming => BodyEncoding::Chunked,
                },
                expect_continue: expect,
            };
            let attempted = self
                .attempt(
                    backend,
                    outgoing,
                    &mut feed,
                    interim,
                    &mut continue_relayed,
                    may_replay_sent,
                )
                .await;
            let failure = match attempted {
                Ok((response, in_flight)) => {
                    let crate::upstream::Response { head, body, .. } = response;
                    let status = head.status;
                    if status.is_server_error() && self.policies.outlier.count_5xx {
                        note_failure(&set, index, &self.policies.outlier);
                    }
                    let has_body = message_has_body(&meta.head.method, status);
                    let head = client_response_head(head, downstream_headers, has_body);
                    let mut log = log.take();
                    if let Some(log) = &mut log {
                        log.status = status;
                    }
                    let served_by = ServedBy {
                        set: set.clone(),
                        index,
                        outlier: self.policies.outlier,
                    };
                    return Ok(Forwarded {
                        head,
                        body: RelayedBody::new(body, served_by, in_flight, log),
                        request_complete: feed.is_complete(),
                    });
                }
                Err(failure) => failure,
            };
            let (error, may_retry) = match failure {
                AttemptError::Unsent(error) => (error, feed.rewind()),
                AttemptError::Sent(error) => (error, may_replay_sent && feed.rewind()),
                AttemptError::Final(error) => return Err(error),
            };
            if error.fault() == Fault::Backend {
                note_failure(&set, index, &self.policies.outlier);
            }
            tried.push(index as u32);
            // Retrying makes sense only on a backend that has not failed this request yet.
            let untried_left = set
                .backends
                .iter()
                .enumerate()
                .any(|(i, b)| b.is_usable() && !tried.contains(&(i as u32)));
            let can_retry = may_retry && attempt + 1 < retry.max_attempts && untried_left;
            if !can_retry || !self.retry_budget.try_retry() {
                return Err(error);
            }
            tracing::debug!(backend = %backend.id, attempt, %error, "retrying on another backend");
        }
        unreachable!("the attempt loop only ends by returning")
    }

    /// One attempt on `backend`: a pooled connection (or a new one), the exchange, interim
    /// responses relayed. A pooled connection found closed before it answered is replaced by
    /// a new one once, without counting against the backend.
    async fn attempt<S: ClientSource, I: InterimSink>(
        &self,
        backend: &Backend,
        outgoing: OutgoingRequest,
        feed: &mut BodyFeed<'_, S>,
        interim: &mut I,
        continue_relayed: &mut bool,
        may_replay_sent: bool,
    ) -> Result<(crate::upstream::Response, InFlight), AttemptError> {
        let in_flight = backend.stats.start_request();
        let started = Instant::now();
        let unreachable = |e: ConnectError| {
            AttemptError::Unsent(ProxyError::Unreachable {
                backend: backend.id.clone(),
                reason: e.to_string(),
            })
        };
        let mut conn = match backend.pool.take_idle() {
            Some(conn) => conn,
            None => backend.pool.connect().await.map_err(unreachable)?,
        };
        let timeouts = ExchangeTimeouts {
            response_headers: self.policies.timeouts.response_headers,
            request: self.policies.timeouts.request,
            expect_wait: EXPECT_WAIT,
            backend_idle: self.policies.timeouts.backend_idle,
        };
        let mut replaced_stale = false;
        loop {
            let result = {
                let mut exchange =
                    Exchange::new(conn, backend.pool.clone(), outgoing.clone(), feed, timeouts);
                relay_until_final(&mut exchange, interim, continue_relayed).await
            };
            let error = match result {
                Ok(response) => {
                    if !response.head.status.is_server_error() {
                        backend.stats.record_success(started.elapsed());
                    }
                    return Ok((response, in_flight));
                }
                Err(error) => error,
            };
            if matches!(error, ExchangeError::Stale)
                && !replaced_stale
                && may_replay_sent
                && feed.rewind()
            {
                replaced_stale = true;
                tracing::debug!(backend = %backend.id, "pooled connection was closed by the backend; sending on a new one");
                conn = backend.pool.connect().await.map_err(unreachable)?;
                continue;
            }
            return Err(self.classify(backend, error));
        }
    }

    fn classify(&self, backend: &Backend, error: ExchangeError<ClientBodyError>) -> AttemptError {
        let id = backend.id.clone();
        match error {
            ExchangeError::Client(e) => AttemptError::Final(ProxyError::ClientBody(e)),
            ExchangeError::Deadline => AttemptError::Final(ProxyError::Deadline {
                after: self.policies.timeouts.request,
            }),
            ExchangeError::Stale => AttemptError::Sent(ProxyError::Broken {
                backend: id,
                reason: "reused connection closed before any response".into(),
            }),
            ExchangeError::Broken(reason) => AttemptError::Sent(ProxyError::Broken {
                backend: id,
                reason,
            }),
            ExchangeError::Invalid(e) => AttemptError::Sent(ProxyError::InvalidResponse {
                backend: id,
                reason: e.0.into(),
            }),
            ExchangeError::TimedOut(after) => {
                AttemptError::Sent(ProxyError::BackendTimeout { backend: id, after })
            }
        }
    }
}

/// Drive an exchange to its final response, relaying interim ones: `100 Continue` once, and
/// only to a client that asked for it; other 1xx to any client that can take them (RFC 9110
/// §15.2: a proxy MUST forward 1xx responses).
async fn relay_until_final<S: ClientSource, I: InterimSink>(
    exchange: &mut Exchange<'_, BodyFeed<'_, S>>,
    interim: &mut I,
    continue_relayed: &mut bool,
) -> Result<crate::upstream::Response, ExchangeError<ClientBodyError>> {
    loop {
        match exchange.step().await? {
            Step::Final(response) => return Ok(response),
            Step::Interim(head) => {
                let relay = if head.status == StatusCode::CONTINUE {
                    !std::mem::replace(continue_relayed, true)
                } else {
                    true
                };
                if relay && interim.accepts_interim() {
                    let head = client_response_head(head, Vec::new(), false);
                    interim
                        .send_interim(&head)
                        .await
                        .map_err(|_| ExchangeError::Client(ClientBodyError::Gone))?;
                }
            }
        }
    }
}

/// Whether a response to `method` with `status` has a body at all (RFC 9110 §6.4.1).
fn message_has_body(method: &Method, status: StatusCode) -> bool {
    !(*method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}
