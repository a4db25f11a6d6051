//! Connections to one backend: idle HTTP/1.1 connections kept for reuse, and a few
//! multiplexed HTTP/2 connections ([`super::h2`]). Which of the two a backend gets is fixed by
//! its scheme (`http://`, `h2c://`) or, for `https://`, learned from ALPN on each new connection.
//!
//! An HTTP/1.1 connection is a stream and its read buffer, nothing else: no task of its own, no
//! channel. The request that takes it from the pool writes and reads it directly (see
//! [`super::exchange`]) and the response body hands it back when the response has ended
//! cleanly. (hyper's `client::conn` puts a connection task and a channel hop between the
//! request and the socket on every exchange; hyper-util's legacy client adds a pool lock, a
//! checkout future and a spawned task per request, and drops the request on a connect error.)
//!
//! An idle connection the backend has closed is noticed when it is taken and discarded; one
//! closed in the instant after that check is reported by the exchange as stale, and the
//! request goes again on a new connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::h2::{H2Connections, H2Stream};
pub use super::transport::ConnectError;
use super::transport::{Protocol, Transport, UpstreamStream};

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

impl PoolSettings {
    /// For a backend set built only to decide over, never connected to (`lbx check`,
    /// `lbx replay`): no idle connection kept.
    pub fn never_connecting() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_idle: 0,
        }
    }

    /// The settings `config` asks for (`[timeouts] connect`, `[pool]`).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            connect_timeout: config.timeouts.connect,
            idle_timeout: config.pool.idle_timeout,
            max_idle: config.pool.max_idle_per_backend,
        }
    }
}

/// An open HTTP/1.1 connection to a backend.
#[derive(Debug)]
pub struct UpstreamConn {
    /// The stream.
    pub stream: UpstreamStream,
    /// Bytes read from it and not yet consumed.
    pub buf: BytesMut,
    /// Whether it served an earlier request (so a close before any answer may be the backend
    /// ending an idle connection rather than failing this request).
    pub reused: bool,
}

/// A connection (or stream) for one request.
#[derive(Debug)]
pub enum Checkout {
    /// An HTTP/1.1 connection of the request's own.
    Http1(UpstreamConn),
    /// A stream on a shared HTTP/2 connection.
    Http2(H2Stream),
}

/// Connections to one backend.
#[derive(Debug)]
pub struct ConnectionPool {
    transport: Transport,
    settings: PoolSettings,
    idle: Mutex<Vec<IdleConnection>>,
    h2: H2Connections,
    /// What the backend speaks, as last learned (0: not known yet).
    protocol: AtomicU8,
}

#[derive(Debug)]
struct IdleConnection {
    conn: UpstreamConn,
    since: Instant,
}

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

impl ConnectionPool {
    /// An empty pool for the backend reached through `transport`.
    pub fn new(transport: Transport, settings: PoolSettings) -> Self {
        // The scheme says it, except for `https://`, where ALPN will.
        let protocol = match transport.known_protocol() {
            Some(Protocol::Http1) => HTTP1,
            Some(Protocol::Http2) => HTTP2,
            None => UNKNOWN,
        };
        Self {
            transport,
            settings,
            idle: Mutex::new(Vec::new()),
            h2: H2Connections::default(),
            protocol: AtomicU8::new(protocol),
        }
    }

    /// How the backend is reached.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A connection or stream for one request: reused when one is free, new otherwise.
    pub async fn checkout(&self) -> Result<Checkout, ConnectError> {
        match self.protocol.load(Ordering::Relaxed) {
            HTTP1 => self.checkout_h1().await,
            HTTP2 => self.checkout_h2().await,
            _ => {
                // Not known yet (`https://` before its first connection): one request finds
                // out while the others wait, so a burst does not open a connection each to an
                // HTTP/2 backend.
                let opening = self.h2.opening().await;
                match self.protocol.load(Ordering::Relaxed) {
                    HTTP2 => {
                        if let Some(stream) = self.h2.checkout() {
                            return Ok(Checkout::Http2(stream));
                        }
                        self.connect().await
                    }
                    HTTP1 => {
                        drop(opening);
                        self.checkout_h1().await
                    }
                    _ => self.connect().await,
                }
            }
        }
    }

    async fn checkout_h1(&self) -> Result<Checkout, ConnectError> {
        if let Some(conn) = self.take_idle() {
            return Ok(Checkout::Http1(conn));
        }
        self.connect().await
    }

    /// A new connection for one request (after a pooled one turned out stale).
    pub async fn connect(&self) -> Result<Checkout, ConnectError> {
        let connected = self.transport.connect().await?;
        match connected.protocol {
            Protocol::Http1 => {
                self.protocol.store(HTTP1, Ordering::Relaxed);
                Ok(Checkout::Http1(UpstreamConn {
                    stream: connected.stream,
                    buf: BytesMut::new(),
                    reused: false,
                }))
            }
            Protocol::Http2 => {
                self.protocol.store(HTTP2, Ordering::Relaxed);
                self.h2
                    .add(connected.stream, self.settings.idle_timeout)
                    .await
                    .map(Checkout::Http2)
                    .map_err(ConnectError::Failed)
            }
        }
    }

    async fn checkout_h2(&self) -> Result<Checkout, ConnectError> {
        if let Some(stream) = self.h2.checkout() {
            return Ok(Checkout::Http2(stream));
        }
        // One connection opens at a time; requests that waited for it share it.
        let _opening = self.h2.opening().await;
        if let Some(stream) = self.h2.checkout() {
            return Ok(Checkout::Http2(stream));
        }
        self.connect().await
    }

    /// The most recently returned idle HTTP/1.1 connection that is still open, if any.
    pub fn take_idle(&self) -> Option<UpstreamConn> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop()?;
            if idle.since.elapsed() < self.settings.idle_timeout && idle.conn.stream.still_open() {
                let mut conn = idle.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
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

    /// Idle HTTP/1.1 connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendScheme;
    use tokio::io::AsyncWriteExt;

    fn pool(addr: std::net::SocketAddr, max_idle: usize) -> ConnectionPool {
        let settings = PoolSettings {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_idle,
        };
        let transport = Transport::new(
            addr.to_string().parse().unwrap(),
            BackendScheme::Http,
            None,
            settings.connect_timeout,
        )
        .unwrap();
        ConnectionPool::new(transport, settings)
    }

    /// A new HTTP/1.1 connection (not one from the idle list).
    async fn http1(pool: &ConnectionPool) -> UpstreamConn {
        match pool.connect().await.unwrap() {
            Checkout::Http1(conn) => conn,
            Checkout::Http2(_) => panic!("http:// is HTTP/1.1"),
        }
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool(listener.local_addr().unwrap(), 2);
        let conn = http1(&pool).await;
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
        let pool = pool(listener.local_addr().unwrap(), 2);
        let conn = http1(&pool).await;
        let _server_side = listener.accept().await.unwrap();
        assert!(!conn.reused);
        pool.put_back(conn);
        let again = pool.take_idle().expect("still open");
        assert!(again.reused);
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool(listener.local_addr().unwrap(), 2);
        let mut held = Vec::new();
        for _ in 0..3 {
            let conn = http1(&pool).await;
            held.push(listener.accept().await.unwrap());
            pool.put_back(conn);
        }
        assert_eq!(pool.idle_count(), 2);
    }
}
