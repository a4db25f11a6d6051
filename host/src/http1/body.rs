//! Message bodies on an HTTP/1.x connection: decoding by the framing the head announced, and
//! the bytes that frame a body lbx sends.
//!
//! Decoding never copies data: each piece is split off the connection's read buffer. A body
//! whose connection closes before its framing says it is complete is *truncated*, which is an
//! error, never an end: lbx must not present a partial body as a whole one.

use bytes::{Bytes, BytesMut};

use super::chunked::ChunkedDecoder;
use super::decoded::{BodyError, Decoded};
use super::parse::Framing;
use crate::message::Headers;

/// Decoder for one message body.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    /// Chunked.
    Chunked(ChunkedDecoder),
    /// Until the connection closes.
    UntilClose {
        /// Whether the close has been seen.
        closed: bool,
    },
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => BodyDecoder::Length(0),
            Framing::Length(n) => BodyDecoder::Length(n),
            Framing::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyDecoder::UntilClose { closed: false },
        }
    }

    /// Whether the body has been read completely.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length(remaining) => *remaining == 0,
            BodyDecoder::Chunked(chunked) => chunked.is_done(),
            BodyDecoder::UntilClose { closed } => *closed,
        }
    }

    /// Take the next piece of the body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        match self {
            BodyDecoder::Length(0) => Ok(Decoded::End),
            BodyDecoder::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                *remaining -= n as u64;
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            BodyDecoder::Chunked(chunked) => chunked.decode(buf),
            BodyDecoder::UntilClose { closed } => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split().freeze()))
                } else if *closed {
                    Ok(Decoded::End)
                } else {
                    Ok(Decoded::NeedMore)
                }
            }
        }
    }

    /// The connection reached end of file: the end of an until-close body, an error for any
    /// other body that is not yet complete.
    pub fn eof(&mut self) -> Result<(), BodyError> {
        match self {
            BodyDecoder::UntilClose { closed } => {
                *closed = true;
                Ok(())
            }
            _ if self.is_done() => Ok(()),
            _ => Err(BodyError::Truncated),
        }
    }
}

/// How lbx frames a body it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No body is sent.
    Empty,
    /// `Content-Length` was sent: the data goes as is.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until lbx closes the connection (HTTP/1.0 clients).
    UntilClose,
}

/// The bytes before one chunk of `len` bytes: its size in hex and CRLF.
pub fn chunk_header(len: usize) -> ChunkHeader {
    let mut header = ChunkHeader {
        bytes: [0; 18],
        len: 0,
    };
    let digits = if len == 0 {
        1
    } else {
        (usize::BITS - len.leading_zeros()).div_ceil(4) as usize
    };
    for i in 0..digits {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xf;
        header.bytes[i] = b"0123456789abcdef"[nibble];
    }
    header.bytes[digits] = b'\r';
    header.bytes[digits + 1] = b'\n';
    header.len = digits + 2;
    header
}

/// A chunk-size line, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct ChunkHeader {
    bytes: [u8; 18],
    len: usize,
}

impl AsRef<[u8]> for ChunkHeader {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The CRLF after each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The end of a chunked body: the last chunk, `trailers` (if any), and the final CRLF.
pub fn last_chunk(trailers: Option<&Headers>) -> Bytes {
    let Some(trailers) = trailers.filter(|t| !t.is_empty()) else {
        return Bytes::from_static(b"0\r\n\r\n");
    };
    let mut out = BytesMut::with_capacity(64);
    out.extend_from_slice(b"0\r\n");
    super::encode::write_fields(trailers, &mut out);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_body_ends_after_exactly_its_bytes() {
        let mut decoder = BodyDecoder::new(Framing::Length(5));
        let mut buf = BytesMut::from(&b"helloGET /next"[..]);
        assert!(matches!(decoder.decode(&mut buf).unwrap(), Decoded::Data(d) if d == "hello"));
        assert!(decoder.is_done());
        assert!(matches!(decoder.decode(&mut buf).unwrap(), Decoded::End));
        assert_eq!(&buf[..], b"GET /next", "the next message is left alone");
    }

    #[test]
    fn end_of_file_truncates_every_body_but_an_until_close_one() {
        let mut length = BodyDecoder::new(Framing::Length(5));
        assert_eq!(length.eof(), Err(BodyError::Truncated));
        let mut chunked = BodyDecoder::new(Framing::Chunked);
        assert_eq!(chunked.eof(), Err(BodyError::Truncated));
        let mut until_close = BodyDecoder::new(Framing::UntilClose);
        until_close.eof().unwrap();
        assert!(until_close.is_done());
        let mut empty = BodyDecoder::new(Framing::Empty);
        empty.eof().unwrap();
    }

    #[test]
    fn chunk_headers_are_lowercase_hex() {
        assert_eq!(chunk_header(0).as_ref(), b"0\r\n");
        assert_eq!(chunk_header(10).as_ref(), b"a\r\n");
        assert_eq!(chunk_header(0x1234).as_ref(), b"1234\r\n");
        assert_eq!(chunk_header(usize::MAX).as_ref(), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn the_last_chunk_carries_trailers() {
        assert_eq!(last_chunk(None), "0\r\n\r\n");
        let mut trailers = Headers::default();
        trailers.push("grpc-status", "0");
        assert_eq!(last_chunk(Some(&trailers)), "0\r\ngrpc-status: 0\r\n\r\n");
    }
}
