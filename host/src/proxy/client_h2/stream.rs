//! One HTTP/2 stream from a client: its request converted to the form the proxy forwards to
//! HTTP/1.1 backends (`:authority` as Host, split `cookie` fields joined), handed to the proxy,
//! and the answer — a relayed backend response or lbx's own — sent back on the stream.
//!
//! 1xx responses are not relayed to HTTP/2 clients. A client that resets the stream before the
//! answer is ready cancels the request (its future is dropped, as an HTTP/1.1 client that
//! closes does).

use std::future::{Future, poll_fn};
use std::task::Poll;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};

use super::send::SendBody;
use crate::http1::Framing;
use crate::http1::parse::{response_has_body, valid_authority};
use crate::message::RequestHead;
use crate::message::{from_header_map, to_header_map};
use crate::proxy::client_body::H2Body;
use crate::proxy::connection::{ConnectionInfo, https_location};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{http_date, join_cookies};
use crate::proxy::relay::RelayedBody;
use crate::proxy::request::{ClientRequest, RequestBody, RequestId};
use crate::proxy::{Handled, NoInterim, Proxy, RequestSide};

/// A relayed body that keeps moving the request body into an HTTP/2 backend while the
/// response flows (gRPC streams).
#[derive(Debug)]
struct StreamBody {
    body: RelayedBody,
    request: Option<RequestSide<H2Body>>,
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = crate::upstream::ResponseBodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
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

/// What a stream is answered with.
// Built once per stream and consumed at once: boxing the relayed body would cost an allocation
// per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Answer {
    /// A backend's response, its body relayed.
    Relayed(Response<()>, StreamBody),
    /// lbx's own response with its whole body.
    Own(Response<()>, Bytes),
    /// Nothing: the client is gone.
    Nothing,
}

/// Serve one stream to its end: the request through the proxy, the answer back. A reset from
/// the client while the proxy works drops the request's future.
pub async fn serve(
    proxy: &Proxy,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    info: ConnectionInfo,
) {
    let answer = {
        // Boxed: a request's full state is kilobytes; the stream's own future stays small, so
        // adding it to the connection's set of streams copies little.
        let mut handling = Box::pin(handle(proxy, request, info));
        let answered = poll_fn(|cx| {
            if let Poll::Ready(answer) = handling.as_mut().poll(cx) {
                return Poll::Ready(Some(answer));
            }
            match respond.poll_reset(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match answered {
            Some(answer) => answer,
            None => return,
        }
    };
    match answer {
        Answer::Relayed(mut head, body) => {
            complete_head(head.headers_mut());
            if http_body::Body::is_end_stream(&body) {
                // `body` drops here, complete: its outcome and access line are written.
                let _ = respond.send_response(head, true);
                return;
            }
            match respond.send_response(head, false) {
                Ok(tx) => {
                    let _ = SendBody::new(body, tx).await;
                }
                Err(error) => {
                    tracing::debug!(%error, "HTTP/2 response head refused");
                    respond.send_reset(Reason::INTERNAL_ERROR);
                }
            }
        }
        Answer::Own(mut head, body) => {
            complete_head(head.headers_mut());
            if body.is_empty() {
                let _ = respond.send_response(head, true);
                return;
            }
            head.headers_mut()
                .entry(header::CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(body.len()));
            if let Ok(mut tx) = respond.send_response(head, false) {
                tx.reserve_capacity(body.len());
                let _ = tx.send_data(body, true);
            }
        }
        Answer::Nothing => respond.send_reset(Reason::CANCEL),
    }
}

/// What every response head gets before it goes (as hyper's server did): a Date if it has
/// none, and none of the connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2), which
/// `h2` would refuse the whole response for.
fn complete_head(headers: &mut HeaderMap) {
    if !headers.contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_maybe_shared(http_date())
    {
        headers.insert(header::DATE, date);
    }
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(names) = connection.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        headers.remove(name);
    }
}

async fn handle(proxy: &Proxy, request: Request<RecvStream>, info: ConnectionInfo) -> Answer {
    let received_at = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let trusted = proxy.policies().proxy.trusts(info.peer.ip());
    let id = RequestId::for_header_map(&parts.headers, trusted);
    let client_request = match accept(&parts, &body, info, id.clone(), received_at) {
        Ok(request) => request,
        Err(error) => {
            error.log(&id);
            return error_answer(&error, &id, &parts.method);
        }
    };
    let method = client_request.head.method.clone();
    if let Some(port) = info.redirect_to_https {
        let location = https_location(
            client_request.authority.as_deref(),
            port,
            &client_request.head.target,
        );
        let mut response = Response::new(());
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
        return Answer::Own(response, Bytes::new());
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
            };
            let mut response = Response::new(());
            *response.status_mut() = head.status;
            *response.headers_mut() = to_header_map(&head.headers);
            if response_has_body(&method, head.status) {
                // An empty body ends the stream with the headers (gRPC's trailers-only answers
                // among them): no length field is needed there.
                if let Framing::Length(n) = framing {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                }
            }
            Answer::Relayed(response, body)
        }
        Err(error) => error_answer(&error, &id, &method),
    }
}

/// The HTTP/2 request as the proxy takes it, or why it is refused.
fn accept(
    parts: &http::request::Parts,
    body: &h2::RecvStream,
    info: ConnectionInfo,
    id: RequestId,
    received_at: std::time::Instant,
) -> Result<ClientRequest, ProxyError> {
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

fn error_answer(error: &ProxyError, id: &RequestId, method: &Method) -> Answer {
    let Some((head, body)) = error.response(id) else {
        return Answer::Nothing;
    };
    // A response to HEAD has no body.
    let body = if *method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.headers_mut() = to_header_map(&head.headers);
    Answer::Own(response, body)
}
