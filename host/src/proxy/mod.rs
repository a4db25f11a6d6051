//! The request path: ask the decider where a request goes, send it to that backend over one of
//! its pooled connections (HTTP/1.1 or HTTP/2, see [`attempt`]), relay interim and final
//! responses, and account for the outcome. A failed attempt is retried on another backend when that is safe and the retry
//! budget allows.
//!
//! Every failure is classified before anything is counted ([`error::Fault`]): the client's own
//! faults (malformed request or body, gone, too slow) end the request without touching backend
//! statistics, ejection, retries or the retry budget.

mod access_log;
mod attempt;
mod client_body;
mod client_h1;
mod client_h2;
mod connection;
mod error;
mod headers;
mod listener;
mod metrics;
mod record;
mod relay;
mod request;
mod request_side;
mod retry;
mod tunnel;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::StatusCode;

pub use access_log::{AccessLog, AccessLogSettings};
pub use client_body::{BodyFeed, ClientBodyError, ClientSource, H1Body, H2Body};
pub use connection::ConnectionInfo;
pub use error::{Fault, ProxyError};
pub use listener::{Listener, Role, serve};
pub use metrics::{ClientProtocol, ConnectionMetrics, ListenerKind};
pub use relay::RelayedBody;
pub use request::{ClientRequest, RequestBody, RequestId};
pub use request_side::RequestSide;

use crate::canary::Canaries;
use crate::config::{OutlierConfig, ProxyConfig, RetryConfig, TimeoutConfig};
use crate::http1::parse::response_has_body;
use crate::message::ResponseHead;
use crate::metrics::RegisterMetrics;
use crate::outcome::Outcome;
use crate::plugin::{Decider, RequestCtx, RequestMeta, Route};
use crate::recording::Recording;
use crate::shadow::Shadows;
use crate::upstream::BackendSet;
use crate::upstream::Upstreams;
use attempt::{Answer, AttemptError, Plan};
use headers::{UpstreamFraming, client_response_head, write_upstream_head};
use record::{Feedback, Recorder};
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
    /// The access log's `[log]` settings, switched by config reload.
    pub access_log: Arc<AccessLogSettings>,
}

/// Everything the request path needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    decider: Arc<Decider>,
    /// Candidate plugins offered a sample of first decisions (never acted on).
    shadows: Option<Arc<Shadows>>,
    /// Records a sample of first decisions for `lbx replay`, when switched on.
    recording: Option<Arc<Recording>>,
    /// The canary in progress, whose sides' figures each request feeds.
    canaries: Option<Arc<Canaries>>,
    policies: Policies,
    retry_budget: RetryBudget,
    connections: Arc<ConnectionMetrics>,
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
    /// After `101 Switching Protocols`: the backend connection to join with the client's.
    pub tunnel: Option<crate::upstream::UpstreamConn>,
}

impl Proxy {
    /// A proxy over these backends, routed by `decider`.
    pub fn new(upstreams: Arc<Upstreams>, decider: Arc<Decider>, policies: Policies) -> Self {
        Self {
            upstreams,
            decider,
            shadows: None,
            recording: None,
            canaries: None,
            retry_budget: RetryBudget::new(&policies.retry),
            policies,
            connections: Arc::default(),
        }
    }

    /// Offer `shadows` a sample of the requests' first decisions.
    pub fn with_shadows(mut self, shadows: Arc<Shadows>) -> Self {
        self.shadows = Some(shadows);
        self
    }

    /// Offer `recording` every first decision (it records a sample while switched on).
    pub fn with_recording(mut self, recording: Arc<Recording>) -> Self {
        self.recording = Some(recording);
        self
    }

    /// Count each request's outcomes for the canary side that decided it.
    pub fn with_canaries(mut self, canaries: Arc<Canaries>) -> Self {
        self.canaries = Some(canaries);
        self
    }

    /// Client connections open now (counted by the listeners).
    pub fn connections(&self) -> &Arc<ConnectionMetrics> {
        &self.connections
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
    /// the client with [`ProxyError::response`]. The request side comes back either way: it
    /// says whether the client's body was read to its end, and may still be pumping the body
    /// into an HTTP/2 backend, which whoever relays the response keeps doing.
    pub async fn handle<S: ClientSource, I: InterimSink>(
        &self,
        request: ClientRequest,
        source: S,
        interim: &mut I,
    ) -> Handled<S> {
        let id = request.id.clone();
        let mut log = self.policies.access_log.start(&request);
        // A request that reached a backend may go again only if its method is idempotent or
        // the operator opted in, and its body is recorded (within the limit) or empty.
        let retry = &self.policies.retry;
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
        let feed = BodyFeed::new(
            source,
            record.then_some(retry.replay_limit_bytes),
            complete_on_arrival,
        );
        let mut side = RequestSide::new(feed);
        let result = self
            .forward(request, &mut side, interim, &mut log, may_replay_sent)
            .await;
        if let Err(error) = &result {
            error.log(&id);
            if let Some(mut log) = log {
                log.status = error
                    .status()
                    .unwrap_or(StatusCode::from_u16(499).expect("499 is a valid code"));
                log.bytes_in = side.feed.received_bytes();
                log.emit(false);
            }
        }
        Handled {
            result,
            request: side,
        }
    }

    async fn forward<S: ClientSource, I: InterimSink>(
        &self,
        request: ClientRequest,
        side: &mut RequestSide<S>,
        interim: &mut I,
        log: &mut Option<AccessLog>,
        may_replay_sent: bool,
    ) -> Result<Forwarded, ProxyError> {
        self.retry_budget.record_request();
        let set = self.upstreams.snapshot();
        let ClientRequest {
            head,
            authority,
            body,
            expect_continue,
            upgrade,
            client,
            secure,
            received_at,
            id,
        } = request;
        // An upgrade is relayed for a request without a body (as a WebSocket handshake is):
        // the switch must come after the whole request.
        let upgrade = upgrade.filter(|_| body == RequestBody::None);
        let mut request = RequestCtx::new(RequestMeta {
            head,
            authority,
            client,
            secure,
            body_prefix: None,
        });
        let prefix_limit = self.decider.body_prefix();
        if prefix_limit > 0 {
            request.meta.body_prefix =
                Some(read_prefix(body, expect_continue, prefix_limit, side, interim).await?);
        }

        for attempt in 0.. {
            request.attempt = attempt;
            let routed = self.decider.route(&mut request, &set);
            let canary_side = self
                .canaries
                .as_ref()
                .and_then(|canaries| canaries.figures(request.arm));
            if attempt == 0 {
                if let Some(shadows) = &self.shadows {
                    shadows.offer(&request.meta, &set, &routed.route);
                }
                if let Some(recording) = &self.recording {
                    recording.offer(&request.meta, &set, &routed.route, routed.decided_by);
                }
                if let Some(side) = &canary_side {
                    side.decided(routed.decided_by);
                }
            }
            let meta = &request.meta;
            if let Some(log) = log.as_mut() {
                log.decision += routed.elapsed;
                log.decided_by = routed.decided_by;
                log.attempts = attempt + 1;
            }
            let index = match routed.route {
                Route::Forward { index } => index,
                Route::Reject(status) => {
                    return Err(ProxyError::Rejected {
                        status,
                        headers: std::mem::take(&mut request.directives.downstream_headers),
                    });
                }
                Route::NoUsableBackend => return Err(ProxyError::NoUsableBackend),
            };
            let directives = &request.directives;
            let backend = &set.backends[index];
            let feedback = request.listener.as_ref().map(|plugin| Feedback {
                decider: self.decider.clone(),
                plugin: plugin.clone(),
                tag: directives.tag,
            });
            let recorder = Recorder::new(set.clone(), index, self.policies.outlier, feedback)
                .with_canary_side(canary_side);
            if let Some(log) = log.as_mut() {
                log.backend = Some((set.clone(), index));
            }
            // Expect goes upstream only while the client still waits for an answer to it,
            // and only if lbx can relay that answer.
            let expect = expect_continue && !side.continue_relayed && interim.accepts_interim();
            let mut h1_head = BytesMut::new();
            if body != RequestBody::None {
                side.feed.send_to(backend.stats.clone());
            }
            write_upstream_head(
                meta,
                &id,
                &backend.spec.authority,
                &directives.upstream_headers,
                &self.policies.proxy,
                UpstreamFraming {
                    body,
                    expect_continue: expect,
                    upgrade: upgrade.clone(),
                    rewrite: directives.rewrite.clone(),
                },
                &mut h1_head,
            );
            let plan = Plan {
                meta,
                request_id: &id,
                method: meta.head.method.clone(),
                h1_head: h1_head.freeze(),
                upstream_headers: &directives.upstream_headers,
                body,
                expect_continue: expect,
                upgrade: upgrade.is_some(),
                rewrite: directives.rewrite.clone(),
                may_replay_sent,
            };
            let started = Instant::now();
            let failure = match self.attempt(backend, plan, side, interim, started).await {
                Ok((Answer { head, body, tunnel }, in_flight, ttfb)) => {
                    let status = head.status;
                    if tunnel.is_none()
                        && request.directives.retries_on(status)
                        && self.may_retry(attempt, index, &mut request, side, may_replay_sent, &set)
                    {
                        // The plugin asked for another try on this status: the response is
                        // set aside (its connection closed unless it was read to the end).
                        drop((body, in_flight));
                        let mut outcome = Outcome::answered(attempt, status, ttfb);
                        outcome.total = started.elapsed();
                        outcome.bytes_up = side.feed.sent_this_attempt();
                        recorder.record(&outcome);
                        backend.stats.traffic().retried();
                        tracing::info!(
                            request_id = %id,
                            backend = %backend.spec.id,
                            attempt = attempt + 1,
                            status = status.as_u16(),
                            "backend answered with a status the plugin retries; trying another backend"
                        );
                        continue;
                    }
                    let downstream_headers =
                        std::mem::take(&mut request.directives.downstream_headers);
                    let has_body = response_has_body(&request.meta.head.method, status);
                    let switched_to = tunnel
                        .as_ref()
                        .and_then(|_| head.headers.get("upgrade").cloned());
                    let mut head =
                        client_response_head(head, Some(&id), downstream_headers, has_body);
                    if let Some(protocol) = switched_to {
                        // The hop-by-hop pair that makes a 101 mean something, for this hop.
                        head.headers.push(
                            Bytes::from_static(b"Connection"),
                            Bytes::from_static(b"upgrade"),
                        );
                        head.headers.push(Bytes::from_static(b"Upgrade"), protocol);
                    }
                    let mut log = log.take();
                    if let Some(log) = &mut log {
                        log.status = status;
                        log.upstream_latency = Some(ttfb);
                    }
                    let served_by = ServedBy {
                        recorder,
                        outcome: Outcome::answered(attempt, status, ttfb),
                        started,
                        received_at: tunnel.is_none().then_some(received_at),
                    };
                    return Ok(Forwarded {
                        head,
                        body: RelayedBody::new(body, served_by, in_flight, log),
                        request_complete: side.feed.is_complete(),
                        tunnel,
                    });
                }
                Err(failure) => failure,
            };
            let (error, may_retry) = match failure {
                AttemptError::Unsent(error) => (error, side.feed.rewind()),
                AttemptError::Sent(error) => (error, may_replay_sent && side.feed.rewind()),
                AttemptError::Final(error) => (error, false),
            };
            let mut outcome = Outcome::failed(
                attempt,
                error.fault(),
                started.elapsed(),
                side.feed.sent_this_attempt(),
            );
            request.tried.push(index as u32);
            let can_retry = may_retry && self.retry_allowed(attempt, &request.tried, &set);
            if !can_retry {
                // lbx's answer to the client counts as this backend's response (a backend
                // that fails shows as 5xx), unless the client caused it.
                outcome.answered = error.status().filter(|_| error.fault() != Fault::Client);
                recorder.record(&outcome);
                return Err(error);
            }
            recorder.record(&outcome);
            backend.stats.traffic().retried();
            // The client may never see this failure (the retry can answer), so it is told
            // here or nowhere; the request id ties it to the access line.
            tracing::warn!(
                request_id = %id,
                backend = %backend.spec.id,
                attempt = attempt + 1,
                fault = error.fault().as_str(),
                reason = %error,
                "attempt failed; retrying on another backend"
            );
        }
        unreachable!("the attempt loop only ends by returning")
    }

    /// Whether a response from backend `index` may be set aside for another attempt: the
    /// request can be sent again, and the limits allow a retry (then `index` counts as tried).
    fn may_retry<S: ClientSource>(
        &self,
        attempt: u32,
        index: usize,
        request: &mut RequestCtx,
        side: &mut RequestSide<S>,
        may_replay_sent: bool,
        set: &BackendSet,
    ) -> bool {
        // A body still streaming into the stream cannot be rewound while it flows.
        if side.is_pumping() || !may_replay_sent || !side.feed.can_rewind() {
            return false;
        }
        request.tried.push(index as u32);
        if self.retry_allowed(attempt, &request.tried, set) {
            return side.feed.rewind();
        }
        request.tried.pop();
        false
    }

    /// Whether attempt `attempt` may be followed by another: attempts and an untried usable
    /// backend are left, and the retry budget grants one (taken here).
    fn retry_allowed(&self, attempt: u32, tried: &[u32], set: &BackendSet) -> bool {
        // Retrying makes sense only on a backend that has not failed this request yet.
        let untried_left = set
            .backends
            .iter()
            .enumerate()
            .any(|(i, b)| b.is_usable() && !tried.contains(&(i as u32)));
        attempt + 1 < self.policies.retry.max_attempts
            && untried_left
            && self.retry_budget.try_retry()
    }
}

/// The first `limit` bytes of the request body, read before deciding. A client waiting for
/// `100 Continue` is told to go ahead first (lbx, not the backend, wants the body now).
async fn read_prefix<S: ClientSource, I: InterimSink>(
    body: RequestBody,
    expect_continue: bool,
    limit: usize,
    side: &mut RequestSide<S>,
    interim: &mut I,
) -> Result<Bytes, ProxyError> {
    if body == RequestBody::None {
        return Ok(Bytes::new());
    }
    if expect_continue && !side.continue_relayed && interim.accepts_interim() {
        interim
            .send_interim(&ResponseHead::new(StatusCode::CONTINUE))
            .await
            .map_err(|_| ClientBodyError::Gone)?;
        side.continue_relayed = true;
    }
    Ok(side.feed.read_prefix(limit).await?)
}

impl RegisterMetrics for Proxy {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::ConnectionCollector(self.connections.clone()).register(registry);
    }
}

/// What [`Proxy::handle`] gives back.
#[derive(Debug)]
pub struct Handled<S> {
    /// The response to relay, or why there is none.
    pub result: Result<Forwarded, ProxyError>,
    /// The request's side: whether its body was read to its end, and the pump that may still
    /// be feeding it to an HTTP/2 backend.
    pub request: RequestSide<S>,
}
