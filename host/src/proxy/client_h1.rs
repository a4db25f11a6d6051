//! HTTP/1.1 (and 1.0) client connections: read a request head, hand the request to the proxy
//! with the connection's read side as the body source, relay interim responses, write the
//! response framed for the client's version, and keep the connection for the next request
//! only when both messages ended cleanly.
//!
//! A request head must arrive within `[timeouts] request_headers` (slowloris), which also
//! closes a keep-alive connection idle that long. A connection closed with request bytes still
//! unread is closed gracefully: lbx stops writing, then reads and discards for a moment, so the
//! client is not sent a reset that could destroy the response it has not read yet.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::client_body::{ClientSource, H1Body};
use super::connection::{ClientStream, ConnectionInfo, https_location};
use super::error::{Fault, ProxyError};
use super::request::{ClientRequest, RequestBody, RequestId};
use super::tunnel;
use super::{Forwarded, Handled, InterimSink, Proxy, RequestSide};
use crate::http1::Framing;
use crate::http1::body::{BodyDecoder, CHUNK_END, chunk_header, last_chunk};
use crate::http1::encode::write_response_head;
use crate::http1::io::{HEAD_READ_SIZE, read_into, write_all_flushed, write_all_vectored};
use crate::http1::parse::{ParsedRequest, RequestError, parse_request, response_has_body};
use crate::message::{BodyChunk, ResponseHead};
use crate::shutdown::{self, StopReceiver};
use crate::upstream::DeadlineTimer;

/// The first read of a request head: most heads fit, and the buffer they are then kept in is
/// small enough for the allocator's fastest path.
const IDLE_READ_SIZE: usize = 1024;
/// Longest a closing connection keeps reading (and discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// What reading a request head gave.
enum HeadRead {
    Request(ParsedRequest),
    /// Nothing to answer: the client closed, stayed idle too long, or lbx is shutting down
    /// between requests.
    Closed,
    /// Part of a head arrived, then nothing within the header timeout.
    TimedOut,
    Invalid(RequestError),
}

/// Serve one client connection until it closes, fails, or `stop` is raised.
///
/// Between requests the connection holds only this future's small state: the stream, its
/// facts, and what it waits on. Everything one request needs (the rest of its head, the
/// exchange, the response relay) is a future of its own, boxed for the request's life, so an
/// idle keep-alive connection does not carry room for a request in flight. Measured with
/// `-Zprint-type-sizes`: that future is ~4.9 KiB, this one a few hundred bytes; the box is one
/// allocation per request, as the exchange's box it replaces was.
pub async fn serve<S: ClientStream>(
    mut stream: S,
    info: ConnectionInfo,
    proxy: Arc<Proxy>,
    stop: StopReceiver,
) {
    let mut buf = BytesMut::new();
    let header_timeout = proxy.policies().timeouts.request_headers;
    let mut between = BetweenRequests::new(&stop, header_timeout);
    // Whether the peer may name its requests' ids: a fact of the connection, not the request.
    let trusted = proxy.policies().proxy.trusts(info.peer.ip());
    loop {
        // The header timeout runs from the end of the last response (a pipelined request may
        // already be in `buf`).
        between.header_timer.start();
        if buf.is_empty() && !wait_for_bytes(&mut stream, &mut buf, &mut between).await {
            return;
        }
        let served = serve_request(
            &mut stream,
            &mut buf,
            &mut between,
            &info,
            &proxy,
            &stop,
            trusted,
        );
        if Box::pin(served).await == Step::Close {
            return;
        }
    }
}

/// Wait, between requests, for the first bytes of the next one. `false`: there is none to
/// serve (the client closed, stayed idle past the header timeout, or lbx is stopping).
async fn wait_for_bytes<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    between: &mut BetweenRequests,
) -> bool {
    let read = tokio::select! {
        read = read_more(stream, buf) => read,
        () = between.header_timer.expired() => return false,
        // Shutting down: a connection between requests closes at once.
        () = &mut between.stopped => return false,
    };
    matches!(read, Ok(n) if n > 0)
}

/// Whether the connection goes on after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    NextRequest,
    Close,
}

/// Read the rest of a request head (its first bytes are in `buf`), forward the request and
/// answer it, or answer why not; close the connection here if it does not go on.
async fn serve_request<S: ClientStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    between: &mut BetweenRequests,
    info: &ConnectionInfo,
    proxy: &Arc<Proxy>,
    stop: &StopReceiver,
    trusted: bool,
) -> Step {
    let timeouts = &proxy.policies().timeouts;
    let parsed = match read_head(stream, buf, between).await {
        HeadRead::Request(parsed) => parsed,
        HeadRead::Closed => return Step::Close,
        HeadRead::TimedOut => {
            let error = ProxyError::HeadTimedOut(timeouts.request_headers);
            let _ = answer_error(stream, &error, &RequestId::next(), None, true).await;
            linger(stream).await;
            return Step::Close;
        }
        HeadRead::Invalid(error) => {
            let error = ProxyError::BadRequest(error);
            let id = RequestId::next();
            error.log(&id);
            let _ = answer_error(stream, &error, &id, None, true).await;
            linger(stream).await;
            return Step::Close;
        }
    };
    let id = RequestId::for_request(&parsed.head.headers, trusted);
    if let Some(port) = info.redirect_to_https {
        return match redirect(stream, &parsed, port, &id).await {
            Ok(true) => Step::NextRequest,
            _ => {
                linger(stream).await;
                Step::Close
            }
        };
    }
    let keep_alive = parsed.keep_alive;
    let method = parsed.head.method.clone();
    let version = parsed.head.version;
    let body = match parsed.framing {
        Framing::Empty if parsed.head.headers.contains("content-length") => RequestBody::Length(0),
        Framing::Empty => RequestBody::None,
        Framing::Length(n) => RequestBody::Length(n),
        Framing::Chunked | Framing::UntilClose => RequestBody::Streaming,
    };
    let request = ClientRequest {
        head: parsed.head,
        authority: parsed.authority,
        body,
        expect_continue: parsed.expect_continue,
        upgrade: parsed.upgrade,
        client: info.peer,
        secure: info.secure,
        received_at: std::time::Instant::now(),
        id: id.clone(),
    };

    let (mut reader, mut writer) = stream.halves();
    let source = H1Body::new(
        &mut reader,
        buf,
        BodyDecoder::new(parsed.framing),
        timeouts.client_body,
    );
    let mut interim = Interim {
        writer: &mut writer,
        accepts: version == Version::HTTP_11,
    };
    let Handled {
        result,
        request: mut side,
    } = proxy.handle(request, source, &mut interim).await;
    // The client asked to close, left part of its body unread, or lbx is stopping.
    let must_close = !keep_alive || !side.body_done() || *stop.borrow();
    let next = answer(
        &mut writer,
        result,
        &mut side,
        &method,
        version,
        must_close,
        &id,
    )
    .await;
    let body_done = side.body_done();
    drop(side);
    drop((reader, writer));
    match next {
        Next::Request => Step::NextRequest,
        Next::Close if !body_done => {
            linger(stream).await;
            Step::Close
        }
        Next::Close => {
            let _ = stream.shutdown().await;
            Step::Close
        }
        Next::Tunnel(tunnel) => {
            let (upstream, mut relayed) = *tunnel;
            let tunneled = Box::pin(tunnel::run(stream, buf, upstream, timeouts.tunnel_idle)).await;
            tracing::debug!(client = %info.peer, ?tunneled, "upgraded connection ended");
            // The request stayed in flight on its backend until now; its log line is
            // written as the tunnel ends, with the bytes that went through it.
            relayed.note_tunnel_bytes(tunneled.from_client, tunneled.from_backend);
            drop(relayed);
            let _ = stream.shutdown().await;
            Step::Close
        }
    }
}

/// What the connection does after a response.
enum Next {
    /// Read the next request.
    Request,
    /// Close it.
    Close,
    /// Join it with the backend connection (after `101`); the relayed (empty) body keeps the
    /// request in flight and logs it when the tunnel ends.
    Tunnel(Box<(crate::upstream::UpstreamConn, super::RelayedBody)>),
}

/// Write the response (or lbx's error answer) for one request, and say what the connection
/// does next.
async fn answer<W: AsyncWrite + Unpin, B: ClientSource>(
    writer: &mut W,
    result: Result<Forwarded, ProxyError>,
    side: &mut RequestSide<B>,
    method: &Method,
    version: Version,
    must_close: bool,
    id: &RequestId,
) -> Next {
    match result {
        Ok(mut forwarded) => {
            if let Some(upstream) = forwarded.tunnel.take() {
                return match switch_protocols(writer, &forwarded.head).await {
                    Ok(()) => Next::Tunnel(Box::new((upstream, forwarded.body))),
                    Err(_) => Next::Close,
                };
            }
            let closing = must_close || !forwarded.request_complete;
            let Forwarded { head, mut body, .. } = forwarded;
            let written =
                write_response(writer, head, &mut body, side, method, version, closing).await;
            // The request's side is done with the response (an HTTP/2 backend's pump included).
            body.note_request_bytes(side.feed.received_bytes());
            drop(body);
            match written {
                Ok(true) if !closing => Next::Request,
                _ => Next::Close,
            }
        }
        Err(error) => {
            // After an error the connection stays only if the request was read to its
            // end and the client did nothing wrong.
            let closing = must_close || error.fault() == Fault::Client;
            let answered = match error.response(id) {
                Some(_) => answer_error(writer, &error, id, Some(method), closing)
                    .await
                    .is_ok(),
                None => false,
            };
            if answered && !closing {
                Next::Request
            } else {
                Next::Close
            }
        }
    }
}

/// Relay a `101 Switching Protocols` head, as is: no body follows, HTTP ends here.
async fn switch_protocols<W: AsyncWrite + Unpin>(
    writer: &mut W,
    head: &ResponseHead,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    write_response_head(head.status, &head.reason, &head.headers, &mut out);
    write_all_flushed(writer, &out).await
}

/// Answer `308 Permanent Redirect` to the same URL on HTTPS. `Ok(true)`: the connection may
/// carry another request.
async fn redirect<S: ClientStream>(
    stream: &mut S,
    parsed: &ParsedRequest,
    port: u16,
    id: &RequestId,
) -> std::io::Result<bool> {
    let Some(location) = https_location(parsed.authority.as_deref(), port, &parsed.head.target)
    else {
        let error = ProxyError::Malformed("no Host to redirect to");
        answer_error(stream, &error, id, Some(&parsed.head.method), true).await?;
        return Ok(false);
    };
    // The body (if any) is not read: close after the answer.
    let keep = parsed.keep_alive && parsed.framing == Framing::Empty;
    let mut head = ResponseHead::new(http::StatusCode::PERMANENT_REDIRECT);
    head.headers
        .push(Bytes::from_static(b"Location"), Bytes::from(location));
    head.headers.push(
        Bytes::from_static(b"Content-Length"),
        Bytes::from_static(b"0"),
    );
    head.headers
        .push(Bytes::from_static(b"Date"), super::headers::http_date());
    head.headers.push(
        Bytes::from_static(b"X-Request-Id"),
        Bytes::copy_from_slice(id.as_bytes()),
    );
    if !keep {
        head.headers.push(
            Bytes::from_static(b"Connection"),
            Bytes::from_static(b"close"),
        );
    }
    let mut out = BytesMut::new();
    write_response_head(head.status, &head.reason, &head.headers, &mut out);
    write_all_flushed(stream, &out).await?;
    Ok(keep)
}

/// Read until a complete request head is in `buf`, within the header timeout started by the
/// caller.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    between: &mut BetweenRequests,
) -> HeadRead {
    loop {
        if !buf.is_empty() {
            match parse_request(buf) {
                Ok(Some(parsed)) => return HeadRead::Request(parsed),
                Ok(None) => {}
                Err(error) => return HeadRead::Invalid(error),
            }
        }
        let idle = buf.is_empty();
        let read = tokio::select! {
            read = read_more(stream, buf) => read,
            () = between.header_timer.expired() => {
                return if idle { HeadRead::Closed } else { HeadRead::TimedOut };
            }
            // Shutting down: a connection between requests closes at once.
            () = &mut between.stopped, if idle => return HeadRead::Closed,
        };
        match read {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Read more of a request head into `buf`. A connection between requests holds no buffer at
/// all: what the last request left is released (its head and body were slices of it), and
/// the wait for the next head reads into a buffer on the stack for the length of one poll,
/// allocating only once bytes arrive. A head that needs more gets room as usual. Measured:
/// keeping the last request's buffer cost ~4 KiB per idle keep-alive connection (`idle10k` in
/// bench/compare.sh); a 1 KiB buffer waiting for the next head another 1 KiB (heaptrack, 5,000
/// idle connections: 6.2 -> 5.2 KiB of heap each).
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.is_empty() {
        // Whatever capacity the last request left goes now, not when the next one comes.
        *buf = BytesMut::new();
        return std::future::poll_fn(|cx| {
            let mut first = [std::mem::MaybeUninit::<u8>::uninit(); IDLE_READ_SIZE];
            let mut read = tokio::io::ReadBuf::uninit(&mut first);
            std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            *buf = BytesMut::with_capacity(IDLE_READ_SIZE);
            buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(n))
        })
        .await;
    }
    read_into(stream, buf, HEAD_READ_SIZE).await
}

/// What a connection waits on while it reads a request head — the header timeout and the stop
/// signal — kept for the connection's life. Made anew per request they cost a timer-wheel
/// insert and removal and a waiter on the shared stop signal (under its lock) per request;
/// kept, the timer is armed once and re-armed only when it fires before the current deadline
/// (a keep-alive connection answering many requests a second moves the deadline on every
/// request, the timer once per `request_headers`).
struct BetweenRequests {
    header_timer: HeaderTimer,
    /// Resolves once stop is raised; never polled after that (the connection ends).
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl BetweenRequests {
    fn new(stop: &StopReceiver, header_timeout: Duration) -> Self {
        let mut stop = stop.clone();
        Self {
            header_timer: HeaderTimer::new(header_timeout),
            stopped: Box::pin(async move { shutdown::stopped(&mut stop).await }),
        }
    }
}

/// A timeout restarted for every request and rarely reached; restarting it only moves the
/// deadline (the timer underneath catches up when it fires, see [`DeadlineTimer`]).
struct HeaderTimer {
    timeout: Duration,
    deadline: Instant,
    timer: DeadlineTimer,
}

impl HeaderTimer {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: far_or(Instant::now(), timeout),
            timer: DeadlineTimer::new(),
        }
    }

    /// Start the timeout over from now.
    fn start(&mut self) {
        self.deadline = far_or(Instant::now(), self.timeout);
    }

    /// Resolves at the deadline.
    async fn expired(&mut self) {
        std::future::poll_fn(|cx| self.timer.poll(cx, Some((self.deadline, ())))).await;
    }
}

/// `now + timeout`, or a year from now if that does not fit.
fn far_or(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Interim responses to an HTTP/1.1 client.
struct Interim<'w, W> {
    writer: &'w mut W,
    accepts: bool,
}

impl<W: AsyncWrite + Unpin + Send> InterimSink for Interim<'_, W> {
    fn accepts_interim(&self) -> bool {
        // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
        self.accepts
    }

    async fn send_interim(&mut self, head: &ResponseHead) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        write_response_head(head.status, &head.reason, &head.headers, &mut out);
        write_all_flushed(self.writer, &out).await
    }
}

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    None,
    Length,
    Chunked,
    UntilClose,
}

/// Write a forwarded response to the client. `Ok(true)`: the whole response went out and the
/// connection may carry another request (if the caller's `closing` allows).
async fn write_response<W: AsyncWrite + Unpin, B: ClientSource>(
    writer: &mut W,
    mut head: ResponseHead,
    body: &mut super::RelayedBody,
    side: &mut RequestSide<B>,
    method: &Method,
    version: Version,
    mut closing: bool,
) -> std::io::Result<bool> {
    let encoding = if !response_has_body(method, head.status) {
        Encoding::None
    } else {
        match body.framing() {
            Framing::Empty => {
                head.headers.push(
                    Bytes::from_static(b"Content-Length"),
                    Bytes::from_static(b"0"),
                );
                Encoding::None
            }
            Framing::Length(n) => {
                head.headers.push(
                    Bytes::from_static(b"Content-Length"),
                    Bytes::from(n.to_string()),
                );
                Encoding::Length
            }
            Framing::Chunked | Framing::UntilClose if version == Version::HTTP_11 => {
                head.headers.push(
                    Bytes::from_static(b"Transfer-Encoding"),
                    Bytes::from_static(b"chunked"),
                );
                Encoding::Chunked
            }
            // An HTTP/1.0 client cannot read chunks: the body ends when lbx closes.
            Framing::Chunked | Framing::UntilClose => {
                closing = true;
                Encoding::UntilClose
            }
        }
    };
    if closing {
        head.headers.push(
            Bytes::from_static(b"Connection"),
            Bytes::from_static(b"close"),
        );
    } else if version == Version::HTTP_10 {
        head.headers.push(
            Bytes::from_static(b"Connection"),
            Bytes::from_static(b"keep-alive"),
        );
    }
    let mut out = BytesMut::new();
    write_response_head(head.status, &head.reason, &head.headers, &mut out);
    let head_bytes = out.freeze();
    if encoding == Encoding::None {
        write_all_flushed(writer, &head_bytes).await?;
        // Drain a body the backend sent for a bodiless response (none, normally).
        return Ok(drain(body, side).await);
    }

    // The first piece usually arrived with the response head: send both in one write.
    let first = std::future::poll_fn(|cx| Poll::Ready(body.poll_chunk(cx))).await;
    let mut pending_head = Some(head_bytes);
    let mut next = match first {
        Poll::Ready(chunk) => chunk,
        Poll::Pending => {
            write_all_flushed(writer, &pending_head.take().expect("head not yet written")).await?;
            next_piece(body, side).await
        }
    };
    loop {
        let head_part = pending_head.take().unwrap_or_default();
        match next {
            Some(Ok(BodyChunk::Data(data))) => {
                if data.is_empty() && head_part.is_empty() {
                    next = next_piece(body, side).await;
                    continue;
                }
                if encoding == Encoding::Chunked && !data.is_empty() {
                    let size = chunk_header(data.len());
                    let mut parts = [
                        IoSlice::new(&head_part),
                        IoSlice::new(size.as_ref()),
                        IoSlice::new(&data),
                        IoSlice::new(CHUNK_END),
                    ];
                    write_all_vectored(writer, &mut parts).await?;
                } else {
                    let mut parts = [IoSlice::new(&head_part), IoSlice::new(&data)];
                    write_all_vectored(writer, &mut parts).await?;
                }
            }
            Some(Ok(BodyChunk::Trailers(trailers))) => {
                if encoding == Encoding::Chunked {
                    let end = last_chunk(Some(&trailers));
                    let mut parts = [IoSlice::new(&head_part), IoSlice::new(&end)];
                    write_all_vectored(writer, &mut parts).await?;
                    // The end is written; what remains is the body's own clean end.
                    return Ok(drain(body, side).await && !closing);
                }
                write_all_flushed(writer, &head_part).await?;
            }
            Some(Err(_)) => {
                // The backend broke the body: the client must see an incomplete message, so
                // the connection closes without the body's end.
                write_all_flushed(writer, &head_part).await?;
                return Ok(false);
            }
            None => {
                if encoding == Encoding::Chunked {
                    let end = last_chunk(None);
                    let mut parts = [IoSlice::new(&head_part), IoSlice::new(&end)];
                    write_all_vectored(writer, &mut parts).await?;
                } else {
                    write_all_flushed(writer, &head_part).await?;
                }
                return Ok(!closing);
            }
        }
        next = next_piece(body, side).await;
    }
}

/// The next piece of the response body, moving the request body into an HTTP/2 backend
/// meanwhile (a stream can flow both ways at once). A client body that fails resets the
/// backend stream, which then ends the response body in an error.
async fn next_piece<B: ClientSource>(
    body: &mut super::RelayedBody,
    side: &mut RequestSide<B>,
) -> Option<Result<BodyChunk, crate::upstream::ResponseBodyError>> {
    std::future::poll_fn(|cx| {
        if side.is_pumping() {
            let _ = side.poll_pump(cx);
        }
        body.poll_chunk(cx)
    })
    .await
}

/// Read a body to its end without relaying it. `true` if it ended cleanly.
async fn drain<B: ClientSource>(body: &mut super::RelayedBody, side: &mut RequestSide<B>) -> bool {
    loop {
        match next_piece(body, side).await {
            Some(Ok(_)) => {}
            Some(Err(_)) => return false,
            None => return true,
        }
    }
}

/// Answer with lbx's own error response (its body left out for a `HEAD` request: a body
/// there would be read as the start of the next response).
async fn answer_error<W: AsyncWrite + Unpin>(
    writer: &mut W,
    error: &ProxyError,
    id: &RequestId,
    method: Option<&Method>,
    closing: bool,
) -> std::io::Result<()> {
    let Some((mut head, body)) = error.response(id) else {
        return Ok(());
    };
    head.headers.push(
        Bytes::from_static(b"Content-Length"),
        Bytes::from(body.len().to_string()),
    );
    if closing {
        head.headers.push(
            Bytes::from_static(b"Connection"),
            Bytes::from_static(b"close"),
        );
    }
    let mut out = BytesMut::new();
    write_response_head(head.status, &head.reason, &head.headers, &mut out);
    if method != Some(&Method::HEAD) {
        out.extend_from_slice(&body);
    }
    write_all_flushed(writer, &out).await
}

/// Close after a response while the client may still be sending: stop writing, then read and
/// discard briefly so that the close does not become a reset that destroys the response.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let discard = async {
        // On the heap: in the connection's future it would cost every connection 8 KiB.
        let mut scratch = vec![0u8; 8192];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, discard).await;
}
