//! One request and its response on an HTTP/1.1 backend connection, driven by the task that
//! serves the client: no connection task, no channel.
//!
//! The request head goes out first (with `Expect: 100-continue`, the body waits for the
//! backend's `100` or a short timer); then the body streams while the response head is read,
//! so a backend that answers before the upload ends (a `413`, a `401`) is heard at once. 1xx
//! heads are handed to the caller one by one to relay; the final head ends the exchange and
//! the connection moves into the [`ResponseBody`].
//!
//! Whose fault a failure is, is decided here, where it is known: the client's body failing
//! (malformed, gone, too slow) is [`ExchangeError::Client`] and the request is abandoned
//! without completing its body upstream — no terminating chunk, the connection closed;
//! everything else on the socket is the backend's.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use super::deadline::{DeadlineTimer, Waited, earliest};
use super::pool::{ConnectionPool, UpstreamConn};
use super::response_body::ResponseBody;
use crate::http1::BodyEncoding;
use crate::http1::body::{CHUNK_END, ChunkHeader, chunk_header, last_chunk};
use crate::http1::io::{HEAD_READ_SIZE, poll_read_into};
use crate::http1::parse::{ParsedResponse, ResponseError, parse_response};
use crate::message::{BodyChunk, ResponseHead};

/// Where the request body comes from (the client's body, possibly replayed from a recording).
pub trait BodySource {
    /// Why the body could not be read: always the client's fault.
    type Error;

    /// The next piece of the body; `Ready(Ok(None))` at its clean end.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<BodyChunk>, Self::Error>>;

    /// When the client finished sending its request, body included (`None` while it is still
    /// sending). The overall request deadline runs from then.
    fn completed_at(&self) -> Option<Instant>;
}

/// The timers of an exchange.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeTimeouts {
    /// The backend must make progress within this: accept request bytes lbx has for it, and
    /// answer within this of the request's end.
    pub response_headers: Duration,
    /// From the request's complete arrival to the response head, retries included.
    pub request: Duration,
    /// How long the body waits for `100 Continue` before it is sent anyway.
    pub expect_wait: Duration,
    /// Longest the backend may pause inside its response body.
    pub backend_idle: Duration,
}

/// What lbx sends: an encoded head, and how the body that follows is framed.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The request head, ready for the wire.
    pub head: Bytes,
    /// The method (a `HEAD` response has no body whatever its fields say).
    pub method: Method,
    /// How the body is framed.
    pub encoding: BodyEncoding,
    /// The head carries `Expect: 100-continue`: hold the body until the backend says so.
    pub expect_continue: bool,
    /// The head asks to switch protocols: a `101` ends the exchange with the connection
    /// handed over ([`Step::Switched`]).
    pub upgrade: bool,
}

/// What one step of an exchange produced.
#[derive(Debug)]
pub enum Step {
    /// An interim (1xx) response to relay to the client. A `100 Continue` comes from the
    /// backend, or from lbx when the backend did not answer an `Expect` in time.
    Interim(ResponseHead),
    /// The final response.
    Final(Response),
    /// The backend switched protocols (`101`): the connection is no longer HTTP.
    Switched(Switched),
}

/// A backend's `101 Switching Protocols` and the connection after it.
#[derive(Debug)]
pub struct Switched {
    /// The `101` head.
    pub head: ResponseHead,
    /// The connection; its buffer may already hold the new protocol's first bytes.
    pub conn: UpstreamConn,
}

/// The backend's final answer.
#[derive(Debug)]
pub struct Response {
    /// Its head.
    pub head: ResponseHead,
    /// Its body, which owns the connection from now on. (Whether the client's request body
    /// was all read is the request side's to say: a response may come before it was.)
    pub body: ResponseBody,
}

/// How an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError<E> {
    /// The client's body could not be read. Not the backend's fault.
    #[error("client body: {0}")]
    Client(E),
    /// A reused connection was closed by the backend before it answered: most likely it timed
    /// the idle connection out just as lbx used it. The request may go again on a new one.
    #[error("reused connection closed before any response")]
    Stale,
    /// The connection failed or closed before a complete response head.
    #[error("{0}")]
    Broken(String),
    /// The response head is not valid HTTP/1.1 or its framing is contradictory.
    #[error(transparent)]
    Invalid(#[from] ResponseError),
    /// The backend made no progress for this long.
    #[error("no response within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The request's overall deadline passed.
    #[error("request deadline passed")]
    Deadline,
}

/// Where sending the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// The head is (being) written.
    Head,
    /// The head is out; the body waits for `100 Continue`.
    AwaitingContinue,
    /// The body streams.
    Body,
    /// The last piece is being written.
    Finishing,
    /// Everything is sent.
    Done,
    /// The backend answered first or the write side failed: nothing more is sent.
    Stopped,
}

/// Bytes on their way to the socket: an optional chunk header, data, an optional suffix.
#[derive(Debug)]
struct Outgoing {
    prefix: Option<ChunkHeader>,
    data: Bytes,
    suffix: &'static [u8],
    written: usize,
}

impl Outgoing {
    fn plain(data: Bytes) -> Self {
        Self {
            prefix: None,
            data,
            suffix: b"",
            written: 0,
        }
    }

    fn chunk(data: Bytes) -> Self {
        Self {
            prefix: Some(chunk_header(data.len())),
            data,
            suffix: CHUNK_END,
            written: 0,
        }
    }

    fn total(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.as_ref().len()) + self.data.len() + self.suffix.len()
    }

    fn slices(&self) -> [IoSlice<'_>; 3] {
        let prefix: &[u8] = self.prefix.as_ref().map_or(&[], |p| p.as_ref());
        let mut skip = self.written;
        let prefix = unwritten(prefix, &mut skip);
        let data = unwritten(&self.data, &mut skip);
        let suffix = unwritten(self.suffix, &mut skip);
        [
            IoSlice::new(prefix),
            IoSlice::new(data),
            IoSlice::new(suffix),
        ]
    }
}

/// The part of `part` not yet covered by `skip` written bytes; `skip` is reduced by what
/// `part` accounts for.
fn unwritten<'a>(part: &'a [u8], skip: &mut usize) -> &'a [u8] {
    let taken = (*skip).min(part.len());
    *skip -= taken;
    &part[taken..]
}

/// One exchange in progress. Drive it with [`Exchange::step`] until it yields the final
/// response; dropping it before then closes the connection.
#[derive(Debug)]
pub struct Exchange<'s, S: BodySource> {
    conn: Option<UpstreamConn>,
    pool: Arc<ConnectionPool>,
    method: Method,
    body: &'s mut S,
    encoding: BodyEncoding,
    sending: Sending,
    outgoing: Option<Outgoing>,
    /// A write completed and was not flushed yet (TLS may hold its last record until then).
    needs_flush: bool,
    expect_continue: bool,
    upgrade: bool,
    timeouts: ExchangeTimeouts,
    /// When the write side last started waiting on the socket (the backend not reading).
    write_blocked_since: Option<Instant>,
    /// When the head was fully written.
    head_sent_at: Option<Instant>,
    /// When everything was sent.
    sent_at: Option<Instant>,
    /// Any response byte arrived.
    response_started: bool,
    /// A write failed; the failure is reported only if no response arrives.
    write_error: Option<io::Error>,
    timer: DeadlineTimer,
    continue_timer: Option<Pin<Box<Sleep>>>,
}

impl<'s, S: BodySource> Exchange<'s, S> {
    /// Start sending `request` on `conn`, with its body read from `body`.
    pub fn new(
        conn: UpstreamConn,
        pool: Arc<ConnectionPool>,
        request: OutgoingRequest,
        body: &'s mut S,
        timeouts: ExchangeTimeouts,
    ) -> Self {
        Self {
            conn: Some(conn),
            pool,
            method: request.method,
            body,
            encoding: request.encoding,
            sending: Sending::Head,
            outgoing: Some(Outgoing::plain(request.head)),
            needs_flush: false,
            expect_continue: request.expect_continue,
            upgrade: request.upgrade,
            timeouts,
            write_blocked_since: None,
            head_sent_at: None,
            sent_at: None,
            response_started: false,
            write_error: None,
            timer: DeadlineTimer::new(),
            continue_timer: None,
        }
    }

    /// Run until the next interim response, the final response, or a failure.
    pub async fn step(&mut self) -> Result<Step, ExchangeError<S::Error>> {
        std::future::poll_fn(|cx| self.poll_step(cx)).await
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, ExchangeError<S::Error>>> {
        if self.conn.is_none() {
            return Poll::Ready(Err(ExchangeError::Broken("exchange already ended".into())));
        }
        loop {
            let sent_more = match self.poll_send(cx) {
                Ok(progress) => progress,
                Err(SendFailure::Client(e)) => return Poll::Ready(Err(ExchangeError::Client(e))),
                Err(SendFailure::Io(e)) => {
                    // Keep reading: a backend that stops reading to answer early (413) or
                    // closes after answering has its answer in the receive buffer.
                    self.write_error = Some(e);
                    self.sending = Sending::Stopped;
                    self.outgoing = None;
                    true
                }
            };
            if let Some(step) = self.take_response_head()? {
                return Poll::Ready(Ok(step));
            }
            let conn = self
                .conn
                .as_mut()
                .expect("connection held until the final response");
            match poll_read_into(
                Pin::new(&mut conn.stream),
                &mut conn.buf,
                HEAD_READ_SIZE,
                cx,
            ) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(self.closed_before_response(None))),
                Poll::Ready(Ok(_)) => {
                    self.response_started = true;
                    continue;
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(self.closed_before_response(Some(e))));
                }
                Poll::Pending => {}
            }
            if sent_more {
                continue;
            }
            if self.poll_continue_timer(cx) {
                // The backend ignored `Expect`: send the body anyway (RFC 9110 §10.1.1 lets a
                // client do the same), and tell the waiting client to go ahead.
                self.sending = Sending::Body;
                return Poll::Ready(Ok(Step::Interim(ResponseHead::new(StatusCode::CONTINUE))));
            }
            return self.poll_timer(cx).map(Err);
        }
    }

    /// Parse a response head from what has been read, if one is complete.
    fn take_response_head(&mut self) -> Result<Option<Step>, ExchangeError<S::Error>> {
        let conn = self
            .conn
            .as_mut()
            .expect("connection held until the final response");
        loop {
            let Some(parsed) = parse_response(&mut conn.buf, &self.method)? else {
                return Ok(None);
            };
            let status = parsed.head.status;
            if status == StatusCode::SWITCHING_PROTOCOLS {
                // A switch only answers an upgrade lbx asked for, once the request is all sent.
                if !self.upgrade || self.sending != Sending::Done {
                    return Err(ResponseError(
                        "101 Switching Protocols without an upgrade request",
                    )
                    .into());
                }
                let conn = self
                    .conn
                    .take()
                    .expect("connection held until the final response");
                return Ok(Some(Step::Switched(Switched {
                    head: parsed.head,
                    conn,
                })));
            }
            if status == StatusCode::CONTINUE {
                if self.sending == Sending::AwaitingContinue {
                    self.sending = Sending::Body;
                    self.continue_timer = None;
                    return Ok(Some(Step::Interim(parsed.head)));
                }
                // Unasked for: the client did not wait for it; drop it.
                continue;
            }
            if status.is_informational() {
                return Ok(Some(Step::Interim(parsed.head)));
            }
            return Ok(Some(Step::Final(self.finish(parsed))));
        }
    }

    fn finish(&mut self, parsed: ParsedResponse) -> Response {
        let request_sent = self.sending == Sending::Done;
        let conn = self
            .conn
            .take()
            .expect("connection held until the final response");
        // A connection is reused only if both messages ended where their framing says.
        let reusable = parsed.keep_alive && request_sent && self.write_error.is_none();
        Response {
            head: parsed.head,
            body: ResponseBody::http1(
                conn,
                self.pool.clone(),
                parsed.framing,
                reusable,
                self.timeouts.backend_idle,
            ),
        }
    }

    fn closed_before_response(&mut self, read_error: Option<io::Error>) -> ExchangeError<S::Error> {
        let reused = self.conn.as_ref().is_some_and(|c| c.reused);
        if reused && !self.response_started {
            return ExchangeError::Stale;
        }
        let cause = match (read_error, self.write_error.take()) {
            (Some(e), _) | (None, Some(e)) => e.to_string(),
            (None, None) => "connection closed".into(),
        };
        let when = if self.response_started {
            "during the response head"
        } else {
            "before any response"
        };
        ExchangeError::Broken(format!("{cause} {when}"))
    }

    /// Write what can be written and fetch more of the body. `Ok(true)`: progress was made.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<bool, SendFailure<S::Error>> {
        if self.needs_flush && self.outgoing.is_none() {
            let conn = self
                .conn
                .as_mut()
                .expect("connection held until the final response");
            match Pin::new(&mut conn.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(SendFailure::Io(e)),
                Poll::Pending => {
                    self.write_blocked_since.get_or_insert_with(Instant::now);
                    return Ok(false);
                }
            }
        }
        if let Some(outgoing) = &mut self.outgoing {
            let conn = self
                .conn
                .as_mut()
                .expect("connection held until the final response");
            let slices = outgoing.slices();
            match Pin::new(&mut conn.stream).poll_write_vectored(cx, &slices) {
                Poll::Ready(Ok(0)) => return Err(SendFailure::Io(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    outgoing.written += n;
                    self.write_blocked_since = None;
                    if outgoing.written >= outgoing.total() {
                        self.outgoing = None;
                        self.needs_flush = true;
                        self.on_written();
                    }
                    return Ok(true);
                }
                Poll::Ready(Err(e)) => return Err(SendFailure::Io(e)),
                Poll::Pending => {
                    self.write_blocked_since.get_or_insert_with(Instant::now);
                    return Ok(false);
                }
            }
        }
        if self.sending != Sending::Body {
            return Ok(false);
        }
        match self.body.poll_chunk(cx) {
            Poll::Pending => Ok(false),
            Poll::Ready(Err(e)) => Err(SendFailure::Client(e)),
            Poll::Ready(Ok(chunk)) => {
                self.queue(chunk);
                Ok(true)
            }
        }
    }

    /// Frame the next piece of the body for the wire.
    fn queue(&mut self, chunk: Option<BodyChunk>) {
        match (chunk, self.encoding) {
            (Some(BodyChunk::Data(data)), _) if data.is_empty() => {}
            (Some(BodyChunk::Data(data)), BodyEncoding::Chunked) => {
                self.outgoing = Some(Outgoing::chunk(data));
            }
            // A `Length` body is sent as it comes: its source is the client's own framing, which
            // delivers exactly the declared length (the HTTP/1.1 decoder and h2 both check).
            (Some(BodyChunk::Data(data)), _) => self.outgoing = Some(Outgoing::plain(data)),
            (Some(BodyChunk::Trailers(trailers)), BodyEncoding::Chunked) => {
                self.outgoing = Some(Outgoing::plain(last_chunk(Some(&trailers))));
                self.sending = Sending::Finishing;
            }
            // Trailers cannot follow a Content-Length body on HTTP/1.1: dropped (RFC 9110
            // §6.5.1 lets a recipient discard them).
            (Some(BodyChunk::Trailers(_)), _) => {}
            (None, BodyEncoding::Chunked) => {
                self.outgoing = Some(Outgoing::plain(last_chunk(None)));
                self.sending = Sending::Finishing;
            }
            (None, _) => self.mark_sent(),
        }
    }

    fn on_written(&mut self) {
        match self.sending {
            Sending::Head => {
                self.head_sent_at = Some(Instant::now());
                if self.encoding == BodyEncoding::Empty {
                    self.mark_sent();
                } else if self.expect_continue {
                    self.sending = Sending::AwaitingContinue;
                    self.continue_timer =
                        Some(Box::pin(tokio::time::sleep(self.timeouts.expect_wait)));
                } else {
                    self.sending = Sending::Body;
                }
            }
            Sending::Finishing => self.mark_sent(),
            _ => {}
        }
    }

    fn mark_sent(&mut self) {
        self.sending = Sending::Done;
        self.sent_at = Some(Instant::now());
    }

    /// Whether the wait for `100 Continue` is over.
    fn poll_continue_timer(&mut self, cx: &mut Context<'_>) -> bool {
        if self.sending != Sending::AwaitingContinue {
            return false;
        }
        let Some(timer) = self.continue_timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.continue_timer = None;
        true
    }

    /// Arm the timer for whatever lbx is waiting on, and report it if it has passed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<ExchangeError<S::Error>> {
        let deadline = self.deadline();
        self.timer.poll(cx, deadline).map(|waited| match waited {
            Waited::Backend => ExchangeError::TimedOut(self.timeouts.response_headers),
            Waited::Request => ExchangeError::Deadline,
        })
    }

    /// The earliest deadline that applies now: the backend's progress timer (unless lbx is
    /// waiting on the client) and the request's overall deadline once the client is done.
    fn deadline(&self) -> Option<(Instant, Waited)> {
        let backend_since = match (self.write_blocked_since, self.sending) {
            (Some(since), _) => Some(since),
            (None, Sending::Done | Sending::Stopped) => self.sent_at.or(self.head_sent_at),
            (None, Sending::AwaitingContinue) => self.head_sent_at,
            (None, Sending::Head | Sending::Body | Sending::Finishing) => None,
        };
        earliest(
            backend_since.and_then(|since| since.checked_add(self.timeouts.response_headers)),
            self.body
                .completed_at()
                .and_then(|done| done.checked_add(self.timeouts.request)),
        )
    }
}

enum SendFailure<E> {
    Client(E),
    Io(io::Error),
}
