//! The body of a request sent to a backend, and how a retry gets it again.
//!
//! A client's body can be read only once. To retry a request whose body already went (partly)
//! to a failed backend, [`ReplayBody`] records the frames it hands out, up to a limit; a retry
//! replays the recording and then continues with the rest of the client's stream. Past the
//! limit the recording is dropped and the request can no longer be replayed (the pattern of
//! linkerd2-proxy's `ReplayBody`). Requests that will never be replayed skip all of this.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Body of a request to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// The client's body, streamed as it comes; not replayable once read.
    Streaming(Incoming),
    /// The client's body, recorded for a possible replay.
    Replayable(ReplayBody),
    /// No body (a bodiless request sent again).
    Empty,
}

impl UpstreamBody {
    /// A body for the next attempt, if this one can be sent again: an empty body stays empty,
    /// a recording replays (if it stayed under its limit), a plain stream cannot.
    pub fn replay(&self) -> Option<UpstreamBody> {
        match self {
            UpstreamBody::Empty => Some(UpstreamBody::Empty),
            UpstreamBody::Replayable(body) => body.replay().map(UpstreamBody::Replayable),
            UpstreamBody::Streaming(body) if body.is_end_stream() => Some(UpstreamBody::Empty),
            UpstreamBody::Streaming(_) => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Replayable(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Streaming(body) => body.is_end_stream(),
            UpstreamBody::Replayable(body) => body.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Streaming(body) => body.size_hint(),
            UpstreamBody::Replayable(body) => body.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// One attempt's view of a recorded client body.
#[derive(Debug)]
pub struct ReplayBody {
    shared: Arc<Mutex<Recording>>,
    /// Next recorded frame this attempt has not yet sent.
    position: usize,
}

#[derive(Debug)]
struct Recording {
    /// The rest of the client's body, shared by every attempt.
    rest: Incoming,
    rest_done: bool,
    frames: Vec<Bytes>,
    recorded: usize,
    limit: usize,
    /// More than `limit` was sent (or trailers were): no replay possible any more.
    overflowed: bool,
}

impl ReplayBody {
    /// Record `body` for replays, keeping at most `limit` bytes.
    pub fn new(body: Incoming, limit: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Recording {
                rest: body,
                rest_done: false,
                frames: Vec::new(),
                recorded: 0,
                limit,
                overflowed: false,
            })),
            position: 0,
        }
    }

    /// The same body from its start, or `None` if more than the limit was already sent.
    pub fn replay(&self) -> Option<ReplayBody> {
        let recording = self.shared.lock().expect("replay body lock");
        (!recording.overflowed).then(|| ReplayBody {
            shared: self.shared.clone(),
            position: 0,
        })
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let shared = self.shared.clone();
        let mut recording = shared.lock().expect("replay body lock");
        if self.position < recording.frames.len() {
            let frame = recording.frames[self.position].clone();
            self.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if recording.rest_done {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut recording.rest).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) if !recording.overflowed => {
                    if recording.recorded + data.len() <= recording.limit {
                        recording.recorded += data.len();
                        recording.frames.push(data.clone());
                        self.position = recording.frames.len();
                    } else {
                        recording.overflowed = true;
                        recording.frames = Vec::new();
                        self.position = 0;
                    }
                }
                Some(_) => {}
                // Trailers are not recorded; a body that has them is not replayed.
                None => recording.overflowed = true,
            },
            Poll::Ready(None) => recording.rest_done = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let recording = self.shared.lock().expect("replay body lock");
        self.position >= recording.frames.len()
            && (recording.rest_done || recording.rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let recording = self.shared.lock().expect("replay body lock");
        let pending: usize = recording.frames[self.position.min(recording.frames.len())..]
            .iter()
            .map(Bytes::len)
            .sum();
        let rest = recording.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + pending as u64);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + pending as u64);
        }
        hint
    }
}
