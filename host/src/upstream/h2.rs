//! HTTP/2 to backends (`h2c://`, or `https://` when ALPN picks `h2`), through `h2` directly: a
//! few multiplexed connections per backend, not one per request. A request takes the connection
//! with the fewest streams open; another connection is opened only when every one has
//! [`STREAMS_PER_CONNECTION`] streams, up to [`MAX_CONNECTIONS`].
//!
//! Why not hyper's client: for every request it spawned a task that piped the body and hopped
//! a channel to the connection's task — in the `h2` benchmark scenario ~24% of lbx's CPU
//! (README, "Performance"). Here the request's own task opens the stream
//! ([`h2::client::SendRequest::send_request`]), writes the body on its `SendStream`
//! ([`crate::proxy`]'s request side) and reads the answer from its `RecvStream`
//! ([`super::response_body`]); the connection's task only reads and writes the socket and sends
//! the keep-alive PINGs.
//!
//! The connection's settings are the ones lbx used through hyper (its defaults, with larger
//! windows), so backends see the same peer: 1 MiB stream and 4 MiB connection windows, 16 KiB
//! of header list, 1 MiB of send buffer, no server push. A PING goes out every keep-alive
//! period; a backend that has not answered it by the next is taken for dead and the connection
//! is dropped (its streams fail, and the next request opens a new one).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong};

use super::transport::UpstreamStream;

/// Streams on one connection before another is opened.
pub const STREAMS_PER_CONNECTION: usize = 100;
/// Most HTTP/2 connections to one backend.
pub const MAX_CONNECTIONS: usize = 4;

/// Receive window per stream: a body is not throttled to the protocol's 64 KiB per round trip.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Receive window of a whole connection.
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Largest header list accepted from a backend (hyper's default).
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Most bytes buffered to send per stream (hyper's default for clients).
const MAX_SEND_BUFFER: usize = 1024 * 1024;

/// One HTTP/2 connection to a backend and its open streams.
#[derive(Debug)]
struct Connection {
    sender: SendRequest<Bytes>,
    state: Arc<ConnectionState>,
}

/// What a connection's streams and its pool both see of it.
#[derive(Debug, Default)]
struct ConnectionState {
    /// Streams open on it.
    open: AtomicUsize,
    /// It takes no more requests (closed, going away, or found broken by a request).
    closed: AtomicBool,
}

/// A stream's claim on its connection, released when the exchange (response body included) is
/// over.
#[derive(Debug)]
pub struct StreamSlot {
    state: Arc<ConnectionState>,
}

impl StreamSlot {
    /// The connection refused a new stream: no request is given to it any more.
    pub fn connection_unusable(&self) {
        self.state.closed.store(true, Ordering::Relaxed);
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.state.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A sender for one request, with its slot.
#[derive(Debug)]
pub struct H2Stream {
    /// Where to open the request's stream.
    pub sender: SendRequest<Bytes>,
    /// Counts the stream as open until dropped.
    pub slot: StreamSlot,
    /// Whether the connection carried requests before.
    pub reused: bool,
}

/// A backend's HTTP/2 connections.
#[derive(Debug, Default)]
pub struct H2Connections {
    connections: Mutex<Vec<Connection>>,
    /// Serialises opening connections, so a burst of requests to a cold backend shares one.
    opening: tokio::sync::Mutex<()>,
}

impl H2Connections {
    /// A stream on an existing connection with room for it, if any.
    pub fn checkout(&self) -> Option<H2Stream> {
        let mut connections = self.connections.lock().expect("h2 connections lock");
        connections.retain(|c| !c.state.closed.load(Ordering::Relaxed));
        let least = connections
            .iter()
            .min_by_key(|c| c.state.open.load(Ordering::Relaxed))?;
        let open = least.state.open.load(Ordering::Relaxed);
        if open >= STREAMS_PER_CONNECTION && connections.len() < MAX_CONNECTIONS {
            return None; // time for another connection
        }
        least.state.open.fetch_add(1, Ordering::Relaxed);
        Some(H2Stream {
            sender: least.sender.clone(),
            slot: StreamSlot {
                state: least.state.clone(),
            },
            reused: true,
        })
    }

    /// Hold while opening a connection; check [`H2Connections::checkout`] again once held.
    pub async fn opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    /// Start HTTP/2 on a new connection, keep it, and take a stream on it. The connection is
    /// driven by a task of its own, with a PING every `keep_alive`.
    pub async fn add(
        &self,
        stream: UpstreamStream,
        keep_alive: Duration,
    ) -> Result<H2Stream, String> {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .enable_push(false);
        let (sender, connection) = builder
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| e.to_string())?;
        let state = Arc::new(ConnectionState {
            open: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(drive(connection, keep_alive, state.clone()));
        let stream = H2Stream {
            sender: sender.clone(),
            slot: StreamSlot {
                state: state.clone(),
            },
            reused: false,
        };
        self.connections
            .lock()
            .expect("h2 connections lock")
            .push(Connection { sender, state });
        Ok(stream)
    }
}

/// Read and write one connection until it closes, or until its backend leaves a PING
/// unanswered for a whole `keep_alive` period; then mark it closed for the pool.
async fn drive(
    mut connection: h2::client::Connection<UpstreamStream, Bytes>,
    keep_alive: Duration,
    state: Arc<ConnectionState>,
) {
    let mut ping_pong = connection.ping_pong();
    let mut outstanding = false;
    let mut period = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    // A late wake-up must not fire two periods at once: the second would find the first PING
    // unanswered before the backend had a period to answer it.
    period.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = poll_fn(|cx| {
        if let Poll::Ready(result) = Pin::new(&mut connection).poll(cx) {
            return Poll::Ready(result.map_err(|e| e.to_string()));
        }
        if outstanding
            && let Some(ping_pong) = &mut ping_pong
            && let Poll::Ready(answer) = ping_pong.poll_pong(cx)
        {
            outstanding = false;
            if answer.is_err() {
                return Poll::Ready(Err("PING not answerable".into()));
            }
        }
        while period.poll_tick(cx).is_ready() {
            if outstanding {
                return Poll::Ready(Err(format!(
                    "no answer to PING within {} ms",
                    keep_alive.as_millis()
                )));
            }
            outstanding = send_ping(ping_pong.as_mut());
            if outstanding {
                // Let the connection write it, and register for its answer.
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    })
    .await;
    state.closed.store(true, Ordering::Relaxed);
    if let Err(error) = ended {
        tracing::debug!(%error, "HTTP/2 backend connection ended with an error");
    }
}

/// Send a keep-alive PING; `true` if one is now out.
fn send_ping(ping_pong: Option<&mut PingPong>) -> bool {
    ping_pong.is_some_and(|p| p.send_ping(Ping::opaque()).is_ok())
}
