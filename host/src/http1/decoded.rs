//! What decoding a message body yields, step by step, and how it can fail: shared by the
//! length and chunked decoders ([`super::body`], [`super::chunked`]) and everyone who reads a
//! body through them.

use bytes::Bytes;

use crate::message::Headers;

/// One step of decoding.
#[derive(Debug)]
pub enum Decoded {
    /// The next bytes of the body.
    Data(Bytes),
    /// Trailer fields (chunked bodies only); the end follows.
    Trailers(Headers),
    /// The body is complete.
    End,
    /// The buffer holds no more of the body; read from the connection and call again.
    NeedMore,
}

/// A body that cannot be read to a clean end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The framing is broken (bad chunk size, missing CRLF...).
    #[error("malformed body: {0}")]
    Malformed(&'static str),
    /// The connection closed before the body was complete.
    #[error("connection closed before the body was complete")]
    Truncated,
}
