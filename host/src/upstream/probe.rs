//! One `GET` to a backend on a fresh connection, off the request path: what active health
//! checks and backend signal scrapes send. It goes over the same transport and protocol real
//! requests use (TLS with the backend's verification for `https://`, HTTP/2 for `h2c://` or
//! when ALPN picks it), but not through the pool: a probe must see a dead process or a full
//! accept queue, not a pooled socket, and must never take a connection a request could use.
//!
//! The caller bounds the time (a probe has no clock of its own) and reads as much of the body
//! as it wants; dropping the [`Probed`] response closes the connection.

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

use super::transport::{Protocol, Transport};

/// A probe's response; its connection lives until this is dropped.
#[derive(Debug)]
pub struct Probed {
    /// The response head and its (unread) body.
    pub response: Response<Incoming>,
    connection: JoinHandle<()>,
}

impl Drop for Probed {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// What to ask for.
#[derive(Debug, Clone, Copy)]
pub struct ProbeRequest<'a> {
    /// The path (origin-form, e.g. `/healthz`).
    pub path: &'a str,
    /// `User-Agent`, so a backend's own logs say who asked.
    pub user_agent: &'static str,
    /// `Accept`, if any.
    pub accept: Option<&'static str>,
}

/// Connect over `transport` and send `GET path` for `authority`; the response head, or why
/// there is none.
pub async fn get(
    transport: &Transport,
    authority: &Authority,
    request: ProbeRequest<'_>,
) -> Result<Probed, String> {
    let connected = transport.connect().await.map_err(|e| e.to_string())?;
    let mut builder = Request::get(request.path).header(
        header::USER_AGENT,
        HeaderValue::from_static(request.user_agent),
    );
    if let Some(accept) = request.accept {
        builder = builder.header(header::ACCEPT, HeaderValue::from_static(accept));
    }
    match connected.protocol {
        Protocol::Http1 => {
            let (mut sender, connection) =
                http1::handshake::<_, Empty<Bytes>>(TokioIo::new(connected.stream))
                    .await
                    .map_err(|e| e.to_string())?;
            let connection = tokio::spawn(async move {
                let _ = connection.await;
            });
            let request = builder
                .header(header::HOST, authority.as_str())
                .header(header::CONNECTION, "close")
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let sent = sender.send_request(request).await;
            finish(sent, connection)
        }
        Protocol::Http2 => {
            let (mut sender, connection) = http2::handshake::<_, _, Empty<Bytes>>(
                TokioExecutor::new(),
                TokioIo::new(connected.stream),
            )
            .await
            .map_err(|e| e.to_string())?;
            let connection = tokio::spawn(async move {
                let _ = connection.await;
            });
            let uri = http::Uri::builder()
                .scheme(transport.uri_scheme())
                .authority(authority.clone())
                .path_and_query(request.path)
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = builder.body(Empty::new()).map_err(|e| e.to_string())?;
            *request.uri_mut() = uri;
            let sent = sender.send_request(request).await;
            finish(sent, connection)
        }
    }
}

fn finish(
    sent: Result<Response<Incoming>, hyper::Error>,
    connection: JoinHandle<()>,
) -> Result<Probed, String> {
    match sent {
        Ok(response) => Ok(Probed {
            response,
            connection,
        }),
        Err(e) => {
            connection.abort();
            Err(e.to_string())
        }
    }
}
