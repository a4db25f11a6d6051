//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! Why not hyper-util's legacy client: it spawns a task per request to return the connection
//! to its pool, goes through a shared pool lock and checkout future per request, and drops the
//! request on a connect error. Here a connection is taken from a per-backend stack, used for
//! exactly one request, and handed back by the response body when it ends (see
//! `proxy::RelayedBody`), and a request that was never written is returned to the caller.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::UpstreamBody;

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

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made; the request was not sent and is handed back.
    #[error("connect failed: {reason}")]
    Connect {
        /// Why.
        reason: String,
        /// The untouched request, for a retry elsewhere.
        request: Box<Request<UpstreamBody>>,
    },
    /// The connection failed after the request was (maybe partly) written.
    #[error("{0}")]
    Exchange(String),
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
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// A connection lent to one request; give it back with [`ConnectionPool::put_back`].
#[derive(Debug)]
pub struct Lease {
    sender: http1::SendRequest<UpstreamBody>,
    pool: Arc<ConnectionPool>,
}

impl Lease {
    /// Return the connection to its pool for the next request (call once the response body
    /// has been read to its end; a connection in mid-response must be dropped instead).
    pub fn put_back(self) {
        self.pool.put_back(self.sender);
    }
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

    /// Send `request` on an idle connection, or a new one. Returns the response head and the
    /// lease to give back when its body is done.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        // A pooled connection may have been closed by the backend while idle; such a request
        // comes back unsent and goes on a fresh connection instead.
        while let Some(mut sender) = self.take_idle() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Exchange(describe(e.error()))),
                },
            }
        }
        let mut sender = match self.connect().await {
            Ok(sender) => sender,
            Err(reason) => {
                return Err(SendError::Connect {
                    reason,
                    request: Box::new(request),
                });
            }
        };
        match sender.send_request(request).await {
            Ok(response) => Ok((response, self.lease(sender))),
            Err(e) => Err(SendError::Exchange(describe(&e))),
        }
    }

    fn lease(self: &Arc<Self>, sender: http1::SendRequest<UpstreamBody>) -> Lease {
        Lease {
            sender,
            pool: self.clone(),
        }
    }

    fn take_idle(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(connection) = idle.pop() {
            if !connection.sender.is_closed()
                && connection.since.elapsed() < self.settings.idle_timeout
            {
                return Some(connection.sender);
            }
        }
        None
    }

    fn put_back(&self, sender: http1::SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.settings.max_idle {
            idle.push(IdleConnection {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<UpstreamBody>, String> {
        let address = self.authority.as_str();
        let stream =
            tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(address))
                .await
                .map_err(|_| {
                    format!(
                        "connect timed out after {:?}",
                        self.settings.connect_timeout
                    )
                })?
                .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| describe(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// hyper's error with its cause, e.g. "connection closed before message completed".
fn describe(error: &hyper::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}
