//! One response body sent on an HTTP/2 stream under the client's flow control: each piece
//! waits for window capacity before it goes, trailers end the stream, and a body that fails
//! resets the stream (INTERNAL_ERROR) instead of ending it — the client must never take a
//! broken body for a whole one.
//!
//! This is the part of hyper's HTTP/2 server lbx keeps doing itself now that it drives `h2`
//! directly (see `mod.rs` for why): the same steps as hyper's `PipeToSendStream`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{Reason, SendStream};
use http_body::Body;

/// Why a body stopped short of its end.
#[derive(Debug)]
pub enum SendError {
    /// The client reset the stream (or the connection went away).
    Reset,
    /// The body itself failed (a backend broke off): the stream was reset.
    Body,
}

/// Sends `body` on `tx` until its end; `Ready(Err)` when it stopped short.
pub struct SendBody<B> {
    body: B,
    tx: SendStream<Bytes>,
    /// A piece taken from the body that waits for window capacity.
    pending: Option<Bytes>,
}

impl<B> SendBody<B> {
    pub fn new(body: B, tx: SendStream<Bytes>) -> Self {
        Self {
            body,
            tx,
            pending: None,
        }
    }
}

impl<B> Future for SendBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            // The client may reset the stream while lbx waits for the body or for capacity.
            if this.tx.poll_reset(cx).is_ready() {
                return Poll::Ready(Err(SendError::Reset));
            }
            if this.pending.is_some() {
                // As hyper does: wait until the window has room at all, then hand h2 the whole
                // piece (already in memory), which frames it as the window opens.
                while this.tx.capacity() == 0 {
                    match ready!(this.tx.poll_capacity(cx)) {
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return Poll::Ready(Err(SendError::Reset)),
                    }
                }
                let piece = this.pending.take().expect("checked above");
                let end = this.body.is_end_stream();
                if this.tx.send_data(piece, end).is_err() {
                    return Poll::Ready(Err(SendError::Reset));
                }
                if end {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {
                        if this.body.is_end_stream() {
                            return Poll::Ready(this.end_stream());
                        }
                    }
                    Ok(data) => {
                        this.tx.reserve_capacity(1);
                        this.pending = Some(data);
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.tx.reserve_capacity(0);
                            return Poll::Ready(
                                this.tx
                                    .send_trailers(trailers)
                                    .map_err(|_| SendError::Reset),
                            );
                        }
                    }
                },
                Some(Err(_)) => {
                    this.tx.send_reset(Reason::INTERNAL_ERROR);
                    return Poll::Ready(Err(SendError::Body));
                }
                None => return Poll::Ready(this.end_stream()),
            }
        }
    }
}

impl<B> SendBody<B> {
    /// An empty DATA frame with END_STREAM: the body is complete.
    fn end_stream(&mut self) -> Result<(), SendError> {
        self.tx
            .send_data(Bytes::new(), true)
            .map_err(|_| SendError::Reset)
    }
}
