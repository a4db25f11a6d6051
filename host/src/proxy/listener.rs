//! The proxy's listening ports: plain HTTP (HTTP/1.1 and HTTP/2 prior knowledge on one port,
//! or only a redirect to HTTPS) and HTTPS (HTTP/1.1 and HTTP/2 by ALPN), each connection on
//! its own task, and a graceful stop that lets in-flight requests finish.
//!
//! On a plain port the protocol is told apart by peeking at the first bytes (nothing is
//! consumed): the HTTP/2 connection preface starts with `PRI * HTTP/2.0`, which no HTTP/1.1
//! request line does. On the HTTPS port ALPN says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::connection::ConnectionInfo;
use super::metrics::{ClientProtocol, ListenerKind};
use super::{Proxy, client_h1, client_h2};
use crate::accept::{Connections, accept_loop};
use crate::shutdown::StopReceiver;
use crate::tls::TlsTerminator;
use crate::tls::server::Negotiated;

/// What a listening port does.
#[derive(Debug, Clone)]
pub enum Role {
    /// Plain HTTP, proxied.
    Plain,
    /// Plain HTTP, every request answered `308` to `https://` on this port.
    RedirectToHttps(u16),
    /// HTTPS.
    Tls(TlsTerminator),
}

/// A bound port and what it does.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Its role.
    pub role: Role,
}

/// Serve clients on every listener until `shutdown` turns true, then stop accepting and give
/// open connections up to `drain` to finish their requests; whatever is still open then is
/// closed.
pub async fn serve(
    listeners: Vec<Listener>,
    proxy: Arc<Proxy>,
    shutdown: StopReceiver,
    drain: Duration,
) {
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(accept_on(listener, proxy.clone(), shutdown.clone())))
        .collect();
    let mut open = Vec::new();
    for accepting in loops {
        if let Ok(connections) = accepting.await {
            open.push(connections);
        }
    }
    let count: usize = open.iter().map(Connections::len).sum();
    tracing::info!(
        drain_secs = drain.as_secs_f64(),
        open_connections = count,
        "stopped accepting; draining connections"
    );
    let drains: Vec<_> = open
        .into_iter()
        .map(|connections| tokio::spawn(connections.drain(drain)))
        .collect();
    let mut drained = true;
    for draining in drains {
        drained &= draining.await.unwrap_or(false);
    }
    if !drained {
        tracing::warn!("drain time elapsed with requests still in flight; closing them");
    }
}

async fn accept_on(listener: Listener, proxy: Arc<Proxy>, mut stop: StopReceiver) -> Connections {
    let Listener { tcp, role } = listener;
    let name = match role {
        Role::Tls(_) => "https",
        _ => "http",
    };
    let connection_stop = stop.clone();
    accept_loop(&tcp, &mut stop, name, |stream, peer| {
        serve_connection(
            stream,
            peer,
            role.clone(),
            proxy.clone(),
            connection_stop.clone(),
        )
    })
    .await
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    proxy: Arc<Proxy>,
    stop: StopReceiver,
) {
    let timeout = proxy.policies().timeouts.request_headers;
    let mut info = ConnectionInfo {
        peer,
        secure: false,
        redirect_to_https: None,
    };
    match role {
        Role::Tls(terminator) => {
            // Boxed: a handshake in progress is ~1.5 KiB, and a plain connection's task
            // should not carry room for it.
            let Some((stream, negotiated)) =
                Box::pin(terminator.accept(stream, timeout, peer)).await
            else {
                return;
            };
            info.secure = true;
            let protocol = match negotiated {
                Negotiated::Http2 => ClientProtocol::Http2,
                Negotiated::Http1 => ClientProtocol::Http1,
            };
            let _open = proxy.connections().opened(ListenerKind::Https, protocol);
            match negotiated {
                Negotiated::Http2 => Box::pin(client_h2::serve(stream, info, proxy, stop)).await,
                Negotiated::Http1 => Box::pin(client_h1::serve(stream, info, proxy, stop)).await,
            }
        }
        Role::Plain | Role::RedirectToHttps(_) => {
            if let Role::RedirectToHttps(port) = role {
                info.redirect_to_https = Some(port);
            }
            // HTTP/2's connection future boxed: the task holds room for the HTTP/1.1 one, the
            // common case and small (it boxes each request's state itself), not for both.
            match sniff(&stream, timeout).await {
                Some(Protocol::Http2) => {
                    let _open = proxy
                        .connections()
                        .opened(ListenerKind::Http, ClientProtocol::Http2);
                    Box::pin(client_h2::serve(stream, info, proxy, stop)).await
                }
                Some(Protocol::Http1) => {
                    let _open = proxy
                        .connections()
                        .opened(ListenerKind::Http, ClientProtocol::Http1);
                    client_h1::serve(stream, info, proxy, stop).await
                }
                None => {}
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, C, D, E, R>(_: impl FnOnce(A, B, C, D, E) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// A plain connection's task is what an idle keep-alive connection costs in memory (with
    /// its socket's registration and timers): it must not hold room for a TLS handshake or a
    /// request in flight, which are boxed while they last (`idle10k` in bench/compare.sh).
    #[test]
    fn a_plain_connection_task_holds_no_room_for_a_handshake_or_a_request() {
        let size = future_size(serve_connection);
        assert!(
            size <= 1024,
            "a connection's task future is {size} bytes: something large is held inline"
        );
    }
}
