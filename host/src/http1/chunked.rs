//! Decoding the chunked transfer coding (RFC 9112 §7.1), strictly: a chunk-size line needs at
//! least one hex digit and at most 16, ends in CRLF (a bare LF or CR is an error, not a line
//! end), extensions may not hold control characters, chunk data is followed by exactly CRLF,
//! and the size line and trailer section are bounded. Lenient chunked parsers are how request
//! smuggling works: a front end and a back end that disagree on where a body ends.
//!
//! httparse has a chunk-size parser, but it accepts a size line without digits as size 0 (a
//! premature last chunk), so lbx uses its own.

use bytes::{Buf, Bytes, BytesMut};

use super::decoded::{BodyError, Decoded};
use crate::message::{Headers, trim_ows};

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 4 * 1024;
/// Largest trailer section.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most trailer fields.
const MAX_TRAILERS: usize = 64;

/// Where the decoder is in the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// After a chunk's data: CRLF expected.
    DataEnd,
    /// After the last chunk: the trailer section (possibly empty) and its final CRLF.
    Trailers,
    /// The body has ended.
    Done,
}

/// Incremental decoder of one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

impl ChunkedDecoder {
    /// Whether the whole body, trailers included, has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Take the next piece of the body out of `buf`: data (a zero-copy slice of it), the
    /// trailer fields, the end, or a request for more bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(size) = take_size_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        // A lone byte that cannot start CRLF is already wrong.
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(trailers) = take_trailer_section(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = State::Done;
                    if !trailers.is_empty() {
                        return Ok(Decoded::Trailers(trailers));
                    }
                }
                State::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// Parse and remove one `chunk-size [ chunk-ext ] CRLF` line; `Ok(None)` if it is incomplete.
fn take_size_line(buf: &mut BytesMut) -> Result<Option<u64>, BodyError> {
    let Some(lf) = buf.iter().take(MAX_SIZE_LINE).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_SIZE_LINE {
            return Err(BodyError::Malformed("chunk-size line too long"));
        }
        // Reject what can already be seen to be wrong instead of waiting for more.
        check_size_line_prefix(buf)?;
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(BodyError::Malformed("chunk-size line not ended by CRLF"));
    }
    let line = &buf[..lf - 1];
    let size = parse_size_line(line)?;
    buf.advance(lf + 1);
    Ok(Some(size))
}

/// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] )`, the extensions checked
/// only for characters (lbx ignores them, as RFC 9112 §7.1.1 allows).
fn parse_size_line(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::Malformed("chunk size has no digits"));
    }
    if digits > 16 {
        return Err(BodyError::Malformed("chunk size too large"));
    }
    let size = line[..digits]
        .iter()
        .fold(0u64, |acc, &b| (acc << 4) | u64::from(hex_value(b)));
    let rest = trim_ows(&line[digits..]);
    if !rest.is_empty() && rest[0] != b';' {
        return Err(BodyError::Malformed("invalid character after chunk size"));
    }
    if rest.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(BodyError::Malformed("control character in chunk extension"));
    }
    Ok(size)
}

/// Fail early on a partial size line that can never become valid.
fn check_size_line_prefix(partial: &[u8]) -> Result<(), BodyError> {
    match partial.first() {
        Some(b) if !b.is_ascii_hexdigit() => Err(BodyError::Malformed("chunk size has no digits")),
        _ if partial.contains(&b'\r') && !partial.ends_with(b"\r") => {
            Err(BodyError::Malformed("chunk-size line not ended by CRLF"))
        }
        _ => Ok(()),
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Take the trailer section and its terminating CRLF: `Ok(Some(empty))` when there are no
/// trailers, `Ok(None)` when incomplete.
fn take_trailer_section(buf: &mut BytesMut) -> Result<Option<Headers>, BodyError> {
    if buf.len() < 2 {
        if buf
            .first()
            .is_some_and(|&b| b != b'\r' && !is_token_char(b))
        {
            return Err(BodyError::Malformed("invalid trailer section"));
        }
        return Ok(None);
    }
    if &buf[..2] == b"\r\n" {
        buf.advance(2);
        return Ok(Some(Headers::default()));
    }
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_TRAILER_BYTES {
            return Err(BodyError::Malformed("trailer section too large"));
        }
        return Ok(None);
    };
    if end + 4 > MAX_TRAILER_BYTES {
        return Err(BodyError::Malformed("trailer section too large"));
    }
    let section = buf.split_to(end + 4).freeze();
    parse_trailers(&section).map(Some)
}

fn parse_trailers(section: &Bytes) -> Result<Headers, BodyError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let parsed = match httparse::parse_headers(section, &mut fields) {
        // httparse takes a bare LF as a line end (RFC 9112 §2.2 allows it), so an empty line
        // of one LF ends its fields before the CRLF CRLF the section was cut at. The bytes in
        // between would be the next message to any parser that does the same: refused rather
        // than discarded as trailers.
        Ok(httparse::Status::Complete((consumed, fields))) if consumed == section.len() => fields,
        _ => return Err(BodyError::Malformed("invalid trailer field")),
    };
    let mut trailers = Headers::with_capacity(parsed.len());
    for field in parsed {
        let value = trim_ows(field.value);
        trailers.push(
            section.slice_ref(field.name.as_bytes()),
            if value.is_empty() {
                Bytes::new()
            } else {
                section.slice_ref(value)
            },
        );
    }
    Ok(trailers)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` fed in pieces of `step` bytes; returns the data, trailers, and whether
    /// it ended.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, Headers, bool), BodyError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), Headers::default());
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::Trailers(t) => trailers = t,
                    Decoded::End => return Ok((data, trailers, true)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((data, trailers, false))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_in_any_split() {
        let input = b"5;name=\"v\"\r\nhello\r\nA \r\n, world!!!\r\n0\r\nX-Sum: 9\r\nx-b:\r\n\r\n";
        for step in 1..input.len() {
            let (data, trailers, ended) = decode_in_steps(input, step).unwrap();
            assert_eq!(data, b"hello, world!!!", "step {step}");
            assert!(ended);
            assert_eq!(trailers.get("x-sum").unwrap(), "9");
            assert_eq!(trailers.get("X-B").unwrap(), "");
        }
    }

    #[test]
    fn a_body_without_the_last_chunk_has_not_ended() {
        let (data, _, ended) = decode_in_steps(b"3\r\nabc\r\n", 4).unwrap();
        assert_eq!(data, b"abc");
        assert!(!ended);
        let (_, _, ended) = decode_in_steps(b"3\r\nabc\r\n0\r\n", 4).unwrap();
        assert!(!ended, "the last chunk needs its final CRLF");
    }

    #[test]
    fn malformed_framing_is_an_error_not_an_end() {
        let cases: [&[u8]; 11] = [
            b"\r\n",                     // no digits
            b"zz\r\n",                   // not hex
            b"-1\r\n",                   // sign
            b"5\nhello\r\n0\r\n\r\n",    // bare LF
            b"5\rhello\r\n0\r\n\r\n",    // bare CR
            b"3\r\nabcX\r\n",            // data longer than its size
            b"3\r\nabc\n0\r\n\r\n",      // data followed by LF only
            b"11111111111111111\r\n",    // 17 digits
            b"5 5\r\nhello\r\n",         // junk after size
            b"5;a\x00b\r\nhello\r\n",    // control in extension
            b"0\r\nBad Name: v\r\n\r\n", // invalid trailer
        ];
        for case in cases {
            for step in [1, 3, case.len()] {
                assert!(
                    decode_in_steps(case, step).is_err(),
                    "{:?} in steps of {step} should fail",
                    String::from_utf8_lossy(case)
                );
            }
        }
    }

    #[test]
    fn a_trailer_section_a_bare_lf_ends_early_is_refused_not_swallowed() {
        // For a parser that takes a bare LF as a line end (RFC 9112 §2.2, as httparse does for
        // heads) the section ends at the empty line and `GET /smuggled` is the next request;
        // reading on to the next CRLF CRLF would discard it instead. Found by the differential
        // test (lbx's answer depended on how the bytes arrived).
        let cases: [&[u8]; 3] = [
            b"0\r\n\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
            b"0\r\nX: 1\n\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
            b"0\r\nX: 1\n\r\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
        ];
        for case in cases {
            for step in [1, 2, 5, case.len()] {
                assert!(
                    decode_in_steps(case, step).is_err(),
                    "{:?} in steps of {step} should fail",
                    String::from_utf8_lossy(case)
                );
            }
        }
        // A bare LF between trailer lines is still a line end.
        let (_, trailers, ended) = decode_in_steps(b"0\r\nX: 1\nY: 2\r\n\r\n", 3).unwrap();
        assert!(ended);
        assert_eq!(trailers.get("y").unwrap(), "2");
    }

    #[test]
    fn size_lines_and_trailers_are_bounded() {
        let long_extension = format!("1;{}\r\n", "a".repeat(MAX_SIZE_LINE));
        assert!(decode_in_steps(long_extension.as_bytes(), 512).is_err());
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "a".repeat(MAX_TRAILER_BYTES + 1));
        assert!(decode_in_steps(big_trailer.as_bytes(), 512).is_err());
    }

    #[test]
    fn the_largest_sizes_do_not_overflow() {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert!(matches!(decoder.decode(&mut buf).unwrap(), Decoded::Data(d) if d == "ab"));
    }
}
