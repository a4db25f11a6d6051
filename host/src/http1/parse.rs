//! Reading HTTP/1.x heads: the request a client sends and the response a backend sends, each
//! checked against RFC 9112 before anything is forwarded, with the message's framing decided
//! here once (§6.3), so the rest of lbx never looks at `Content-Length`/`Transfer-Encoding`.
//!
//! Lexical checks (tokens, field-value characters, no space before a colon, no line folding in
//! requests) are httparse's; the rules about what the fields mean together are here.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Version};

use crate::message::{Headers, RequestHead, ResponseHead, list_elements, trim_ows};

/// Largest head (start line and fields) accepted from a client or a backend.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header field lines accepted in one head.
pub const MAX_HEADERS: usize = 128;
/// Longest request line accepted before the fields start (`414` beyond).
const MAX_REQUEST_LINE: usize = 16 * 1024;

/// How a message's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// A request head that passed every check, with what the proxy needs to know about it.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The head; an absolute-form target is already reduced to origin-form.
    pub head: RequestHead,
    /// The authority the request is for: from an absolute-form target, else the single Host
    /// field. `None` only for an HTTP/1.0 request without Host.
    pub authority: Option<Bytes>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// The protocols an HTTP/1.1 client asks to switch to (`Upgrade`, with `Connection:
    /// upgrade`), e.g. `websocket`.
    pub upgrade: Option<Bytes>,
}

/// A response head from a backend, with its framing decided.
#[derive(Debug)]
pub struct ParsedResponse {
    /// The head.
    pub head: ResponseHead,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the backend keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Why a client's request was refused before it went anywhere. Each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Malformed syntax or contradictory fields: 400.
    #[error("bad request: {0}")]
    Bad(&'static str),
    /// The request line is too long: 414.
    #[error("request line longer than {MAX_REQUEST_LINE} bytes")]
    TargetTooLong,
    /// The head is too large or has too many fields: 431.
    #[error("request head larger than {MAX_HEAD_BYTES} bytes or more than {MAX_HEADERS} fields")]
    HeadTooLarge,
    /// A transfer coding other than chunked: 501.
    #[error("transfer coding other than chunked")]
    UnsupportedTransferCoding,
    /// `CONNECT` (lbx is not a forward proxy): 501.
    #[error("CONNECT is not supported")]
    Connect,
    /// An expectation other than `100-continue`: 417.
    #[error("unsupported expectation")]
    Expectation,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    #[error("unsupported HTTP version")]
    Version,
}

impl RequestError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Bad(_) => StatusCode::BAD_REQUEST,
            RequestError::TargetTooLong => StatusCode::URI_TOO_LONG,
            RequestError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestError::UnsupportedTransferCoding | RequestError::Connect => {
                StatusCode::NOT_IMPLEMENTED
            }
            RequestError::Expectation => StatusCode::EXPECTATION_FAILED,
            RequestError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }
}

/// Why a backend's response head cannot be relayed (always the backend's fault: 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid response from backend: {0}")]
pub struct ResponseError(pub &'static str);

/// Parse a request head from the start of `buf`. `Ok(None)`: incomplete, read more. On
/// success the head's bytes are taken out of `buf` (what follows, body or a pipelined request,
/// stays).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<ParsedRequest>, RequestError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    // The request line alone is bounded (414) before the head as a whole (431).
    let line_end = buf
        .iter()
        .take(MAX_REQUEST_LINE + 2)
        .position(|&b| b == b'\n');
    if line_end.map_or(buf.len() > MAX_REQUEST_LINE, |end| end > MAX_REQUEST_LINE) {
        return Err(RequestError::TargetTooLong);
    }
    let consumed = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(RequestError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(RequestError::Version),
        Err(httparse::Error::Token) => return Err(RequestError::Bad("invalid method")),
        Err(httparse::Error::HeaderName) => return Err(RequestError::Bad("invalid field name")),
        Err(httparse::Error::HeaderValue) => {
            return Err(RequestError::Bad("invalid field value"));
        }
        Err(_) => return Err(RequestError::Bad("malformed request line or fields")),
    };
    if consumed > MAX_HEAD_BYTES {
        return Err(RequestError::HeadTooLarge);
    }
    let base = buf.as_ptr() as usize;
    let method = request.method.unwrap_or("");
    let target = request.path.unwrap_or("");
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method_range = offset(base, method.as_bytes());
    let target_range = offset(base, target.as_bytes());
    let fields = field_ranges(base, request.headers);
    let bytes = buf.split_to(consumed).freeze();
    let headers = fields_of(&bytes, fields);
    let method = Method::from_bytes(&bytes[method_range])
        .map_err(|_| RequestError::Bad("invalid method"))?;
    accept_request(method, bytes.slice(target_range), version, headers).map(Some)
}

/// The checks of RFC 9112 on a parsed request line and fields.
fn accept_request(
    method: Method,
    target: Bytes,
    version: Version,
    headers: Headers,
) -> Result<ParsedRequest, RequestError> {
    if method == Method::CONNECT {
        return Err(RequestError::Connect);
    }
    if !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Bad("request target is not visible ASCII"));
    }
    // §3.2: exactly one Host in HTTP/1.1, and a valid one.
    let host_fields = headers.count("host");
    if host_fields > 1 {
        return Err(RequestError::Bad("more than one Host field"));
    }
    let host = headers.get("host").cloned();
    if let Some(host) = &host
        && !valid_authority(host)
    {
        return Err(RequestError::Bad("invalid Host field"));
    }
    if version == Version::HTTP_11 && host.is_none() {
        return Err(RequestError::Bad("HTTP/1.1 request without Host"));
    }
    let (target, authority) = match target.first() {
        Some(b'/') => (target, host),
        // §3.2.4: asterisk-form only for a server-wide OPTIONS.
        Some(b'*') if target.len() == 1 && method == Method::OPTIONS => (target, host),
        Some(b'*') => {
            return Err(RequestError::Bad(
                "asterisk-form target on a method other than OPTIONS",
            ));
        }
        // §3.2.2: absolute-form; its authority replaces Host (§7.2 of RFC 9110).
        _ => {
            let (authority, origin) = split_absolute_form(&target).ok_or(RequestError::Bad(
                "request target is not origin-, absolute- or asterisk-form",
            ))?;
            (origin, Some(authority))
        }
    };
    let framing = request_framing(&headers, version)?;
    let keep_alive = wants_keep_alive(&headers, version);
    let expect_continue = match headers.get("expect") {
        None => false,
        // §10.1.1 of RFC 9110: an HTTP/1.0 client's expectation is ignored.
        Some(_) if version == Version::HTTP_10 => false,
        Some(value)
            if headers.count("expect") == 1 && value.eq_ignore_ascii_case(b"100-continue") =>
        {
            true
        }
        Some(_) => return Err(RequestError::Expectation),
    };
    // RFC 9110 §7.8: an upgrade is asked for with both fields, and only in HTTP/1.1.
    let upgrade = (version == Version::HTTP_11 && headers.has_token("connection", "upgrade"))
        .then(|| headers.get("upgrade").cloned())
        .flatten()
        .filter(|value| !value.is_empty());
    Ok(ParsedRequest {
        head: RequestHead {
            method,
            target,
            version,
            headers,
        },
        authority,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    })
}

/// RFC 9112 §6.1 and §6.3 for requests.
fn request_framing(headers: &Headers, version: Version) -> Result<Framing, RequestError> {
    let has_te = headers.contains("transfer-encoding");
    let lengths = content_length(headers).map_err(RequestError::Bad)?;
    if has_te {
        // §6.1: both is a smuggling attempt or a broken client; refused, and the connection
        // is closed after the answer. An HTTP/1.0 message with Transfer-Encoding has faulty
        // framing.
        if lengths.is_some() {
            return Err(RequestError::Bad(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(RequestError::Bad(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        return match transfer_codings(headers) {
            Codings::Chunked => Ok(Framing::Chunked),
            // §6.3 rule 4: chunked not last means the length cannot be determined.
            Codings::ChunkedNotLast | Codings::Invalid => Err(RequestError::Bad(
                "Transfer-Encoding does not end in a single chunked",
            )),
            Codings::OtherThenChunked => Err(RequestError::UnsupportedTransferCoding),
        };
    }
    Ok(match lengths {
        Some(0) | None => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// Parse a response head from the start of `buf`, for a request with `method`. `Ok(None)`:
/// incomplete. 1xx heads are returned like any other; the caller reads on for the final one.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ParsedResponse>, ResponseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let consumed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(ResponseError("head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError("too many fields")),
        Err(httparse::Error::Version) => return Err(ResponseError("not HTTP/1.x")),
        Err(httparse::Error::Status) => return Err(ResponseError("invalid status line")),
        Err(_) => return Err(ResponseError("malformed fields (RFC 9112 §5)")),
    };
    if consumed > MAX_HEAD_BYTES {
        return Err(ResponseError("head too large"));
    }
    let base = buf.as_ptr() as usize;
    let code = response.code.unwrap_or(0);
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let reason_range = offset(base, response.reason.unwrap_or("").as_bytes());
    let fields = field_ranges(base, response.headers);
    let bytes = buf.split_to(consumed).freeze();
    let headers = fields_of(&bytes, fields);
    let status = StatusCode::from_u16(code).map_err(|_| ResponseError("invalid status code"))?;
    let framing = response_framing(&headers, version, status, method)?;
    let keep_alive = framing != Framing::UntilClose && wants_keep_alive(&headers, version);
    Ok(Some(ParsedResponse {
        head: ResponseHead {
            status,
            reason: bytes.slice(reason_range),
            version,
            headers,
        },
        framing,
        keep_alive,
    }))
}

/// RFC 9112 §6.3 for responses. Contradictory framing is refused outright, whatever the status:
/// a backend that sends it cannot be trusted to delimit this or the next response (§6.3 rule 3
/// and 5: "the proxy MUST close the connection to the server, discard the received response,
/// and send a 502").
/// Whether a response to `method` with `status` has a body at all, whatever its fields say
/// (RFC 9110 §6.4.1, RFC 9112 §6.3 rule 1).
pub fn response_has_body(method: &Method, status: StatusCode) -> bool {
    !(*method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

fn response_framing(
    headers: &Headers,
    version: Version,
    status: StatusCode,
    method: &Method,
) -> Result<Framing, ResponseError> {
    let has_te = headers.contains("transfer-encoding");
    let lengths = content_length(headers).map_err(ResponseError)?;
    if has_te && lengths.is_some() {
        return Err(ResponseError("both Content-Length and Transfer-Encoding"));
    }
    if has_te && version == Version::HTTP_10 {
        return Err(ResponseError("Transfer-Encoding in an HTTP/1.0 response"));
    }
    let codings = has_te.then(|| transfer_codings(headers));
    if let Some(codings) = codings
        && codings != Codings::Chunked
    {
        // Another coding would need decoding here or passing on as is; lbx does neither, so
        // the response is refused rather than relayed with a wrong framing.
        return Err(ResponseError(
            "Transfer-Encoding other than a single chunked",
        ));
    }
    // §6.3 rule 1: these never have content, whatever their fields say.
    if !response_has_body(method, status) {
        return Ok(Framing::Empty);
    }
    Ok(match (codings, lengths) {
        (Some(_), _) => Framing::Chunked,
        (None, Some(0)) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    })
}

/// The message's Content-Length: `Ok(None)` when absent. Repeated fields or list members must
/// all carry the same decimal value (§6.3 rule 5); anything else is an error.
fn content_length(headers: &Headers) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all("content-length") {
        let mut members = 0;
        for member in list_elements(value) {
            members += 1;
            if member.is_empty() || member.len() > 19 || !member.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            let n = std::str::from_utf8(member)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|seen| seen != n) {
                return Err("conflicting Content-Length values");
            }
            length = Some(n);
        }
        if members == 0 {
            return Err("empty Content-Length");
        }
    }
    Ok(length)
}

/// What the Transfer-Encoding fields, taken together, say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codings {
    /// Exactly `chunked`.
    Chunked,
    /// Some other coding(s), then `chunked`.
    OtherThenChunked,
    /// `chunked` absent or not last.
    ChunkedNotLast,
    /// `chunked` more than once, or an empty field.
    Invalid,
}

fn transfer_codings(headers: &Headers) -> Codings {
    let mut codings: Vec<&[u8]> = Vec::new();
    for value in headers.get_all("transfer-encoding") {
        let before = codings.len();
        // A coding may carry parameters (`gzip;q=1` is not valid here, but `chunked` never
        // has any): compare the name only.
        codings.extend(
            list_elements(value).map(|c| trim_ows(c.split(|&b| b == b';').next().unwrap_or(c))),
        );
        if codings.len() == before {
            return Codings::Invalid;
        }
    }
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    match codings.iter().filter(|c| chunked(c)).count() {
        0 => Codings::ChunkedNotLast,
        1 if codings.last().is_some_and(chunked) => {
            if codings.len() == 1 {
                Codings::Chunked
            } else {
                Codings::OtherThenChunked
            }
        }
        1 => Codings::ChunkedNotLast,
        _ => Codings::Invalid,
    }
}

/// Whether a message asks for the connection to stay open (§9.3): HTTP/1.1 unless
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
fn wants_keep_alive(headers: &Headers, version: Version) -> bool {
    if headers.has_token("connection", "close") {
        return false;
    }
    version != Version::HTTP_10 || headers.has_token("connection", "keep-alive")
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a non-empty reg-name, IPv4 or
/// bracketed IP literal, then an optional decimal port. Anything else in a Host field (spaces,
/// `/`, `@`, controls) is a malformed request.
pub fn valid_authority(authority: &[u8]) -> bool {
    let (host, port) = if authority.first() == Some(&b'[') {
        let Some(end) = authority.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &authority[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        match &authority[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&authority[..=end], port),
            _ => return false,
        }
    } else {
        match authority.iter().rposition(|&b| b == b':') {
            Some(colon) => (&authority[..colon], &authority[colon + 1..]),
            None => (authority, &[][..]),
        }
    };
    let reg_name_char = |b: &u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    };
    // pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 §2.1); the digits pass as reg-name chars.
    let pct_encoded = |i: usize| {
        host.get(i + 1..i + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    };
    !host.is_empty()
        && (host.first() == Some(&b'[')
            || (host.iter().all(reg_name_char)
                && (0..host.len()).all(|i| host[i] != b'%' || pct_encoded(i))))
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
}

/// `http://authority/path?query` → (authority, `/path?query`); `None` for any other scheme,
/// a userinfo part or an invalid authority.
fn split_absolute_form(target: &Bytes) -> Option<(Bytes, Bytes)> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return None;
    }
    let rest_start = colon + 3;
    if target.get(colon..rest_start) != Some(b"://") {
        return None;
    }
    let rest = &target[rest_start..];
    let authority_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.contains(&b'@') || !valid_authority(authority) {
        return None;
    }
    let authority = target.slice(rest_start..rest_start + authority_len);
    let path_start = rest_start + authority_len;
    let origin = match target.get(path_start) {
        Some(b'/') => target.slice(path_start..),
        // `http://host?q` and `http://host` mean path `/`.
        Some(b'?') => {
            let mut origin = BytesMut::with_capacity(target.len() - path_start + 1);
            origin.extend_from_slice(b"/");
            origin.extend_from_slice(&target[path_start..]);
            origin.freeze()
        }
        None => Bytes::from_static(b"/"),
        Some(_) => return None,
    };
    Some((authority, origin))
}

/// Where each field's name and (trimmed) value lie in the buffer starting at `base`.
fn field_ranges(base: usize, fields: &[httparse::Header<'_>]) -> Vec<(Range<usize>, Range<usize>)> {
    fields
        .iter()
        .map(|f| {
            (
                offset(base, f.name.as_bytes()),
                offset(base, trim_ows(f.value)),
            )
        })
        .collect()
}

/// The fields at `ranges` of the head `bytes`, as slices of it (no copy).
fn fields_of(bytes: &Bytes, ranges: Vec<(Range<usize>, Range<usize>)>) -> Headers {
    let mut headers = Headers::with_capacity(ranges.len() + 4);
    for (name, value) in ranges {
        headers.push(bytes.slice(name), bytes.slice(value));
    }
    headers
}

/// The position of `part` inside the buffer starting at address `base`. httparse hands out
/// sub-slices of the buffer it parsed; after the head is split off and frozen, the same
/// ranges index it without copying.
///
/// An empty `part` may not point into the buffer at all (httparse's absent reason phrase):
/// it maps to an empty range.
fn offset(base: usize, part: &[u8]) -> Range<usize> {
    if part.is_empty() {
        return 0..0;
    }
    let start = (part.as_ptr() as usize).wrapping_sub(base);
    start..start + part.len()
}

#[cfg(test)]
mod tests;
