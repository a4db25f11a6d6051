//! HTTP/2 to backends (`h2c://`, or `https://` when ALPN picks `h2`), through hyper: a few
//! multiplexed connections per backend, not one per request. A request takes the connection
//! with the fewest streams open; another connection is opened only when every one has
//! [`STREAMS_PER_CONNECTION`] streams, up to [`MAX_CONNECTIONS`].
//!
//! The request body reaches hyper through a channel ([`H2RequestBody`]) that the request's task
//! fills; its end is an explicit message, so a body whose source failed (or whose feeder went
//! away) ends in an error — the stream is reset — and never in a clean END_STREAM.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::mpsc;

use super::transport::UpstreamStream;
use crate::message::BodyChunk;

/// Streams on one connection before another is opened.
pub const STREAMS_PER_CONNECTION: usize = 100;
/// Most HTTP/2 connections to one backend.
pub const MAX_CONNECTIONS: usize = 4;

/// What the request's task sends into an HTTP/2 request body.
#[derive(Debug)]
pub enum Feed {
    /// The next piece.
    Chunk(BodyChunk),
    /// The body ended cleanly.
    End,
}

/// A request body for hyper, fed by the request's task.
#[derive(Debug)]
pub struct H2RequestBody {
    rx: Option<mpsc::Receiver<Feed>>,
    length: Option<u64>,
    ended: bool,
}

/// The body could not be completed: the stream is reset rather than ended.
#[derive(Debug, thiserror::Error)]
#[error("request body abandoned before its end")]
pub struct Abandoned;

impl H2RequestBody {
    /// No body.
    pub fn empty() -> Self {
        Self {
            rx: None,
            length: Some(0),
            ended: true,
        }
    }

    /// A body fed through a channel, with its declared length if known; returns the sender.
    pub fn channel(length: Option<u64>) -> (mpsc::Sender<Feed>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (
            tx,
            Self {
                rx: Some(rx),
                length,
                ended: false,
            },
        )
    }
}

impl Body for H2RequestBody {
    type Data = Bytes;
    type Error = Abandoned;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abandoned>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Feed::Chunk(BodyChunk::Data(data)))) => {
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Feed::Chunk(BodyChunk::Trailers(trailers)))) => Poll::Ready(Some(Ok(
                Frame::trailers(crate::message::to_header_map(&trailers)),
            ))),
            Poll::Ready(Some(Feed::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            // The feeder went away without saying the body ended.
            Poll::Ready(None) => Poll::Ready(Some(Err(Abandoned))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// One HTTP/2 connection to a backend and its open streams.
#[derive(Debug)]
struct Connection {
    sender: SendRequest<H2RequestBody>,
    open: Arc<AtomicUsize>,
}

/// A stream's claim on its connection, released when the exchange (response body included) is
/// over.
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A sender for one request, with its slot.
#[derive(Debug)]
pub struct H2Stream {
    /// Where to send the request.
    pub sender: SendRequest<H2RequestBody>,
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
        connections.retain(|c| !c.sender.is_closed());
        let least = connections
            .iter()
            .filter(|c| c.sender.is_ready())
            .min_by_key(|c| c.open.load(Ordering::Relaxed))?;
        let open = least.open.load(Ordering::Relaxed);
        if open >= STREAMS_PER_CONNECTION && connections.len() < MAX_CONNECTIONS {
            return None; // time for another connection
        }
        least.open.fetch_add(1, Ordering::Relaxed);
        Some(H2Stream {
            sender: least.sender.clone(),
            slot: StreamSlot {
                open: least.open.clone(),
            },
            reused: true,
        })
    }

    /// Hold while opening a connection; check [`H2Connections::checkout`] again once held.
    pub async fn opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    /// Start HTTP/2 on a new connection, keep it, and take a stream on it.
    pub async fn add(
        &self,
        stream: UpstreamStream,
        keep_alive: Duration,
    ) -> Result<H2Stream, String> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            // Larger windows than the protocol's 64 KiB default: a body is not throttled to
            // one window per round trip.
            .initial_stream_window_size(1024 * 1024)
            .initial_connection_window_size(4 * 1024 * 1024)
            .keep_alive_interval(keep_alive)
            .keep_alive_timeout(keep_alive)
            .keep_alive_while_idle(true);
        let (sender, connection) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/2 backend connection ended with an error");
            }
        });
        let open = Arc::new(AtomicUsize::new(1));
        let stream = H2Stream {
            sender: sender.clone(),
            slot: StreamSlot { open: open.clone() },
            reused: false,
        };
        self.connections
            .lock()
            .expect("h2 connections lock")
            .push(Connection { sender, open });
        Ok(stream)
    }
}
