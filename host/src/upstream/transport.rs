//! How bytes reach one backend: TCP for `http://` and `h2c://`, TLS over TCP for `https://`
//! (ALPN offering `h2` and `http/1.1`, SNI and verification per the backend's settings), and
//! which HTTP version then runs on the connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::BackendScheme;

/// The HTTP version spoken on a backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (lbx's own codec).
    Http1,
    /// HTTP/2 (`h2`), multiplexed.
    Http2,
}

/// How to connect to one backend.
#[derive(Clone)]
pub struct Transport {
    authority: Authority,
    scheme: BackendScheme,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("authority", &self.authority)
            .field("scheme", &self.scheme)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish()
    }
}

/// Why no connection could be made (nothing was sent).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// The backend refused, or the address did not resolve.
    #[error("connect failed: {0}")]
    Failed(String),
    /// No answer (or no finished TLS handshake) within the connect timeout.
    #[error("connect timed out after {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The TLS handshake failed (certificate not trusted, name mismatch...).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

/// A connected stream and the protocol to speak on it.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: UpstreamStream,
    /// What to speak.
    pub protocol: Protocol,
}

impl Transport {
    /// A transport to `authority` by `scheme`; for TLS, with `config` and the SNI name
    /// `server_name` (default: the authority's host).
    pub fn new(
        authority: Authority,
        scheme: BackendScheme,
        tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let tls = match tls {
            Some((config, server_name)) => {
                let host = server_name.unwrap_or_else(|| {
                    authority
                        .host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| format!("{host:?} is not a DNS name or IP address"))?;
                Some((TlsConnector::from(config), name))
            }
            None => None,
        };
        Ok(Self {
            authority,
            scheme,
            tls,
            connect_timeout,
        })
    }

    /// The protocol the scheme fixes (`None` for `https://`, where ALPN decides).
    pub fn known_protocol(&self) -> Option<Protocol> {
        match self.scheme {
            BackendScheme::Http => Some(Protocol::Http1),
            BackendScheme::H2c => Some(Protocol::Http2),
            BackendScheme::Https => None,
        }
    }

    /// The scheme lbx uses toward this backend (`http` or `https`), for HTTP/2's `:scheme`.
    pub fn uri_scheme(&self) -> http::uri::Scheme {
        match self.scheme {
            BackendScheme::Https => http::uri::Scheme::HTTPS,
            _ => http::uri::Scheme::HTTP,
        }
    }

    /// Open a connection: TCP, then TLS for `https://`; the protocol is fixed by the scheme or
    /// chosen by ALPN.
    pub async fn connect(&self) -> Result<Connected, ConnectError> {
        let timeout = self.connect_timeout;
        let connecting = async {
            let tcp = TcpStream::connect(self.authority.as_str())
                .await
                .map_err(|e| ConnectError::Failed(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match (&self.tls, self.scheme) {
                (Some((connector, name)), _) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| ConnectError::Tls(e.to_string()))?;
                    let protocol = match tls.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        _ => Protocol::Http1,
                    };
                    Ok(Connected {
                        stream: UpstreamStream::Tls(Box::new(tls)),
                        protocol,
                    })
                }
                (None, BackendScheme::H2c) => Ok(Connected {
                    stream: UpstreamStream::Tcp(tcp),
                    protocol: Protocol::Http2,
                }),
                (None, _) => Ok(Connected {
                    stream: UpstreamStream::Tcp(tcp),
                    protocol: Protocol::Http1,
                }),
            }
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| ConnectError::TimedOut(timeout))?
    }
}

/// A backend connection's byte stream.
#[derive(Debug)]
pub enum UpstreamStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamStream {
    /// Whether an idle connection is still usable. Plain TCP: neither closed nor sent anything
    /// (a byte nobody asked for means the backend is out of step). TLS: not closed (the
    /// backend may send session tickets after the handshake, which are not an error).
    pub fn still_open(&self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        match self {
            UpstreamStream::Tcp(tcp) => tcp.poll_peek(&mut cx, &mut buf).is_pending(),
            UpstreamStream::Tls(tls) => match tls.get_ref().0.poll_peek(&mut cx, &mut buf) {
                Poll::Pending => true,
                Poll::Ready(Ok(n)) => n > 0,
                Poll::Ready(Err(_)) => false,
            },
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Tcp(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
