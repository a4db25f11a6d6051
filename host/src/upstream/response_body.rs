//! A backend's response body, read straight off its connection by whoever relays it.
//!
//! The body owns the connection. When the body has ended exactly where its framing says (and
//! the exchange allowed reuse), the connection goes back to the pool at once — before the
//! client has even read the last bytes. A body that breaks (connection closed early, malformed
//! chunks, or silent for longer than the backend idle timeout) is an error, never an end, and
//! its connection is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::pool::{ConnectionPool, UpstreamConn};
use crate::http1::body::{BodyDecoder, BodyError, Decoded};
use crate::http1::io::{BODY_READ_SIZE, poll_read_into};
use crate::http1::parse::Framing;
use crate::message::BodyChunk;

/// Why a response body could not be read to its end: the backend's fault.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// Closed early or malformed.
    #[error(transparent)]
    Framing(#[from] BodyError),
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// No byte of the body arrived for this long.
    #[error("no body data for {} ms", .0.as_millis())]
    Idle(Duration),
}

/// A response body being read from its backend connection.
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<UpstreamConn>,
    pool: Arc<ConnectionPool>,
    decoder: BodyDecoder,
    framing: Framing,
    reusable: bool,
    ended: bool,
    failed: bool,
    /// Longest the backend may stay silent mid-body.
    idle: Duration,
    /// Armed only while waiting for the backend.
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    /// The body framed as `framing` on `conn`; the connection returns to `pool` after a clean
    /// end if `reusable`. The backend may pause at most `idle` between pieces of it.
    pub fn new(
        conn: UpstreamConn,
        pool: Arc<ConnectionPool>,
        framing: Framing,
        reusable: bool,
        idle: Duration,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            pool,
            decoder: BodyDecoder::new(framing),
            framing,
            reusable,
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
        loop {
            if self.failed {
                // Asked again after an error: still an error, never a clean end.
                return Poll::Ready(Some(Err(BodyError::Truncated.into())));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => {
                    if self.decoder.is_done() && self.framing != Framing::Chunked {
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
                Err(e) => return Poll::Ready(Some(Err(self.fail(e.into())))),
            }
            match poll_read_into(
                Pin::new(&mut conn.stream),
                &mut conn.buf,
                BODY_READ_SIZE,
                cx,
            ) {
                Poll::Ready(Ok(0)) => {
                    if let Err(e) = self.decoder.eof() {
                        return Poll::Ready(Some(Err(self.fail(e.into()))));
                    }
                }
                Poll::Ready(Ok(_)) => {
                    // Data arrived: the next wait starts afresh.
                    if let Some(timer) = &mut self.idle_timer
                        && let Some(at) = Instant::now().checked_add(self.idle)
                    {
                        timer.as_mut().reset(at);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(self.fail(e.into())))),
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
                    return Poll::Pending;
                }
            }
        }
    }

    /// The body has ended cleanly: hand the connection back if it may be reused.
    fn end(&mut self) {
        self.ended = true;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && self.decoder.is_done()
        {
            self.pool.put_back(conn);
        }
    }

    fn fail(&mut self, error: ResponseBodyError) -> ResponseBodyError {
        self.conn = None;
        self.failed = true;
        error
    }
}
