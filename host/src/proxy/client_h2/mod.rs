//! HTTP/2 client connections (cleartext with prior knowledge, or TLS with ALPN `h2`), driven
//! through `h2` directly: every stream of a connection is served inside the connection's own
//! task, polled beside the connection, instead of in a task of its own.
//!
//! Why not hyper's server: it spawns a task per stream, so each request paid a task's set-up,
//! scheduling and the wake-ups between the stream's task and the connection's. Here a stream
//! is an entry in a `FuturesUnordered`; its sends wake the one task that also writes the
//! connection, which serves every stream that can move before it writes, so their frames leave
//! together. What it bought (bench/compare.sh `SCENARIOS=h2`, 5 alternating rounds against the
//! hyper build): 1.03× the requests/s, 0.97× the CPU per request, within the noise — the rest
//! of the cost is `h2`'s own framing and HPACK and the backend side (README, "Performance").
//! A first version that polled the connection once per finished stream through `select!`
//! (re-arming its timer each time) wrote more, smaller frames: 1.5× the CPU.
//!
//! The connection's settings are hyper's defaults, so clients see the same peer: 1 MiB stream
//! and connection windows, 16 KiB frames, at most 200 concurrent streams, 16 KiB of header list,
//! 400 KiB of send buffer per stream.
//!
//! A connection with no open stream for `[timeouts] request_headers` is closed (GOAWAY), as an
//! idle HTTP/1.1 connection is: a client that only answers PINGs does not hold a connection
//! forever. A PING goes out every such period; a peer that has not answered the previous one by
//! the next is taken for dead and the connection is dropped. On shutdown, GOAWAY, and the open
//! streams finish (bounded by the same period once their answers are sent).

mod send;
mod stream;

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::{Ping, PingPong};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Proxy;
use super::connection::ConnectionInfo;
use crate::shutdown::{self, StopReceiver};

/// Receive window per stream and per connection (hyper's default).
const WINDOW: u32 = 1024 * 1024;
/// Most streams a client may have open at once (hyper's default).
const MAX_CONCURRENT_STREAMS: u32 = 200;
/// Largest header list accepted (hyper's default).
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Most bytes buffered to send per stream (hyper's default).
const MAX_SEND_BUFFER: usize = 400 * 1024;
/// Streams lbx resets for protocol errors before it closes the connection (hyper's default).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// Serve one HTTP/2 connection until it closes, idles out, or `stop` is raised (then GOAWAY,
/// and open streams finish).
pub async fn serve<S>(stream: S, info: ConnectionInfo, proxy: Arc<Proxy>, mut stop: StopReceiver)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let idle_timeout = proxy.policies().timeouts.request_headers;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
    // The preface and SETTINGS must come within the header timeout, as a request head must.
    let mut connection = match tokio::time::timeout(
        idle_timeout,
        builder.handshake::<_, bytes::Bytes>(stream),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut keepalive = connection.ping_pong().map(KeepAlive::new);
    let mut streams = FuturesUnordered::new();
    let mut idle_since = Instant::now();
    // One timer and one stop future for the connection's life, polled in place: creating them
    // per wake-up would register and deregister a timer each time.
    let check = tokio::time::sleep_until(idle_since + idle_timeout);
    tokio::pin!(check);
    let mut stopped = Box::pin(async move { shutdown::stopped(&mut stop).await });
    // Set once GOAWAY is sent: the connection is dropped at this instant at the latest.
    let mut closing_until: Option<Instant> = None;
    loop {
        let event = poll_fn(|cx| {
            // The connection first: it reads what arrived, hands new streams over, and writes
            // what the streams queued since the last wake-up — all of it in one go.
            loop {
                match connection.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        streams.push(stream::serve(&proxy, request, respond, info));
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Event::Failed(e)),
                    Poll::Ready(None) => return Poll::Ready(Event::Closed),
                    Poll::Pending => break,
                }
            }
            // Then every stream that can move; what they send wakes this task again, and the
            // next pass writes it, batched with whatever else they queued.
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {
                if streams.is_empty() {
                    idle_since = Instant::now();
                }
            }
            if let Poll::Ready(Some(answered)) = poll_pong(&mut keepalive, cx) {
                return Poll::Ready(Event::Pong(answered));
            }
            if closing_until.is_none() && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Stop);
            }
            if check.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Check);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Failed(e) => {
                tracing::debug!(client = %peer, error = %e, "HTTP/2 client connection ended with an error");
                return;
            }
            Event::Closed => return,
            Event::Pong(true) => {}
            Event::Pong(false) => {
                tracing::debug!(client = %peer, "HTTP/2 PING failed, closing");
                return;
            }
            Event::Stop => {
                connection.graceful_shutdown();
                let deadline = Instant::now() + idle_timeout;
                closing_until = Some(deadline);
                check.as_mut().reset(deadline);
            }
            Event::Check => {
                let now = Instant::now();
                if let Some(deadline) = closing_until {
                    if now >= deadline {
                        tracing::debug!(client = %peer, "HTTP/2 connection did not close in time");
                        return;
                    }
                    check.as_mut().reset(deadline);
                    continue;
                }
                if let Some(keepalive) = &mut keepalive
                    && !keepalive.tick()
                {
                    tracing::debug!(client = %peer, "HTTP/2 peer did not answer a PING, closing");
                    return;
                }
                if streams.is_empty() && idle_since + idle_timeout <= now {
                    tracing::debug!(client = %peer, "closing idle HTTP/2 connection");
                    connection.graceful_shutdown();
                    closing_until = Some(now + idle_timeout);
                    check.as_mut().reset(now + idle_timeout);
                } else {
                    let from = if streams.is_empty() {
                        idle_since.max(now)
                    } else {
                        now
                    };
                    check.as_mut().reset(from + idle_timeout);
                }
            }
        }
    }
}

/// What woke the connection's loop for more than serving its streams.
enum Event {
    Failed(h2::Error),
    /// The connection is closed (by the peer, or after GOAWAY once its streams finished).
    Closed,
    /// The outstanding PING was answered (`true`) or cannot be (`false`).
    Pong(bool),
    /// lbx is shutting down.
    Stop,
    /// The idle / keep-alive / closing timer is due.
    Check,
}

/// PINGs that tell a live peer from a dead one while streams wait on it.
struct KeepAlive {
    ping_pong: PingPong,
    /// A PING is out and its answer has not come yet.
    outstanding: bool,
}

impl KeepAlive {
    fn new(ping_pong: PingPong) -> Self {
        Self {
            ping_pong,
            outstanding: false,
        }
    }

    /// A period passed: send the next PING. `false` if the previous one is still unanswered.
    fn tick(&mut self) -> bool {
        if self.outstanding {
            return false;
        }
        self.outstanding = self.ping_pong.send_ping(Ping::opaque()).is_ok();
        true
    }
}

/// `Ready(Some(true))` when the outstanding PING was answered, `Ready(Some(false))` if it
/// cannot be; pending while none is out.
fn poll_pong(
    keepalive: &mut Option<KeepAlive>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Option<bool>> {
    match keepalive {
        Some(k) if k.outstanding => match k.ping_pong.poll_pong(cx) {
            Poll::Ready(Ok(_)) => {
                k.outstanding = false;
                Poll::Ready(Some(true))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Some(false)),
            Poll::Pending => Poll::Pending,
        },
        _ => Poll::Pending,
    }
}
