//! One attempt at a backend: take a connection (or an HTTP/2 stream) from its pool, send the
//! request, relay interim responses, and come back with the response head and body — or with
//! a failure classified by who caused it and whether the request may go elsewhere.
//!
//! HTTP/1.1 attempts run lbx's own exchange ([`crate::upstream::exchange`]); HTTP/2 attempts
//! open a stream with `h2` ([`crate::upstream::h2`]), the request body pumped onto it by the
//! request's side ([`super::request_side`]), which keeps pumping after the response head if
//! the body has not ended (gRPC streams both ways).

use std::task::Poll;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::time::Instant as TokioInstant;

use super::client_body::{ClientBodyError, ClientSource};
use super::error::ProxyError;
use super::headers::{UpstreamFraming, client_response_head, upstream_h2_request};
use super::request::{RequestBody, RequestId};
use super::request_side::RequestSide;
use super::{EXPECT_WAIT, InterimSink, Proxy};
use crate::http1::parse::response_has_body;
use crate::http1::{BodyEncoding, Framing};
use crate::message::{ResponseHead, from_header_map};
use crate::plugin::RequestMeta;
use crate::upstream::exchange::Response as H1Response;
use crate::upstream::h2::H2Stream;
use crate::upstream::{
    Backend, BodySource, Checkout, ConnectError, DeadlineTimer, Exchange, ExchangeError,
    ExchangeTimeouts, InFlight, OutgoingRequest, ResponseBody, Step, Switched, UpstreamConn,
    Waited, earliest,
};

/// What one attempt sends: the request head (as HTTP/1.1 bytes, for HTTP/1.1 backends), the
/// plugin's extra fields, how the body is framed.
pub(super) struct Plan<'a> {
    /// What routing saw of the request (its head goes to an HTTP/2 backend from here).
    pub meta: &'a RequestMeta,
    /// The request's id, sent as `X-Request-Id`.
    pub request_id: &'a RequestId,
    /// The request's method.
    pub method: http::Method,
    /// The head for an HTTP/1.1 backend.
    pub h1_head: bytes::Bytes,
    /// The plugin's fields for the backend.
    pub upstream_headers: &'a [(http::HeaderName, http::HeaderValue)],
    /// The body that follows.
    pub body: RequestBody,
    /// The client waits for `100 Continue`.
    pub expect_continue: bool,
    /// The head asks to switch protocols.
    pub upgrade: bool,
    /// The plugin's replacement for the request target.
    pub rewrite: Option<bytes::Bytes>,
    /// The request may be sent again after it reached a backend (idempotent, or the operator
    /// allows it): a pooled connection found closed is then replaced once.
    pub may_replay_sent: bool,
}

/// A backend's answer, whatever protocol it came over.
pub(super) struct Answer {
    /// The response head.
    pub head: ResponseHead,
    /// Its body.
    pub body: ResponseBody,
    /// After a `101`: the backend connection, now carrying the new protocol.
    pub tunnel: Option<UpstreamConn>,
}

/// How one attempt ended without a response to relay.
pub(super) enum AttemptError {
    /// Nothing was sent (no connection, or a stream the backend refused): the request may go
    /// anywhere else.
    Unsent(ProxyError),
    /// Sent, at least in part: only a replay-safe request may go again.
    Sent(ProxyError),
    /// Nothing more may be tried (the client's fault, or the deadline).
    Final(ProxyError),
}

impl Proxy {
    /// One attempt on `backend`, started at `started`: its answer, the request counted in
    /// flight on it, and the time to the answer's head (connecting included). A pooled
    /// connection found closed before it answered is replaced by a new one once, without
    /// counting against the backend. Nothing is counted here: the caller records the attempt's
    /// outcome.
    pub(super) async fn attempt<S: ClientSource, I: InterimSink>(
        &self,
        backend: &Backend,
        plan: Plan<'_>,
        side: &mut RequestSide<S>,
        interim: &mut I,
        started: Instant,
    ) -> Result<(Answer, InFlight, Duration), AttemptError> {
        let in_flight = backend.stats.start_request();
        let mut checkout = backend
            .pool
            .checkout()
            .await
            .map_err(|e| self.unreachable(backend, e))?;
        let mut replaced_stale = false;
        loop {
            let result = match checkout {
                Checkout::Http1(conn) => {
                    self.exchange_http1(backend, conn, &plan, side, interim)
                        .await
                }
                Checkout::Http2(stream) => {
                    self.exchange_http2(backend, stream, &plan, side, interim)
                        .await
                }
            };
            match result {
                Ok(answer) => return Ok((answer, in_flight, started.elapsed())),
                Err(Failure::Stale)
                    if !replaced_stale && plan.may_replay_sent && side.feed.rewind() =>
                {
                    replaced_stale = true;
                    tracing::debug!(backend = %backend.spec.id, "pooled connection was closed by the backend; sending on a new one");
                    checkout = backend
                        .pool
                        .connect()
                        .await
                        .map_err(|e| self.unreachable(backend, e))?;
                }
                Err(Failure::Unopened(error)) => {
                    if replaced_stale {
                        return Err(AttemptError::Unsent(error));
                    }
                    replaced_stale = true;
                    tracing::debug!(backend = %backend.spec.id, %error, "HTTP/2 connection took no new stream; opening another");
                    checkout = backend
                        .pool
                        .connect()
                        .await
                        .map_err(|e| self.unreachable(backend, e))?;
                }
                Err(Failure::Stale) => {
                    return Err(AttemptError::Sent(ProxyError::Broken {
                        backend: backend.spec.id.clone(),
                        reason: "reused connection closed before any response".into(),
                    }));
                }
                Err(Failure::Attempt(error)) => return Err(error),
            }
        }
    }

    fn unreachable(&self, backend: &Backend, error: ConnectError) -> AttemptError {
        AttemptError::Unsent(ProxyError::Unreachable {
            backend: backend.spec.id.clone(),
            reason: error.to_string(),
        })
    }

    fn timeouts(&self) -> ExchangeTimeouts {
        ExchangeTimeouts {
            response_headers: self.policies.timeouts.response_headers,
            request: self.policies.timeouts.request,
            expect_wait: EXPECT_WAIT,
            backend_idle: self.policies.timeouts.backend_idle,
        }
    }

    async fn exchange_http1<S: ClientSource, I: InterimSink>(
        &self,
        backend: &Backend,
        conn: UpstreamConn,
        plan: &Plan<'_>,
        side: &mut RequestSide<S>,
        interim: &mut I,
    ) -> Result<Answer, Failure> {
        let outgoing = OutgoingRequest {
            head: plan.h1_head.clone(),
            method: plan.method.clone(),
            encoding: match plan.body {
                RequestBody::None => BodyEncoding::Empty,
                RequestBody::Length(_) => BodyEncoding::Length,
                RequestBody::Streaming => BodyEncoding::Chunked,
            },
            expect_continue: plan.expect_continue,
            upgrade: plan.upgrade,
        };
        let result = {
            let mut exchange = Exchange::new(
                conn,
                backend.pool.clone(),
                outgoing,
                &mut side.feed,
                self.timeouts(),
            );
            relay_until_final(&mut exchange, interim, &mut side.continue_relayed).await
        };
        match result {
            Ok(Relayed::Final(H1Response { head, body, .. })) => Ok(Answer {
                head,
                body,
                tunnel: None,
            }),
            Ok(Relayed::Switched(Switched { head, conn })) => Ok(Answer {
                head,
                body: ResponseBody::nothing(),
                tunnel: Some(conn),
            }),
            Err(ExchangeError::Stale) => Err(Failure::Stale),
            Err(error) => Err(Failure::Attempt(self.classify(backend, error))),
        }
    }

    async fn exchange_http2<S: ClientSource, I: InterimSink>(
        &self,
        backend: &Backend,
        stream: H2Stream,
        plan: &Plan<'_>,
        side: &mut RequestSide<S>,
        interim: &mut I,
    ) -> Result<Answer, Failure> {
        let meta = plan.meta;
        // An HTTP/2 backend is not asked to confirm with `100 Continue`: a client waiting for
        // one is told to go ahead now.
        if plan.expect_continue && !side.continue_relayed && interim.accepts_interim() {
            interim
                .send_interim(&ResponseHead::new(StatusCode::CONTINUE))
                .await
                .map_err(|_| Failure::Attempt(AttemptError::Final(ClientBodyError::Gone.into())))?;
            side.continue_relayed = true;
        }
        // HTTP/2 has no Upgrade (it would take extended CONNECT): the request goes as a plain
        // one and the backend answers it as it would.
        let framing = UpstreamFraming {
            body: plan.body,
            expect_continue: false,
            upgrade: None,
            rewrite: plan.rewrite.clone(),
        };
        let builder = upstream_h2_request(
            meta,
            plan.request_id,
            &backend.spec.authority,
            backend.pool.transport().uri_scheme(),
            plan.upstream_headers,
            &self.policies.proxy,
            framing,
        )
        .map_err(|reason| {
            Failure::Attempt(AttemptError::Final(ProxyError::Unforwardable(reason)))
        })?;
        let request = builder.body(()).map_err(|e| {
            Failure::Attempt(AttemptError::Final(ProxyError::Unforwardable(
                e.to_string(),
            )))
        })?;
        let H2Stream {
            mut sender,
            slot,
            reused,
        } = stream;
        let no_body = matches!(plan.body, RequestBody::None);
        let (sent, body) = match sender.send_request(request, no_body) {
            Ok(opened) => opened,
            Err(error) => {
                // Nothing went out. A connection that cannot open a stream (closed, going
                // away, out of stream ids) takes no more; anything else is the head's fault.
                let connection = error.is_io() || error.is_go_away() || error.is_remote();
                slot.connection_unusable();
                return Err(if connection || reused {
                    Failure::Unopened(describe_h2(backend, &error))
                } else {
                    Failure::Attempt(AttemptError::Final(ProxyError::Unforwardable(
                        error.to_string(),
                    )))
                });
            }
        };
        if !no_body {
            side.start_pump(body);
        }
        tokio::pin!(sent);

        let timeouts = self.timeouts();
        let mut timer = DeadlineTimer::new();
        let waited = std::future::poll_fn(|cx| {
            if let Poll::Ready(response) = sent.as_mut().poll(cx) {
                return Poll::Ready(Ok(response));
            }
            if side.is_pumping()
                && let Poll::Ready(Err(error)) = side.poll_pump(cx)
            {
                return Poll::Ready(Err(Stop::ClientBody(error)));
            }
            // After the pump: it may just have found the stream blocked or the body ended.
            timer
                .poll(cx, response_deadline(side, &timeouts))
                .map(|waited| Err(Stop::TimedOut(waited)))
        })
        .await;
        let response = match waited {
            Ok(response) => response,
            Err(Stop::ClientBody(error)) => {
                // The client's body failed: the stream is reset, never completed.
                return Err(Failure::Attempt(AttemptError::Final(error.into())));
            }
            Err(Stop::TimedOut(waited)) => {
                side.stop_pump();
                return Err(Failure::Attempt(match waited {
                    Waited::Request => AttemptError::Final(ProxyError::Deadline {
                        after: timeouts.request,
                    }),
                    Waited::Backend => AttemptError::Sent(ProxyError::BackendTimeout {
                        backend: backend.spec.id.clone(),
                        after: timeouts.response_headers,
                    }),
                }));
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                side.stop_pump();
                return Err(classify_h2(backend, &error, reused));
            }
        };
        let (parts, incoming) = response.into_parts();
        let has_body = response_has_body(&meta.head.method, parts.status);
        let framing = if !has_body || incoming.is_end_stream() {
            Framing::Empty
        } else {
            match parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::Chunked,
            }
        };
        let head = ResponseHead {
            status: parts.status,
            reason: bytes::Bytes::from_static(
                parts.status.canonical_reason().unwrap_or("").as_bytes(),
            ),
            version: http::Version::HTTP_2,
            headers: from_header_map(&parts.headers),
        };
        let body = ResponseBody::http2(incoming, slot, framing, timeouts.backend_idle);
        Ok(Answer {
            head,
            body,
            tunnel: None,
        })
    }

    fn classify(&self, backend: &Backend, error: ExchangeError<ClientBodyError>) -> AttemptError {
        let id = backend.spec.id.clone();
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

/// An HTTP/2 request whose stream failed before its response head: a stream the backend
/// refused (RFC 9113 §8.7) or one above the last it will process in its GOAWAY (§6.8) was never
/// processed, so it may go anywhere; a reused connection that broke is stale; anything else
/// reached the backend.
fn classify_h2(backend: &Backend, error: &h2::Error, reused: bool) -> Failure {
    if error.is_io() && reused {
        return Failure::Stale;
    }
    let unprocessed = error.is_remote()
        && (error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM));
    let failed = describe_h2(backend, error);
    Failure::Attempt(if unprocessed {
        AttemptError::Unsent(failed)
    } else {
        AttemptError::Sent(failed)
    })
}

/// `error` as the backend's broken exchange.
fn describe_h2(backend: &Backend, error: &h2::Error) -> ProxyError {
    ProxyError::Broken {
        backend: backend.spec.id.clone(),
        reason: format!("HTTP/2: {error}"),
    }
}

/// How an exchange failed, before it is known whether that ends the attempt.
pub(super) enum Failure {
    /// A pooled connection the backend had already closed: try a new one.
    Stale,
    /// An HTTP/2 connection that could not open the request's stream: nothing was sent, so a
    /// new connection is tried once whatever the request is.
    Unopened(ProxyError),
    /// The attempt is over.
    Attempt(AttemptError),
}

/// Why an HTTP/2 attempt stopped waiting for its response head.
enum Stop {
    /// The client's body failed.
    ClientBody(ClientBodyError),
    /// A deadline passed.
    TimedOut(Waited),
}

/// When an HTTP/2 attempt waiting for its response head gives up: `response_headers` after the
/// request body ended (or after the stream stopped taking it), and the request's overall
/// deadline once the client is done. Nothing while lbx waits on the client.
fn response_deadline<S: ClientSource>(
    side: &RequestSide<S>,
    timeouts: &ExchangeTimeouts,
) -> Option<(TokioInstant, Waited)> {
    let backend_since = side.stream_blocked_since().or_else(|| {
        (!side.is_pumping())
            .then(|| side.feed.completed_at())
            .flatten()
    });
    earliest(
        backend_since.and_then(|since| since.checked_add(timeouts.response_headers)),
        side.feed
            .completed_at()
            .and_then(|done| done.checked_add(timeouts.request)),
    )
}

/// How an HTTP/1.1 exchange ended.
enum Relayed {
    Final(H1Response),
    Switched(Switched),
}

/// Drive an HTTP/1.1 exchange to its final response, relaying interim ones: `100 Continue`
/// once, and only to a client that asked for it; other 1xx to any client that can take them
/// (RFC 9110 §15.2: a proxy MUST forward 1xx responses).
async fn relay_until_final<S: ClientSource, I: InterimSink>(
    exchange: &mut Exchange<'_, super::client_body::BodyFeed<S>>,
    interim: &mut I,
    continue_relayed: &mut bool,
) -> Result<Relayed, ExchangeError<ClientBodyError>> {
    loop {
        match exchange.step().await? {
            Step::Final(response) => return Ok(Relayed::Final(response)),
            Step::Switched(switched) => return Ok(Relayed::Switched(switched)),
            Step::Interim(head) => {
                let relay = if head.status == StatusCode::CONTINUE {
                    !std::mem::replace(continue_relayed, true)
                } else {
                    true
                };
                if relay && interim.accepts_interim() {
                    let head = client_response_head(head, None, Vec::new(), false);
                    interim
                        .send_interim(&head)
                        .await
                        .map_err(|_| ExchangeError::Client(ClientBodyError::Gone))?;
                }
            }
        }
    }
}
