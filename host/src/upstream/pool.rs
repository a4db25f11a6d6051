//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! A connection is a socket and its read buffer, nothing else: no task of its own, no channel.
//! The request that takes it from the pool writes and reads it directly (see [`super::exchange`])
//! and the response body hands it back when the response has ended cleanly. (hyper's
//! `client::conn` puts a connection task and a channel hop between the request and the socket
//! on every exchange; hyper-util's legacy client adds a pool lock, a checkout future and a
//! spawned task per request, and drops the request on a connect error.)
//!
//! An idle connection the backend has closed is noticed when it is taken (a read that returns
//! end of file, or bytes nobody asked for) and discarded; one closed in the instant after that
//! check is reported by the exchange as stale, and the request goes again on a new connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use tokio::net::TcpStream;

/// Settings of every backend's pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Discard idle connections older than this.
    pub idle_timeout: Duration,
    /// Idle connections kept per backend.
    pub max_idle: usize,
}

/// Why no connection could be made (nothing was sent).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// The backend refused, or the address did not resolve.
    #[error("connect failed: {0}")]
    Failed(String),
    /// No answer within the connect timeout.
    #[error("connect timed out after {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// An open connection to a backend.
#[derive(Debug)]
pub struct UpstreamConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read from it and not yet consumed.
    pub buf: BytesMut,
    /// Whether it served an earlier request (so a close before any answer may be the backend
    /// ending an idle connection rather than failing this request).
    pub reused: bool,
}

/// Idle connections to one backend.
#[derive(Debug)]
pub struct ConnectionPool {
    authority: Authority,
    settings: PoolSettings,
    idle: Mutex<Vec<IdleConnection>>,
}

#[derive(Debug)]
struct IdleConnection {
    conn: UpstreamConn,
    since: Instant,
}

impl ConnectionPool {
    /// An empty pool for the backend at `authority`.
    pub fn new(authority: Authority, settings: PoolSettings) -> Self {
        Self {
            authority,
            settings,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently returned idle connection that is still open, if any.
    pub fn take_idle(&self) -> Option<UpstreamConn> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop()?;
            if idle.since.elapsed() < self.settings.idle_timeout && still_open(&idle.conn) {
                let mut conn = idle.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Open a new connection.
    pub async fn connect(&self) -> Result<UpstreamConn, ConnectError> {
        let timeout = self.settings.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.authority.as_str()))
            .await
            .map_err(|_| ConnectError::TimedOut(timeout))?
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(UpstreamConn {
            stream,
            buf: BytesMut::new(),
            reused: false,
        })
    }

    /// Keep `conn` for a later request (the caller has read its last response completely).
    pub fn put_back(&self, conn: UpstreamConn) {
        if !conn.buf.is_empty() {
            return; // bytes after the response: the backend is out of step, do not reuse
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.settings.max_idle {
            idle.push(IdleConnection {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }
}

/// Whether an idle connection is still usable: the backend has neither closed it nor sent
/// anything on it. Non-blocking; tokio answers from the readiness it already knows, without a
/// system call, unless the socket was reported readable.
fn still_open(conn: &UpstreamConn) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn settings() -> PoolSettings {
        PoolSettings {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_idle: 2,
        }
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = ConnectionPool::new(authority, settings());
        let conn = pool.connect().await.unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        pool.put_back(conn);
        server_side.shutdown().await.unwrap();
        drop(server_side);
        // Let the reactor see the FIN.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take_idle().is_none());
    }

    #[tokio::test]
    async fn an_open_idle_connection_is_reused_and_marked_so() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = ConnectionPool::new(authority, settings());
        let conn = pool.connect().await.unwrap();
        let _server_side = listener.accept().await.unwrap();
        assert!(!conn.reused);
        pool.put_back(conn);
        let again = pool.take_idle().expect("still open");
        assert!(again.reused);
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = ConnectionPool::new(authority, settings());
        for _ in 0..3 {
            let conn = pool.connect().await.unwrap();
            let _ = listener.accept().await.unwrap();
            pool.put_back(conn);
        }
        assert_eq!(pool.idle_count(), 2);
    }
}
