//! A backend's response body, read by whoever relays it: straight off an HTTP/1.1 connection
//! (lbx's codec), or from an HTTP/2 stream (`h2`'s `RecvStream`, its window given back as the
//! data is taken).
//!
//! An HTTP/1.1 body owns its connection. When it has ended exactly where its framing says (and
//! the exchange allowed reuse), the connection goes back to the pool at once — before the
//! client has even read the last bytes. An HTTP/2 body holds its stream's slot on the shared
//! connection until it ends. A body that breaks (connection closed early, malformed chunks, a
//! reset stream, or silent for longer than the backend idle timeout) is an error, never an end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::h2::StreamSlot;
use super::pool::{ConnectionPool, UpstreamConn};
use crate::http1::io::{BODY_READ_SIZE, poll_read_into};
use crate::http1::parse::Framing;
use crate::http1::{BodyDecoder, BodyError, Decoded};
use crate::message::{BodyChunk, from_header_map};

/// Why a response body could not be read to its end: the backend's fault.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// Closed early or malformed.
    #[error(transparent)]
    Framing(#[from] BodyError),
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/2 stream failed (reset, connection lost).
    #[error("HTTP/2 stream failed: {0}")]
    Http2(String),
    /// No byte of the body arrived for this long.
    #[error("no body data for {} ms", .0.as_millis())]
    Idle(Duration),
}

/// Where the body's bytes come from.
#[derive(Debug)]
enum Source {
    Http1 {
        conn: Option<UpstreamConn>,
        pool: Arc<ConnectionPool>,
        decoder: BodyDecoder,
        reusable: bool,
    },
    Http2 {
        body: h2::RecvStream,
        /// Its DATA has ended; trailers (or the bare end) come next.
        data_done: bool,
        /// Released when the body is done.
        slot: Option<StreamSlot>,
    },
    /// No body at all (a `101`: what follows is no longer HTTP).
    Nothing,
}

/// A response body being read from its backend.
#[derive(Debug)]
pub struct ResponseBody {
    source: Source,
    framing: Framing,
    ended: bool,
    failed: bool,
    /// Longest the backend may stay silent mid-body.
    idle: Duration,
    /// Armed only while waiting for the backend.
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    /// An HTTP/1.1 body framed as `framing` on `conn`; the connection returns to `pool` after a
    /// clean end if `reusable`. The backend may pause at most `idle` between pieces of it.
    pub fn http1(
        conn: UpstreamConn,
        pool: Arc<ConnectionPool>,
        framing: Framing,
        reusable: bool,
        idle: Duration,
    ) -> Self {
        Self::from_source(
            Source::Http1 {
                conn: Some(conn),
                pool,
                decoder: BodyDecoder::new(framing),
                reusable,
            },
            framing,
            idle,
        )
    }

    /// An HTTP/2 body; `framing` is `Length` when the backend declared one, `Empty` when the
    /// stream already ended, `Chunked` otherwise (a stream of unknown length).
    pub fn http2(body: h2::RecvStream, slot: StreamSlot, framing: Framing, idle: Duration) -> Self {
        Self::from_source(
            Source::Http2 {
                body,
                data_done: false,
                slot: Some(slot),
            },
            framing,
            idle,
        )
    }

    /// No body (after `101 Switching Protocols`).
    pub fn nothing() -> Self {
        Self::from_source(Source::Nothing, Framing::Empty, Duration::ZERO)
    }

    /// A body read from `source`; an `Empty` one has ended before it starts.
    fn from_source(source: Source, framing: Framing, idle: Duration) -> Self {
        let mut body = Self {
            source,
            framing,
            ended: false,
            failed: false,
            idle,
            idle_timer: None,
        };
        if framing == Framing::Empty {
            body.end();
        }
        body
    }

    /// How the backend framed it.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the whole body has been read.
    pub fn is_end(&self) -> bool {
        self.ended
    }

    /// The next piece of the body; `Ready(None)` at its clean end.
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyChunk, ResponseBodyError>>> {
        if self.failed {
            // Asked again after an error: still an error, never a clean end.
            return Poll::Ready(Some(Err(BodyError::Truncated.into())));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = match &mut self.source {
            Source::Http1 { .. } => self.poll_http1(cx),
            Source::Http2 { .. } => self.poll_http2(cx),
            Source::Nothing => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                // Data arrived: the next wait starts afresh.
                if let Some(timer) = &mut self.idle_timer
                    && let Some(at) = Instant::now().checked_add(self.idle)
                {
                    timer.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(self.fail(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // A stream that keeps moving is never cut; one that stops is the backend's
                // fault once it has been silent for `idle`.
                let idle = self.idle;
                let timer = self
                    .idle_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(self.fail(ResponseBodyError::Idle(idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn poll_http1(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyChunk, ResponseBodyError>>> {
        loop {
            let Source::Http1 { conn, decoder, .. } = &mut self.source else {
                unreachable!("called for HTTP/1.1 bodies only");
            };
            let Some(conn) = conn.as_mut() else {
                return Poll::Ready(None);
            };
            match decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => {
                    if decoder.is_done() && self.framing != Framing::Chunked {
                        self.end();
                    }
                    return Poll::Ready(Some(Ok(BodyChunk::Data(data))));
                }
                Ok(Decoded::Trailers(trailers)) => {
                    self.end();
                    return Poll::Ready(Some(Ok(BodyChunk::Trailers(trailers))));
                }
                Ok(Decoded::End) => {
                    self.end();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
            match poll_read_into(
                Pin::new(&mut conn.stream),
                &mut conn.buf,
                BODY_READ_SIZE,
                cx,
            ) {
                Poll::Ready(Ok(0)) => {
                    if let Err(e) = decoder.eof() {
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_http2(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyChunk, ResponseBodyError>>> {
        let Source::Http2 {
            body, data_done, ..
        } = &mut self.source
        else {
            unreachable!("called for HTTP/2 bodies only");
        };
        while !*data_done {
            match ready!(body.poll_data(cx)) {
                // An empty DATA frame carries nothing to relay.
                Some(Ok(data)) if data.is_empty() => {}
                Some(Ok(data)) => {
                    // Taken off the stream: the backend may send as much again.
                    let _ = body.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(BodyChunk::Data(data))));
                }
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(ResponseBodyError::Http2(e.to_string()))));
                }
                None => *data_done = true,
            }
        }
        match ready!(body.poll_trailers(cx)) {
            Ok(Some(trailers)) => {
                self.end();
                Poll::Ready(Some(Ok(BodyChunk::Trailers(from_header_map(&trailers)))))
            }
            Ok(None) => {
                self.end();
                Poll::Ready(None)
            }
            Err(e) => Poll::Ready(Some(Err(ResponseBodyError::Http2(e.to_string())))),
        }
    }

    /// The body has ended cleanly: hand an HTTP/1.1 connection back if it may be reused;
    /// release an HTTP/2 stream's slot.
    fn end(&mut self) {
        self.ended = true;
        match &mut self.source {
            Source::Http1 {
                conn,
                pool,
                decoder,
                reusable,
            } => {
                if let Some(conn) = conn.take()
                    && *reusable
                    && decoder.is_done()
                {
                    pool.put_back(conn);
                }
            }
            Source::Http2 { slot, .. } => drop(slot.take()),
            Source::Nothing => {}
        }
    }

    fn fail(&mut self, error: ResponseBodyError) -> ResponseBodyError {
        if let Source::Http1 { conn, .. } = &mut self.source {
            *conn = None;
        }
        self.failed = true;
        error
    }
}
