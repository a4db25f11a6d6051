//! Accepting client connections: HTTP/1.1 and HTTP/2 (prior knowledge, h2c) on one port, each
//! connection on its own task, and a graceful stop that lets in-flight requests finish.
//!
//! The protocol is told apart by peeking at the first bytes (nothing is consumed): the HTTP/2
//! connection preface starts with `PRI * HTTP/2.0`, which no HTTP/1.1 request line does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::{Proxy, client_h1, client_h2};
use crate::accept::accept_loop;
use crate::shutdown::StopReceiver;

/// Serve clients on `listener` until `shutdown` turns true, then stop accepting and give open
/// connections up to `drain` to finish their requests; whatever is still open then is closed.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    mut shutdown: StopReceiver,
    drain: Duration,
) {
    let stop = shutdown.clone();
    let connections = accept_loop(&listener, &mut shutdown, "proxy", |stream, peer| {
        serve_connection(stream, peer, proxy.clone(), stop.clone())
    })
    .await;
    drop(listener);
    tracing::info!(
        drain_secs = drain.as_secs_f64(),
        open_connections = connections.len(),
        "stopped accepting; draining connections"
    );
    let open = connections.len();
    if !connections.drain(drain).await {
        tracing::warn!(
            open_connections = open,
            "drain time elapsed with requests still in flight; closing them"
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    stop: StopReceiver,
) {
    match sniff(&stream, proxy.policies().timeouts.request_headers).await {
        Some(Protocol::Http2) => client_h2::serve(stream, peer, proxy, stop).await,
        Some(Protocol::Http1) => client_h1::serve(stream, peer, proxy, stop).await,
        None => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Which protocol the client speaks, from its first bytes; `None` if it closed or sent nothing
/// within `timeout`.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0";
    let deadline = tokio::time::Instant::now() + timeout;
    let mut peeked = [0u8; 14];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut peeked))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if !PREFACE.starts_with(&peeked[..n]) {
            return Some(Protocol::Http1);
        }
        if n == PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // A prefix of the preface so far: wait for more (peek would return the same bytes at
        // once, so pause rather than spin).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
