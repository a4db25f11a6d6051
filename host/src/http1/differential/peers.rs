//! The two implementations under comparison, each run over one connection's worth of bytes:
//! lbx's codec driven the way `proxy::client_h1` drives it, and hyper's own HTTP/1.1 server.
//! Both report the same thing: the requests they saw, in order, and how the connection ended.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http1::parse::{RequestError, parse_request};
use crate::http1::{BodyDecoder, BodyError, Decoded};

/// One request as an implementation saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The request target as `http::Uri` displays it, so that both sides are normalised the
    /// same way (lbx keeps the raw bytes, hyper only has its `Uri`).
    pub target: String,
    pub body: Body,
}

/// A request body: every byte up to a clean end, or why it did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Complete(Vec<u8>),
    Failed(String),
}

/// How the connection ended, after the requests seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The input ended, or a message asked for the connection to close. Input that ends inside
    /// a head is no different: neither side answers it (`proxy::client_h1::read_head`).
    Closed,
    /// A head was refused (lbx: with this error; hyper: a parse error, answered 400).
    Refused(String),
    /// The last request's body failed; nothing after it is read.
    BodyFailed,
    /// Anything else (hyper only): always a failure of the test.
    Other(String),
}

/// What one implementation made of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub seen: Vec<Seen>,
    pub end: End,
}

impl Outcome {
    /// The outcome with every error message blanked.
    pub fn without_reasons(&self) -> Outcome {
        let seen = self
            .seen
            .iter()
            .map(|s| Seen {
                body: match &s.body {
                    Body::Failed(_) => Body::Failed(String::new()),
                    complete => complete.clone(),
                },
                ..s.clone()
            })
            .collect();
        let end = match &self.end {
            End::Refused(_) => End::Refused(String::new()),
            end => end.clone(),
        };
        Outcome { seen, end }
    }
}

/// lbx's run, with what the allow-list rules need to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbxRun {
    pub outcome: Outcome,
    /// Where each head lbx read or refused starts in the input.
    pub head_at: Vec<usize>,
    /// Where each body starts in the input.
    pub body_at: Vec<usize>,
    /// The refusal, when `outcome.end` is `Refused`.
    pub refusal: Option<RequestError>,
    /// The body error, when `outcome.end` is `BodyFailed`, and where in the input lbx stopped
    /// (a refused chunk-size line starts there).
    pub body_error: Option<(BodyError, usize)>,
}

/// The bytes of one connection, arriving `step` bytes per read.
struct Connection<'a> {
    input: &'a [u8],
    fed: usize,
    step: usize,
    buf: BytesMut,
}

impl Connection<'_> {
    /// One read: false at end of file.
    fn read(&mut self) -> bool {
        if self.fed == self.input.len() {
            return false;
        }
        let end = self.fed.saturating_add(self.step).min(self.input.len());
        self.buf.extend_from_slice(&self.input[self.fed..end]);
        self.fed = end;
        true
    }

    /// Where the first unconsumed byte is in the input.
    fn offset(&self) -> usize {
        self.fed - self.buf.len()
    }
}

/// lbx's codec over `input`, read `step` bytes at a time, as `proxy::client_h1::serve` and
/// `proxy::client_body::H1Body` use it: parse a head, decode its body to the end, stop on the
/// first error or when the request does not keep the connection alive.
pub fn lbx(input: &[u8], step: usize) -> LbxRun {
    let mut conn = Connection {
        input,
        fed: 0,
        step: step.max(1),
        buf: BytesMut::new(),
    };
    let mut run = LbxRun {
        outcome: Outcome {
            seen: Vec::new(),
            end: End::Closed,
        },
        head_at: Vec::new(),
        body_at: Vec::new(),
        refusal: None,
        body_error: None,
    };
    loop {
        let head_at = conn.offset();
        let parsed = loop {
            if !conn.buf.is_empty() {
                match parse_request(&mut conn.buf) {
                    Ok(Some(parsed)) => break parsed,
                    Ok(None) => {}
                    Err(error) => {
                        run.head_at.push(head_at);
                        run.outcome.end = End::Refused(error.to_string());
                        run.refusal = Some(error);
                        return run;
                    }
                }
            }
            if !conn.read() {
                return run;
            }
        };
        run.head_at.push(head_at);
        run.body_at.push(conn.offset());
        let (_, raw_target) = request_line(&input[head_at..]).unwrap_or_default();
        let mut decoder = BodyDecoder::new(parsed.framing);
        let mut data = Vec::new();
        let body = loop {
            match decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(bytes)) => data.extend_from_slice(&bytes),
                Ok(Decoded::Trailers(_)) => {}
                Ok(Decoded::End) => break Ok(data),
                Ok(Decoded::NeedMore) => {
                    if !conn.read()
                        && let Err(error) = decoder.eof()
                    {
                        break Err(error);
                    }
                }
                Err(error) => break Err(error),
            }
        };
        let body = match body {
            Ok(data) => Body::Complete(data),
            Err(error) => {
                let text = error.to_string();
                run.body_error = Some((error, conn.offset()));
                Body::Failed(text)
            }
        };
        let failed = matches!(body, Body::Failed(_));
        run.outcome.seen.push(Seen {
            method: parsed.head.method.to_string(),
            target: uri_text(&raw_target),
            body,
        });
        if failed {
            run.outcome.end = End::BodyFailed;
            return run;
        }
        if !parsed.keep_alive {
            return run;
        }
    }
}

/// The method and the request target (as received: lbx's parsed head holds it reduced to
/// origin-form) of the head at the start of `bytes`.
pub fn request_line(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut fields);
    request.parse(bytes).ok()?;
    Some((
        request.method?.to_string(),
        request.path?.as_bytes().to_vec(),
    ))
}

/// A target as `http::Uri` displays it (how hyper's side is recorded too).
pub fn uri_text(target: &[u8]) -> String {
    match http::Uri::try_from(target) {
        Ok(uri) => uri.to_string(),
        Err(_) => format!("(not a Uri) {}", String::from_utf8_lossy(target)),
    }
}

/// hyper's HTTP/1.1 server over `input`: the bytes are written to an in-memory connection whose
/// write side is then shut down; a service records each request and reads its body to the end.
/// Must run inside a tokio runtime with time enabled.
pub async fn hyper(input: &[u8]) -> Outcome {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let record = seen.clone();
    let service = service_fn(move |request: http::Request<Incoming>| {
        let record = record.clone();
        async move {
            let method = request.method().to_string();
            let target = request.uri().to_string();
            let body = match request.into_body().collect().await {
                Ok(collected) => Body::Complete(collected.to_bytes().to_vec()),
                Err(error) => Body::Failed(error.to_string()),
            };
            record.borrow_mut().push(Seen {
                method,
                target,
                body,
            });
            Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
        }
    });
    let (mut client, server) = tokio::io::duplex(input.len() + 64 * 1024);
    // Half-close: the client's end of file must not cut short a request being served (the
    // input is all sent before hyper answers anything).
    let connection = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service);
    let client = async {
        // The duplex buffer holds the whole input, so neither call waits on hyper.
        let _ = client.write_all(input).await;
        let _ = client.shutdown().await;
        let mut responses = Vec::new();
        let _ = client.read_to_end(&mut responses).await;
    };
    let run = async { tokio::join!(connection, client).0 };
    let result = tokio::time::timeout(Duration::from_secs(10), run).await;
    let seen = seen.take();
    let body_failed = seen
        .last()
        .is_some_and(|s| matches!(s.body, Body::Failed(_)));
    let end = match result {
        _ if body_failed => End::BodyFailed,
        Ok(Ok(())) => End::Closed,
        Ok(Err(error)) if error.is_parse() || error.is_parse_too_large() => {
            End::Refused(error.to_string())
        }
        Ok(Err(error)) if error.is_incomplete_message() => End::Closed,
        Ok(Err(error)) => End::Other(error.to_string()),
        Err(_) => End::Other("hyper did not finish within 10 s".into()),
    };
    Outcome { seen, end }
}
