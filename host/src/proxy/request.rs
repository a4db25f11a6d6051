//! A client's request as the proxy handles it, whichever protocol it came in on, and the id
//! that ties a client's error response to lbx's log line about it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::message::RequestHead;

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

/// Identifies one request in lbx's logs and in the error responses clients see: 16 hex
/// digits, unique within a process and unlikely to repeat across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    /// The next id. One atomic increment; formatting happens only when the id is shown.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        });
        Self(mix(seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
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
}
