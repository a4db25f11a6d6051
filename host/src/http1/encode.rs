//! Writing HTTP/1.1 heads. Fields are written in the order given, names in the case given:
//! the caller decides what a head contains, this only serialises it. Every head lbx writes says
//! `HTTP/1.1`, also to HTTP/1.0 peers (RFC 9110 §2.5: the highest version lbx conforms to with
//! the same major version).

use bytes::BytesMut;
use http::{Method, StatusCode};

use crate::message::Headers;

/// `method target HTTP/1.1` CRLF: the request line. The fields follow (see [`write_field`]).
pub fn write_request_line(method: &Method, target: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// `HTTP/1.1 status reason`, the fields, and the blank line.
pub fn write_response_head(
    status: StatusCode,
    reason: &[u8],
    headers: &Headers,
    out: &mut BytesMut,
) {
    out.reserve(reason.len() + 20 + fields_len(headers));
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    write_fields(headers, out);
    out.extend_from_slice(b"\r\n");
}

/// `name: value` CRLF for each field.
pub fn write_fields(headers: &Headers, out: &mut BytesMut) {
    for field in headers {
        write_field(&field.name, &field.value, out);
    }
}

/// `name: value` CRLF.
pub fn write_field(name: &[u8], value: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The bytes `headers` take as `name: value` CRLF lines, to reserve room for them.
pub fn fields_len(headers: &Headers) -> usize {
    headers
        .iter()
        .map(|f| f.name.len() + f.value.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_written_exactly_as_given() {
        let mut headers = Headers::default();
        headers.push("Host", "a.example");
        headers.push("X-Mixed", "v");
        let mut out = BytesMut::new();
        write_request_line(&Method::GET, b"/p?q=1", &mut out);
        write_fields(&headers, &mut out);
        out.extend_from_slice(b"\r\n");
        assert_eq!(
            &out[..],
            b"GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-Mixed: v\r\n\r\n"
        );

        let mut out = BytesMut::new();
        write_response_head(
            StatusCode::NOT_FOUND,
            b"Nope",
            &Headers::default(),
            &mut out,
        );
        assert_eq!(&out[..], b"HTTP/1.1 404 Nope\r\n\r\n");
    }
}
