//! Request and response heads as lbx relays them, whatever protocol they arrived on.
//!
//! Header fields are kept as an ordered list of byte strings, names in the case they arrived
//! in: an HTTP/1.1 request is forwarded with its fields in the client's order and spelling
//! (only what a proxy must change is changed), repeated fields stay separate lines unless a
//! rule says to merge them, and a duplicate `Host` is still visible to the check that rejects
//! it. (`http::HeaderMap` lowercases names, groups repeats and loses the order between
//! names.) Values are `Bytes` slices of the buffer the head was read into: no copy per field.

use bytes::Bytes;
use http::{Method, StatusCode, Version};

/// One header field line: name as received, value without surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name, original case.
    pub name: Bytes,
    /// Field value.
    pub value: Bytes,
}

/// Header fields in order, repeats kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Append a field.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.entries.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The value of the first field called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| &h.value)
    }

    /// The value of the first field called `name`, if it is text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of fields called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.entries
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| &h.value)
    }

    /// How many fields are called `name`.
    pub fn count(&self, name: &str) -> usize {
        self.entries
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .count()
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether any field called `name` lists `token` among its comma-separated elements
    /// (ASCII case-insensitive), as in `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|value| list_elements(value))
            .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Remove every field called `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries
            .retain(|h| !h.name.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Keep only the fields for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.entries.retain(keep);
    }

    /// The fields, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.entries.iter()
    }

    /// Number of field lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// The non-empty elements of a comma-separated field value, trimmed of spaces and tabs
/// (RFC 9110 §5.6.1: recipients accept and ignore empty elements).
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// `bytes` without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3).
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// `http::HeaderMap` fields (HTTP/2 requests and trailers) as a field list, lowercase names.
pub fn from_header_map(map: &http::HeaderMap) -> Headers {
    let mut headers = Headers::with_capacity(map.len());
    for (name, value) in map {
        headers.push(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    headers
}

/// A field list as an `http::HeaderMap` (responses and trailers for HTTP/2 clients). Fields
/// whose name or value HTTP/2 cannot carry are left out.
pub fn to_header_map(headers: &Headers) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for f in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&f.name),
            http::HeaderValue::from_maybe_shared(f.value.clone()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A piece of a message body on its way through lbx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyChunk {
    /// Body bytes.
    Data(Bytes),
    /// Trailer fields, after the last data.
    Trailers(Headers),
}

/// A request head as lbx forwards it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Request target in origin-form (`/path?query`) or asterisk-form (`*`), as received
    /// (absolute-form targets are reduced to origin-form when the request is accepted).
    pub target: Bytes,
    /// Protocol version the client spoke.
    pub version: Version,
    /// Header fields (for HTTP/2 clients, lowercase names, no pseudo-headers).
    pub headers: Headers,
}

impl RequestHead {
    /// The path part of the target (`*` for asterisk-form).
    pub fn path(&self) -> &str {
        let target = self.target_str();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.target_str().split_once('?').map(|(_, query)| query)
    }

    fn target_str(&self) -> &str {
        // Targets are checked to be visible ASCII when a request is accepted.
        std::str::from_utf8(&self.target).unwrap_or("")
    }
}

/// A response head as lbx relays it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: StatusCode,
    /// Reason phrase as the backend sent it (may be empty); HTTP/2 has none.
    pub reason: Bytes,
    /// Protocol version the backend spoke.
    pub version: Version,
    /// Header fields.
    pub headers: Headers,
}

impl ResponseHead {
    /// A head with `status`, its canonical reason and no fields.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            reason: Bytes::from_static(status.canonical_reason().unwrap_or("").as_bytes()),
            version: Version::HTTP_11,
            headers: Headers::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_repeats_in_order() {
        let mut headers = Headers::default();
        headers.push("Host", "a");
        headers.push("X-Thing", "1");
        headers.push("x-thing", "2");
        assert_eq!(headers.get("HOST").unwrap(), "a");
        let things: Vec<_> = headers.get_all("X-THING").collect();
        assert_eq!(things, ["1", "2"]);
        assert_eq!(headers.count("x-thing"), 2);
        headers.remove("X-Thing");
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn tokens_are_found_in_comma_separated_lists() {
        let mut headers = Headers::default();
        headers.push("Connection", "keep-alive ,, X-Secret");
        headers.push("connection", "Upgrade");
        assert!(headers.has_token("connection", "x-secret"));
        assert!(headers.has_token("connection", "upgrade"));
        assert!(!headers.has_token("connection", "close"));
    }

    #[test]
    fn path_and_query_split_at_the_first_question_mark() {
        let head = RequestHead {
            method: Method::GET,
            target: Bytes::from_static(b"/a/b?x=1?y"),
            version: Version::HTTP_11,
            headers: Headers::default(),
        };
        assert_eq!(head.path(), "/a/b");
        assert_eq!(head.query(), Some("x=1?y"));
    }
}
