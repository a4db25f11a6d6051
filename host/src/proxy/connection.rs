//! What the request path knows about a client connection: who is at the other end, whether it
//! came over TLS, and whether its listener only redirects to HTTPS. And the one thing the
//! HTTP/1.1 loop needs of a stream: its read and write halves, used at the same time.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection's facts.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS (so backends are told `X-Forwarded-Proto: https`).
    pub secure: bool,
    /// When set, every request is answered `308` to `https://` on this port instead of being
    /// proxied (`[tls] redirect_http` on the plain listener).
    pub redirect_to_https: Option<u16>,
}

/// A client stream whose halves can be read and written at once (the request body is read
/// while interim responses are written).
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The read half.
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    /// The write half.
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;
    /// Both halves, borrowed.
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

impl ClientStream for TcpStream {
    type Reader<'a> = tokio::net::tcp::ReadHalf<'a>;
    type Writer<'a> = tokio::net::tcp::WriteHalf<'a>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        // Free: both halves borrow the socket.
        self.split()
    }
}

impl ClientStream for TlsStream<TcpStream> {
    type Reader<'a> = tokio::io::ReadHalf<&'a mut TlsStream<TcpStream>>;
    type Writer<'a> = tokio::io::WriteHalf<&'a mut TlsStream<TcpStream>>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        // One TLS session serves both directions, so the halves share it behind a lock.
        tokio::io::split(self)
    }
}

/// `https://<host>[:port]<target>` for a request to `authority` (its port replaced by the
/// HTTPS listener's), or `None` when the request names no host.
pub fn https_location(authority: Option<&[u8]>, port: u16, target: &[u8]) -> Option<String> {
    let authority = std::str::from_utf8(authority?).ok()?;
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    let target = std::str::from_utf8(target).ok()?;
    let target = if target == "*" { "/" } else { target };
    Some(match port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    })
}

#[cfg(test)]
mod tests {
    use super::https_location;

    #[test]
    fn the_redirect_keeps_host_and_target_and_uses_the_https_port() {
        let at =
            |authority: &str, port| https_location(Some(authority.as_bytes()), port, b"/a?b=1");
        assert_eq!(
            at("shop.example:8080", 443).unwrap(),
            "https://shop.example/a?b=1"
        );
        assert_eq!(
            at("shop.example", 8443).unwrap(),
            "https://shop.example:8443/a?b=1"
        );
        assert_eq!(at("[::1]:80", 8443).unwrap(), "https://[::1]:8443/a?b=1");
        assert_eq!(https_location(None, 443, b"/"), None);
    }
}
