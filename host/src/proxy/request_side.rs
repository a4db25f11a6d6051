//! The client's request body once the head has gone upstream. An HTTP/1.1 exchange reads it
//! from the feed itself; for an HTTP/2 backend it is pumped onto the stream's `SendStream`
//! under the backend's flow control — and that may go on after the response has started, as a
//! gRPC stream sends both ways at once. Whoever relays the response keeps polling the pump, so
//! the request keeps moving without a task of its own.
//!
//! A body that fails on the client's side resets the stream (`INTERNAL_ERROR`), as does an
//! attempt given up while the body is still going (`CANCEL`): an HTTP/2 backend never sees a
//! broken body end as a whole one.

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{Reason, SendStream};
use tokio::time::Instant;

use super::client_body::{BodyFeed, ClientBodyError, ClientSource};
use crate::message::{BodyChunk, to_header_map};
use crate::upstream::BodySource;

/// The request body's side of an exchange.
#[derive(Debug)]
pub struct RequestSide<S> {
    /// The client's body, recorded for replays.
    pub(super) feed: BodyFeed<S>,
    /// Whether the client has been told `100 Continue` (it is told once per request).
    pub(super) continue_relayed: bool,
    pump: Option<Pump>,
    /// Since when the stream has not taken more of the body (the backend not reading).
    blocked_since: Option<Instant>,
}

/// The HTTP/2 stream the body goes to, and a piece waiting for window to go.
#[derive(Debug)]
struct Pump {
    stream: SendStream<Bytes>,
    waiting: Option<Bytes>,
}

impl<S: ClientSource> RequestSide<S> {
    /// The request side over `feed`.
    pub(super) fn new(feed: BodyFeed<S>) -> Self {
        Self {
            feed,
            continue_relayed: false,
            pump: None,
            blocked_since: None,
        }
    }

    /// Whether the client's body was read to its end (an HTTP/1.1 connection can then carry
    /// another request).
    pub fn body_done(&self) -> bool {
        self.feed.source().is_done()
    }

    /// Whether the body is still being moved into an HTTP/2 stream.
    pub fn is_pumping(&self) -> bool {
        self.pump.is_some()
    }

    /// Since when the HTTP/2 stream has refused more of the body, if it does now.
    pub fn stream_blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// Send the body on `stream` from now on (an HTTP/2 request's stream).
    pub(super) fn start_pump(&mut self, stream: SendStream<Bytes>) {
        self.pump = Some(Pump {
            stream,
            waiting: None,
        });
        self.blocked_since = None;
    }

    /// Stop sending (the attempt is over): a body not yet ended is cut off with a reset.
    pub(super) fn stop_pump(&mut self) {
        if let Some(mut pump) = self.pump.take() {
            pump.stream.send_reset(Reason::CANCEL);
        }
        self.blocked_since = None;
    }

    /// Move as much of the body as the stream takes. `Ready(Ok)` once all of it and its end
    /// are sent, or when there is nothing to pump (or the stream no longer wants it);
    /// `Ready(Err)` when the client's body failed (the stream is reset).
    pub fn poll_pump(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientBodyError>> {
        let polled = self.poll_pump_inner(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(_) => {
                self.pump = None;
                self.blocked_since = None;
            }
        }
        polled
    }

    fn poll_pump_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientBodyError>> {
        loop {
            let Some(pump) = self.pump.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            // The backend may reset the stream (having answered without the rest of the body,
            // or refusing it): nothing more to send, and not the client's fault.
            if pump.stream.poll_reset(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            if let Some(piece) = pump.waiting.take() {
                // As hyper does: wait until the window has room at all, then hand h2 the whole
                // piece (already in memory), which frames it as the window opens.
                while pump.stream.capacity() == 0 {
                    match pump.stream.poll_capacity(cx) {
                        Poll::Pending => {
                            pump.waiting = Some(piece);
                            self.blocked_since.get_or_insert_with(Instant::now);
                            return Poll::Pending;
                        }
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Ok(())),
                    }
                }
                self.blocked_since = None;
                if pump.stream.send_data(piece, false).is_err() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match ready!(self.feed.poll_chunk(cx)) {
                Ok(Some(BodyChunk::Data(data))) => {
                    if !data.is_empty() {
                        pump.stream.reserve_capacity(1);
                        pump.waiting = Some(data);
                    }
                }
                Ok(Some(BodyChunk::Trailers(trailers))) => {
                    // Trailers end the stream.
                    pump.stream.reserve_capacity(0);
                    let _ = pump.stream.send_trailers(to_header_map(&trailers));
                    return Poll::Ready(Ok(()));
                }
                Ok(None) => {
                    let _ = pump.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(Ok(()));
                }
                Err(e) => {
                    pump.stream.send_reset(Reason::INTERNAL_ERROR);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}
