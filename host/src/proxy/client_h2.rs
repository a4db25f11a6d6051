//! HTTP/2 client connections (cleartext, prior knowledge), served by hyper: each stream's
//! request is converted to the form the proxy forwards to HTTP/1.1 backends (`:authority` as
//! Host, split `cookie` fields joined), and the response converted back.
//!
//! A connection with no open stream for `[timeouts] request_headers` is closed (GOAWAY), as an
//! idle HTTP/1.1 connection is: a client that only answers PINGs does not hold a connection
//! forever. 1xx responses are not relayed to HTTP/2 clients (hyper's server cannot send them).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client_body::H2Body;
use super::connection::{ConnectionInfo, https_location};
use super::error::ProxyError;
use super::headers::join_cookies;
use super::relay::RelayedBody;
use super::request::{ClientRequest, RequestBody, RequestId};
use super::{Handled, NoInterim, Proxy, RequestSide};
use crate::http1::Framing;
use crate::http1::parse::{response_has_body, valid_authority};
use crate::message::RequestHead;
use crate::message::{from_header_map, to_header_map};
use crate::shutdown::{self, StopReceiver};

/// Body of every response to an HTTP/2 client: a relayed backend body or lbx's own.
pub type H2ResponseBody = Either<StreamBody, Full<Bytes>>;

/// A relayed body that keeps its stream counted as open until it is done, and keeps moving
/// the request body into an HTTP/2 backend while the response flows (gRPC streams).
#[derive(Debug)]
pub struct StreamBody {
    body: RelayedBody,
    request: Option<RequestSide<H2Body>>,
    _open: OpenStream,
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = crate::upstream::ResponseBodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(request) = &mut this.request
            && request.poll_pump(cx).is_ready()
        {
            // Done, or the client's body failed (the backend stream is then reset).
            this.body.note_request_bytes(request.feed.received_bytes());
            this.request = None;
        }
        std::pin::Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        // The response ended (or was abandoned) while the request body was still moving: what
        // it came to so far goes into the access line, written as `body` drops next.
        if let Some(request) = &self.request {
            self.body.note_request_bytes(request.feed.received_bytes());
        }
    }
}

/// Streams open on one connection, and since when none has been.
#[derive(Debug, Default)]
struct Activity {
    open: AtomicUsize,
    /// Milliseconds after `started` when the last stream closed.
    idle_since_ms: AtomicU64,
}

/// Counts a stream as open until dropped (it lives in the response body).
#[derive(Debug)]
struct OpenStream {
    activity: Arc<Activity>,
    started: tokio::time::Instant,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.activity.idle_since_ms.store(now, Ordering::Relaxed);
        self.activity.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serve one HTTP/2 connection until it closes, idles out, or `stop` is raised (then GOAWAY,
/// and open streams finish).
pub async fn serve<S>(stream: S, info: ConnectionInfo, proxy: Arc<Proxy>, mut stop: StopReceiver)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let idle_timeout = proxy.policies().timeouts.request_headers;
    let activity = Arc::new(Activity::default());
    let started = tokio::time::Instant::now();
    let service = {
        let activity = activity.clone();
        service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            activity.open.fetch_add(1, Ordering::Relaxed);
            let open = OpenStream {
                activity: activity.clone(),
                started,
            };
            // Boxed: hyper spawns a task per stream and moves the future it is given several
            // times on the way; a request's full state is kilobytes, a box is a pointer
            // (measured: memcpy was 16% of the HTTP/2 path's CPU, most of it task set-up).
            Box::pin(async move { Ok::<_, Infallible>(handle(&proxy, request, info, open).await) })
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(idle_timeout)
        .keep_alive_timeout(idle_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    let mut next_check = started + idle_timeout;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(client = %peer, error = %e, "HTTP/2 client connection ended with an error");
                }
                return;
            }
            _ = shutdown::stopped(&mut stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(next_check), if !closing => {
                let idle_since = started + Duration::from_millis(activity.idle_since_ms.load(Ordering::Relaxed));
                if activity.open.load(Ordering::Relaxed) == 0 && idle_since + idle_timeout <= tokio::time::Instant::now() {
                    tracing::debug!(client = %peer, "closing idle HTTP/2 connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                } else {
                    next_check = idle_since.max(tokio::time::Instant::now()) + idle_timeout;
                }
            }
        }
    }
}

async fn handle(
    proxy: &Proxy,
    request: Request<Incoming>,
    info: ConnectionInfo,
    open: OpenStream,
) -> Response<H2ResponseBody> {
    let received_at = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let trusted = proxy.policies().proxy.trusts(info.peer.ip());
    let id = RequestId::for_header_map(&parts.headers, trusted);
    let client_request = match accept(&parts, &body, info, id.clone(), received_at) {
        Ok(request) => request,
        Err(error) => {
            error.log(&id);
            drop(open);
            return error_response(&error, &id, &parts.method);
        }
    };
    let method = client_request.head.method.clone();
    if let Some(port) = info.redirect_to_https {
        let location = https_location(
            client_request.authority.as_deref(),
            port,
            &client_request.head.target,
        );
        let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
        if let Ok(value) = HeaderValue::from_bytes(id.as_bytes()) {
            response.headers_mut().insert("x-request-id", value);
        }
        match location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            Some(location) => {
                *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
                response.headers_mut().insert(header::LOCATION, location);
            }
            None => *response.status_mut() = StatusCode::BAD_REQUEST,
        }
        return response;
    }
    let source = H2Body::new(body, proxy.policies().timeouts.client_body);
    let Handled { result, request } = proxy.handle(client_request, source, &mut NoInterim).await;
    match result {
        Ok(forwarded) => {
            let head = forwarded.head;
            let framing = forwarded.body.framing();
            let mut relayed = forwarded.body;
            let request = if request.is_pumping() {
                Some(request)
            } else {
                relayed.note_request_bytes(request.feed.received_bytes());
                None
            };
            let body = StreamBody {
                body: relayed,
                request,
                _open: open,
            };
            let mut response = Response::new(Either::Left(body));
            *response.status_mut() = head.status;
            *response.headers_mut() = to_header_map(&head.headers);
            if response_has_body(&method, head.status) {
                // An empty body ends the stream with the headers (gRPC's trailers-only answers
                // among them): no length field is needed there.
                let length = match framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                };
                if let Some(n) = length {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                }
            }
            response
        }
        Err(error) => error_response(&error, &id, &method),
    }
}

/// The HTTP/2 request as the proxy takes it, or why it is refused.
fn accept(
    parts: &http::request::Parts,
    body: &Incoming,
    info: ConnectionInfo,
    id: RequestId,
    received_at: std::time::Instant,
) -> Result<ClientRequest, ProxyError> {
    use http_body::Body as _;
    if parts.method == Method::CONNECT {
        return Err(ProxyError::BadRequest(crate::http1::RequestError::Connect));
    }
    let mut headers = from_header_map(&parts.headers);
    let host = match headers.count("host") {
        0 => None,
        1 => headers.get("host").cloned(),
        _ => return Err(ProxyError::Malformed("more than one Host field")),
    };
    let authority = parts
        .uri
        .authority()
        .map(|a| Bytes::copy_from_slice(a.as_str().as_bytes()));
    // RFC 9113 §8.3.1: a Host that names another authority than `:authority` is malformed.
    if let (Some(authority), Some(host)) = (&authority, &host)
        && !authority.eq_ignore_ascii_case(host)
    {
        return Err(ProxyError::Malformed("Host differs from :authority"));
    }
    let authority = authority.or(host);
    if let Some(authority) = &authority
        && !valid_authority(authority)
    {
        return Err(ProxyError::Malformed("invalid :authority"));
    }
    headers.remove("host");
    // lbx does not relay 1xx to HTTP/2 clients, so it cannot honour an expectation.
    headers.remove("expect");
    join_cookies(&mut headers);
    let target = match parts.uri.path_and_query() {
        Some(p) if parts.method == Method::OPTIONS && p.as_str() == "*" => Bytes::from_static(b"*"),
        Some(p) => Bytes::copy_from_slice(p.as_str().as_bytes()),
        None => Bytes::from_static(b"/"),
    };
    let declared = headers
        .get_str("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let request_body = match (body.is_end_stream(), declared) {
        (true, Some(_)) => RequestBody::Length(0),
        (true, None) => RequestBody::None,
        // h2 checks that the DATA frames add up to a declared content-length.
        (false, Some(n)) => RequestBody::Length(n),
        (false, None) => RequestBody::Streaming,
    };
    Ok(ClientRequest {
        head: RequestHead {
            method: parts.method.clone(),
            target,
            version: Version::HTTP_2,
            headers,
        },
        authority,
        body: request_body,
        expect_continue: false,
        upgrade: None,
        client: info.peer,
        secure: info.secure,
        received_at,
        id,
    })
}

fn error_response(error: &ProxyError, id: &RequestId, method: &Method) -> Response<H2ResponseBody> {
    // A client that is gone gets nothing; hyper needs a response for the stream regardless.
    let Some((head, body)) = error.response(id) else {
        let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    // A response to HEAD has no body.
    let body = if *method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = head.status;
    *response.headers_mut() = to_header_map(&head.headers);
    response
}
