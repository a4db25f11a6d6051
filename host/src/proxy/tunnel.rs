//! After `101 Switching Protocols` (a WebSocket, say): the client's connection and the
//! backend's are joined and bytes flow both ways, as they come, until either side closes — an
//! end of stream from one side is passed on as a half-close to the other — or nothing has
//! moved in either direction for `[timeouts] tunnel_idle`.
//!
//! The bytes read from each side are counted, for the request's access line and the backend's
//! byte counters: a WebSocket's traffic is all tunnel, none of it an HTTP body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::upstream::UpstreamConn;

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides finished (or one failed).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// How a tunnel ended and what went through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunneled {
    /// Why it ended.
    pub end: TunnelEnd,
    /// Bytes read from the client (for the backend).
    pub from_client: u64,
    /// Bytes read from the backend (for the client).
    pub from_backend: u64,
}

/// Join `client` (with `client_buf`, bytes it already sent after the upgrade request) and the
/// backend connection, until both are done or the tunnel idles for `idle`.
pub async fn run<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    client_buf: &mut BytesMut,
    upstream: UpstreamConn,
    idle: Duration,
) -> Tunneled {
    let UpstreamConn {
        stream: backend,
        buf: backend_buf,
        ..
    } = upstream;
    let mut backend = backend;
    let mut tunneled = Tunneled {
        end: TunnelEnd::Closed,
        from_client: client_buf.len() as u64,
        from_backend: backend_buf.len() as u64,
    };
    // What either side sent right after the switch, while lbx was still reading HTTP.
    if !client_buf.is_empty() {
        if backend.write_all(client_buf).await.is_err() || backend.flush().await.is_err() {
            return tunneled;
        }
        client_buf.clear();
    }
    if !backend_buf.is_empty()
        && (client.write_all(&backend_buf).await.is_err() || client.flush().await.is_err())
    {
        return tunneled;
    }
    let started = Instant::now();
    let last_moved = Arc::new(AtomicU64::new(0));
    let mut client = Activity {
        inner: client,
        started,
        last_moved: last_moved.clone(),
        read: 0,
    };
    let mut backend = Activity {
        inner: &mut backend,
        started,
        last_moved: last_moved.clone(),
        read: 0,
    };
    tunneled.end = {
        let copying = tokio::io::copy_bidirectional(&mut client, &mut backend);
        tokio::pin!(copying);
        loop {
            let moved = started + Duration::from_millis(last_moved.load(Ordering::Relaxed));
            tokio::select! {
                _ = &mut copying => break TunnelEnd::Closed,
                _ = tokio::time::sleep_until(moved + idle) => {
                    let moved = started + Duration::from_millis(last_moved.load(Ordering::Relaxed));
                    if moved + idle <= Instant::now() {
                        break TunnelEnd::Idle;
                    }
                }
            }
        }
    };
    tunneled.from_client += client.read;
    tunneled.from_backend += backend.read;
    tunneled
}

/// A stream that notes when bytes last moved through it, and counts those read from it.
struct Activity<'a, S> {
    inner: &'a mut S,
    started: Instant,
    last_moved: Arc<AtomicU64>,
    read: u64,
}

impl<S> Activity<'_, S> {
    fn moved(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_moved.store(now, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.read += (buf.filled().len() - before) as u64;
            self.moved();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
