//! The client's request body once the head has gone upstream. An HTTP/1.1 exchange reads it
//! from the feed itself; for an HTTP/2 backend it is pumped into the stream's body channel —
//! and that may go on after the response has started, as a gRPC stream sends both ways at
//! once. Whoever relays the response keeps polling the pump, so the request keeps moving
//! without a task of its own.
//!
//! A body that fails on the client's side stops the pump without its end message: the HTTP/2
//! stream is reset, never completed.

use std::task::{Context, Poll, ready};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::PollSender;

use super::client_body::{BodyFeed, ClientBodyError, ClientSource};
use crate::upstream::BodySource;
use crate::upstream::h2::Feed;

/// The request body's side of an exchange.
#[derive(Debug)]
pub struct RequestSide<S> {
    /// The client's body, recorded for replays.
    pub(super) feed: BodyFeed<S>,
    /// Whether the client has been told `100 Continue` (it is told once per request).
    pub(super) continue_relayed: bool,
    pump: Option<PollSender<Feed>>,
    /// Since when the stream has not taken more of the body (the backend not reading).
    blocked_since: Option<Instant>,
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

    /// Feed the body into `sender` from now on (an HTTP/2 stream's body channel).
    pub(super) fn start_pump(&mut self, sender: mpsc::Sender<Feed>) {
        self.pump = Some(PollSender::new(sender));
        self.blocked_since = None;
    }

    /// Stop feeding (the attempt is over): the stream's body ends in an error, not cleanly.
    pub(super) fn stop_pump(&mut self) {
        self.pump = None;
    }

    /// Move as much of the body as the stream takes. `Ready(Ok)` once all of it and its end
    /// are in the channel, or when there is nothing to pump (or the stream no longer wants it);
    /// `Ready(Err)` when the client's body failed (the stream is reset).
    pub fn poll_pump(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientBodyError>> {
        loop {
            let Some(sender) = self.pump.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let reserved = match sender.poll_reserve(cx) {
                Poll::Pending => {
                    self.blocked_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
                Poll::Ready(reserved) => reserved,
            };
            self.blocked_since = None;
            if reserved.is_err() {
                // The stream is gone (answered and done, or reset): nothing more to send.
                self.pump = None;
                return Poll::Ready(Ok(()));
            }
            let item = match ready!(self.feed.poll_chunk(cx)) {
                Ok(Some(chunk)) => Feed::Chunk(chunk),
                Ok(None) => Feed::End,
                Err(e) => {
                    self.pump = None;
                    return Poll::Ready(Err(e));
                }
            };
            let end = matches!(item, Feed::End);
            if sender.send_item(item).is_err() || end {
                self.pump = None;
                return Poll::Ready(Ok(()));
            }
        }
    }
}
