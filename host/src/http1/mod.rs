//! lbx's own HTTP/1.1 codec, for both sides of the proxy: parsing client requests and backend
//! responses, decoding and framing bodies, writing heads.
//!
//! Why not hyper here (it stays for HTTP/2 and the admin API): a proxy has to see and control
//! what hyper hides. hyper's server cannot send `103 Early Hints` or relay any 1xx; its
//! client writes whatever URI form it is handed and keeps a connection task plus a channel hop
//! per request; neither exposes duplicate `Host` lines, field order or case, or lets a request
//! body be abandoned without its terminating chunk. Here a head is parsed once (httparse) into
//! [`crate::message`] types that keep the received bytes, checked against RFC 9112 in one
//! place ([`parse`]), and written back out field by field, so what a backend receives is exactly
//! what lbx decided to send — which the integration tests check byte for byte.
//!
//! The request side is fuzzed against hyper's HTTP/1.1 server (`differential`, a test module):
//! any framing difference that no RFC-backed rule explains fails the test.
//!
//! This module is wire format only. What to forward, and who is at fault when something breaks,
//! is decided in `proxy` and `upstream`.

pub mod body;
pub mod chunked;
pub mod decoded;
pub mod encode;
pub mod io;
pub mod parse;

#[cfg(test)]
mod differential;

pub use body::{BodyDecoder, BodyEncoding};
pub use decoded::{BodyError, Decoded};
pub use parse::{Framing, ParsedRequest, ParsedResponse, RequestError, ResponseError};
