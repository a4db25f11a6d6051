//! A client's request as the proxy handles it, whichever protocol it came in on, and the id
//! that ties a client's error response to lbx's log line about it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::message::{Headers, RequestHead};

/// What follows the head of a client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// Nothing.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// A stream of unknown length (chunked, or HTTP/2 without `content-length`).
    Streaming,
}

/// A client's request, accepted (its head valid) and ready to be routed.
#[derive(Debug)]
pub struct ClientRequest {
    /// The head as received; origin-form or asterisk-form target.
    pub head: RequestHead,
    /// The authority to forward as Host (`None` only for an HTTP/1.0 request without one).
    pub authority: Option<Bytes>,
    /// What body follows.
    pub body: RequestBody,
    /// The client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// The protocols the client asks to switch to (HTTP/1.1 `Upgrade`).
    pub upgrade: Option<Bytes>,
    /// The client's address.
    pub client: SocketAddr,
    /// Whether it came over TLS.
    pub secure: bool,
    /// When the head arrived.
    pub received_at: Instant,
    /// The id in error responses and log lines.
    pub id: RequestId,
}

/// Identifies one request in lbx's logs, to its backend and to its client (`X-Request-Id`):
/// the id a trusted proxy in front of lbx already gave it ([`RequestId::for_request`]), or one
/// lbx generates — 16 hex digits, unique within a process and unlikely to repeat across
/// restarts. Cloning is cheap (a copy, or a reference count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Generated: the hex digits, formatted once.
    Generated([u8; 16]),
    /// From the request's `X-Request-Id` (checked: visible ASCII, at most [`MAX_GIVEN_LEN`]).
    Given(Bytes),
}

/// Longest `X-Request-Id` taken from a trusted client (a UUID is 36, a W3C trace id 32).
pub const MAX_GIVEN_LEN: usize = 200;

impl RequestId {
    /// A new generated id. One atomic increment and a few multiplications.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        });
        let value = mix(seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)));
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = std::array::from_fn(|i| HEX[(value >> (60 - 4 * i)) as usize & 0xf]);
        Self(Repr::Generated(digits))
    }

    /// The id for a request with `headers` from a peer that is (`trusted`) or is not one of
    /// `[proxy] trusted_proxies`: a trusted peer's single, sane `X-Request-Id` is kept (the id
    /// the edge in front of lbx already logged); anything else gets a new id. Untrusted peers'
    /// headers are not even looked at, so the common case costs nothing.
    pub fn for_request(headers: &Headers, trusted: bool) -> Self {
        if trusted
            && headers.count("x-request-id") == 1
            && let Some(given) = headers.get("x-request-id").and_then(Self::given)
        {
            return given;
        }
        Self::next()
    }

    /// [`RequestId::for_request`] for an HTTP/2 request's fields.
    pub fn for_header_map(headers: &http::HeaderMap, trusted: bool) -> Self {
        if trusted {
            let mut given = headers.get_all("x-request-id").iter();
            if let (Some(value), None) = (given.next(), given.next())
                && let Some(id) = Self::given(&Bytes::copy_from_slice(value.as_bytes()))
            {
                return id;
            }
        }
        Self::next()
    }

    /// `value` as an id, if it is one: 1 to [`MAX_GIVEN_LEN`] visible ASCII characters (no
    /// spaces or control bytes, so it is safe in a header, a log line and a JSON string alike).
    pub fn given(value: &Bytes) -> Option<Self> {
        let sane = !value.is_empty()
            && value.len() <= MAX_GIVEN_LEN
            && value.iter().all(u8::is_ascii_graphic);
        sane.then(|| Self(Repr::Given(value.clone())))
    }

    /// The id as sent in `X-Request-Id`.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Generated(digits) => digits,
            Repr::Given(bytes) => bytes,
        }
    }

    /// The id as text (always ASCII).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("request ids are ASCII")
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bijective mix (splitmix64's finaliser): consecutive counters give unrelated-looking ids.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_16_hex_digits() {
        let a = RequestId::next();
        let b = RequestId::next();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 16);
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
    }

    fn with_id(values: &[&'static str]) -> Headers {
        let mut headers = Headers::default();
        for value in values {
            headers.push("X-Request-Id", *value);
        }
        headers
    }

    #[test]
    fn a_trusted_peers_sane_id_is_kept() {
        let id = RequestId::for_request(&with_id(&["edge-42/abc"]), true);
        assert_eq!(id.as_str(), "edge-42/abc");
    }

    #[test]
    fn an_untrusted_peers_id_is_replaced() {
        let id = RequestId::for_request(&with_id(&["edge-42"]), false);
        assert_ne!(id.as_str(), "edge-42");
        assert_eq!(id.as_bytes().len(), 16);
    }

    #[test]
    fn odd_ids_are_replaced_even_from_a_trusted_peer() {
        let long = "a".repeat(MAX_GIVEN_LEN + 1);
        let long: &'static str = Box::leak(long.into_boxed_str());
        for odd in [
            &["a b"][..],
            &["a\x01"],
            &[""],
            &[long],
            &["one", "two"],
            &["caf\u{e9}"],
        ] {
            let id = RequestId::for_request(&with_id(odd), true);
            assert_eq!(id.as_bytes().len(), 16, "{odd:?} gave {id}");
        }
        let longest = "b".repeat(MAX_GIVEN_LEN);
        assert!(RequestId::given(&Bytes::from(longest)).is_some());
    }
}
