//! Header rules for the hop through lbx, in both directions.
//!
//! Toward the backend ([`write_upstream_head`]): origin-form target (RFC 9112 §3.2.1), Host
//! first, then the client's fields in their order and spelling minus hop-by-hop ones (RFC 9110
//! §7.6.1: `Connection`, the fields it names, `Keep-Alive`, `Proxy-*`, `TE`,
//! `Transfer-Encoding`, `Upgrade`), then `X-Forwarded-*`, the plugin's fields, and the framing
//! lbx chose. Toward the client ([`client_response_head`]): the backend's fields minus
//! hop-by-hop ones, the plugin's fields, and a `Date` if the backend sent none (RFC 9110
//! §6.6.1: a recipient with a clock MUST add one before forwarding).
//!
//! `X-Forwarded-Proto` says `https` for a request that came over TLS. `X-Forwarded-For` etc.
//! from a client are believed only when the peer is one of
//! `[proxy] trusted_proxies`; from anyone else they are replaced, so a client cannot make a
//! backend believe it is someone else.
//!
//! `X-Request-Id` goes both ways: the backend gets the request's id (a trusted peer's own, or
//! lbx's, see [`RequestId::for_request`]) and the client's response carries the same one,
//! replacing any the backend sent. Other tracing fields (W3C `traceparent`, `tracestate`) are
//! the client's and pass through untouched.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::uri::Authority;
use http::{HeaderName, HeaderValue, StatusCode};

use super::request::{RequestBody, RequestId};
use crate::config::ProxyConfig;
use crate::http1::encode::{fields_len, write_field, write_request_line};
use crate::message::{Headers, ResponseHead, list_elements, trim_ows};
use crate::plugin::RequestMeta;

/// Fields that describe one connection, not the message (RFC 9110 §7.6.1, plus the
/// non-standard `Proxy-Connection` and the proxy authentication fields, which are addressed
/// to lbx, not the backend).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Fields lbx writes itself on the way to the backend, so the client's are not copied.
const REWRITTEN_UPSTREAM: [&str; 7] = [
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// How the request to the backend is framed and what it asks for.
#[derive(Debug, Clone)]
pub struct UpstreamFraming {
    /// The body that follows.
    pub body: RequestBody,
    /// Send `Expect: 100-continue` (lbx relays the backend's answer to a waiting client).
    pub expect_continue: bool,
    /// Ask to switch protocols (`Connection: upgrade` and this `Upgrade`), as the client did.
    pub upgrade: Option<Bytes>,
    /// The routing plugin's replacement for the request target (path and query, already
    /// checked to be origin-form).
    pub rewrite: Option<Bytes>,
}

/// The request head for an HTTP/1.1 backend at `backend` (its Host when the client gave none).
pub fn write_upstream_head(
    meta: &RequestMeta,
    request_id: &RequestId,
    backend: &Authority,
    plugin_headers: &[(HeaderName, HeaderValue)],
    proxy: &ProxyConfig,
    framing: UpstreamFraming,
    out: &mut BytesMut,
) {
    let head = &meta.head;
    let target = framing.rewrite.as_ref().unwrap_or(&head.target);
    out.reserve(256 + target.len() + fields_len(&head.headers));
    write_request_line(&head.method, target, out);
    upstream_fields(
        meta,
        request_id,
        backend,
        plugin_headers,
        proxy,
        framing,
        |name, value| write_field(name, value, out),
    );
    out.extend_from_slice(b"\r\n");
}

/// The request for an HTTP/2 backend at `backend`, reached with `scheme`: the same fields as
/// over HTTP/1.1, Host as `:authority`, names lowercase, and no field HTTP/2 forbids
/// (RFC 9113 §8.2.2: `Transfer-Encoding`, and `Expect` as lbx does not wait for `100` there).
pub fn upstream_h2_request(
    meta: &RequestMeta,
    request_id: &RequestId,
    backend: &Authority,
    scheme: http::uri::Scheme,
    plugin_headers: &[(HeaderName, HeaderValue)],
    proxy: &ProxyConfig,
    framing: UpstreamFraming,
) -> Result<http::request::Builder, String> {
    let target = framing
        .rewrite
        .clone()
        .unwrap_or_else(|| meta.head.target.clone());
    let mut authority: Option<Vec<u8>> = None;
    let mut headers = http::HeaderMap::with_capacity(meta.head.headers.len() + 6);
    let mut bad = None;
    upstream_fields(
        meta,
        request_id,
        backend,
        plugin_headers,
        proxy,
        framing,
        |name, value| {
            if name.eq_ignore_ascii_case(b"host") {
                authority = Some(value.to_vec());
                return;
            }
            if name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"expect")
            {
                return;
            }
            match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => bad = Some(String::from_utf8_lossy(name).into_owned()),
            }
        },
    );
    if let Some(name) = bad {
        return Err(format!("field {name:?} cannot be sent over HTTP/2"));
    }
    let authority = authority.unwrap_or_else(|| backend.as_str().as_bytes().to_vec());
    let authority = http::uri::Authority::try_from(authority.as_slice())
        .map_err(|e| format!("authority not usable over HTTP/2: {e}"))?;
    let path = if target.as_ref() == b"*" {
        http::uri::PathAndQuery::from_static("*")
    } else {
        http::uri::PathAndQuery::try_from(target.as_ref())
            .map_err(|e| format!("target not usable over HTTP/2: {e}"))?
    };
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| e.to_string())?;
    let mut builder = http::Request::builder()
        .method(meta.head.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_2);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    Ok(builder)
}

/// Every field a backend gets, in order, handed to `emit`: Host first (the request's authority,
/// or the backend's when the client named none), the client's fields minus hop-by-hop ones and
/// those lbx rewrites, the `X-Forwarded-*` trio, `X-Request-Id`, the plugin's fields, the
/// framing, `TE: trailers` and `Expect` when they apply.
fn upstream_fields(
    meta: &RequestMeta,
    request_id: &RequestId,
    backend: &Authority,
    plugin_headers: &[(HeaderName, HeaderValue)],
    proxy: &ProxyConfig,
    framing: UpstreamFraming,
    mut emit: impl FnMut(&[u8], &[u8]),
) {
    let head = &meta.head;
    let authority: &[u8] = meta
        .authority
        .as_deref()
        .unwrap_or(backend.as_str().as_bytes());
    emit(b"Host", authority);

    let listed: Vec<&[u8]> = head
        .headers
        .get_all("connection")
        .flat_map(|v| list_elements(v))
        .collect();
    for f in &head.headers {
        let name = &f.name[..];
        let skipped = HOP_BY_HOP
            .iter()
            .chain(REWRITTEN_UPSTREAM.iter())
            .any(|hop| name.eq_ignore_ascii_case(hop.as_bytes()))
            || listed.iter().any(|l| name.eq_ignore_ascii_case(l));
        if !skipped {
            emit(name, &f.value);
        }
    }

    let client = meta.client.ip();
    let trusted = proxy.trusts(client);
    emit(
        b"X-Forwarded-For",
        &forwarded_for(&head.headers, client, trusted),
    );
    let incoming = |name: &str| trusted.then(|| head.headers.get(name)).flatten();
    let scheme: &[u8] = if meta.secure { b"https" } else { b"http" };
    emit(
        b"X-Forwarded-Proto",
        incoming("x-forwarded-proto").map_or(scheme, |v| &v[..]),
    );
    if let Some(host) = incoming("x-forwarded-host")
        .map(|v| &v[..])
        .or(meta.authority.as_deref())
    {
        emit(b"X-Forwarded-Host", host);
    }
    emit(b"X-Request-Id", request_id.as_bytes());
    for (name, value) in plugin_headers {
        emit(name.as_str().as_bytes(), value.as_bytes());
    }
    match framing.body {
        RequestBody::None => {}
        RequestBody::Length(n) => emit(b"Content-Length", n.to_string().as_bytes()),
        RequestBody::Streaming => emit(b"Transfer-Encoding", b"chunked"),
    }
    // `TE: trailers` says the client accepts trailers; gRPC needs it end to end. Other TE
    // members describe codings for this hop only and are dropped.
    if head.headers.has_token("te", "trailers") {
        emit(b"TE", b"trailers");
    }
    if framing.expect_continue {
        emit(b"Expect", b"100-continue");
    }
    // The two hop-by-hop fields of an upgrade, for this hop: the client asked for it, and
    // the backend's `101` will be relayed (RFC 9110 §7.8).
    if let Some(upgrade) = &framing.upgrade {
        emit(b"Connection", b"upgrade");
        emit(b"Upgrade", upgrade);
    }
}

/// `X-Forwarded-For`: from a trusted peer, every incoming line's addresses in order (lines
/// merged, RFC 9110 §5.3) then the peer; from anyone else, the peer alone.
fn forwarded_for(headers: &Headers, client: IpAddr, trusted: bool) -> Vec<u8> {
    let mut chain = Vec::with_capacity(64);
    if trusted {
        for element in headers
            .get_all("x-forwarded-for")
            .flat_map(|v| list_elements(v))
        {
            chain.extend_from_slice(element);
            chain.extend_from_slice(b", ");
        }
    }
    write_ip(client.to_canonical(), &mut chain);
    chain
}

/// Append `ip` as text. IPv4 — nearly every client — is written digit by digit: going through
/// `Display` and a `String` was ~1% of a worker's CPU per proxied request.
pub(super) fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// The backend's response head made ready for the client: hop-by-hop fields (and the fields
/// `Connection` names) removed, the framing fields removed when lbx will frame the body
/// itself (`has_body`), the request's id as `X-Request-Id` (final responses: `request_id` is
/// `None` for interim ones), the plugin's fields appended, `Date` ensured on final responses.
pub fn client_response_head(
    mut head: ResponseHead,
    request_id: Option<&RequestId>,
    plugin_headers: Vec<(HeaderName, HeaderValue)>,
    has_body: bool,
) -> ResponseHead {
    let listed: Vec<Bytes> = head
        .headers
        .get_all("connection")
        .flat_map(|v| list_elements(v))
        .map(Bytes::copy_from_slice)
        .collect();
    // A HEAD or 304 response keeps its Content-Length: it describes the representation, not
    // this message's (absent) body. 1xx and 204 never carry one.
    let drop_length =
        has_body || head.status.is_informational() || head.status == StatusCode::NO_CONTENT;
    head.headers.retain(|f| {
        let name = &f.name[..];
        !(HOP_BY_HOP
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop.as_bytes()))
            || listed.iter().any(|l| name.eq_ignore_ascii_case(l))
            || (drop_length && name.eq_ignore_ascii_case(b"content-length"))
            || (request_id.is_some() && name.eq_ignore_ascii_case(b"x-request-id")))
    });
    if let Some(id) = request_id {
        head.headers.push(
            Bytes::from_static(b"X-Request-Id"),
            Bytes::copy_from_slice(id.as_bytes()),
        );
    }
    for (name, value) in plugin_headers {
        head.headers.push(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    // Interim responses are relayed bare.
    if !head.status.is_informational() && !head.headers.contains("date") {
        head.headers.push(Bytes::from_static(b"Date"), http_date());
    }
    head
}

/// The current time as an HTTP date, formatted at most once a second per thread.
pub fn http_date() -> Bytes {
    thread_local! {
        static CACHED: RefCell<(u64, Bytes)> = const { RefCell::new((0, Bytes::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, Bytes::from(httpdate::fmt_http_date(now)));
        }
        cached.1.clone()
    })
}

/// Join an HTTP/2 request's `cookie` fields into one, with `"; "` (RFC 9113 §8.2.3): HTTP/2
/// clients send each cookie as its own field, HTTP/1.1 servers expect a single line.
pub fn join_cookies(headers: &mut Headers) {
    if headers.count("cookie") < 2 {
        return;
    }
    let mut joined = BytesMut::new();
    for value in headers.get_all("cookie") {
        let value = trim_ows(value);
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value);
    }
    headers.remove("cookie");
    headers.push(Bytes::from_static(b"cookie"), joined.freeze());
}

#[cfg(test)]
mod tests;
