//! The client's request body on its way to a backend: read from an HTTP/1.1 connection or an
//! HTTP/2 stream, under the client-body idle timeout, and recorded (up to a limit) so a retry
//! can send it again.
//!
//! The rule this module exists for: a body that did not end cleanly — malformed framing, the
//! client gone, the client too slow — is an error all the way up. It is never turned into an
//! end of body, so the upstream request is abandoned without its terminating chunk (or short
//! of its Content-Length) and is never replayed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};

use crate::http1::io::{BODY_READ_SIZE, poll_read_into};
use crate::http1::{BodyDecoder, BodyError, Decoded};
use crate::message::BodyChunk;
use crate::upstream::{BodySource, LiveStats};

/// Why the client's body could not be read: the client's fault, never a backend's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// The body's framing is broken (bad chunk size, missing CRLF): answered 400.
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    /// The client closed or reset the connection (or stream) before the body ended.
    #[error("client went away before its request body ended")]
    Gone,
    /// No body bytes arrived for `[timeouts] client_body`: answered 408.
    #[error("no request body data for {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// A client's body, read piece by piece.
pub trait ClientSource {
    /// The next piece; `Ready(Ok(None))` at the clean end.
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<BodyChunk>, ClientBodyError>>;

    /// Whether the body was read to its end (an HTTP/1.1 connection can then carry another
    /// request).
    fn is_done(&self) -> bool;
}

/// A timer that fires when a body has been idle for its timeout; armed only while waiting.
#[derive(Debug)]
struct IdleTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
        }
    }

    /// Data arrived: the next wait starts afresh.
    fn activity(&mut self) {
        if let Some(sleep) = &mut self.sleep
            && let Some(at) = Instant::now().checked_add(self.timeout)
        {
            sleep.as_mut().reset(at);
        }
    }

    /// The source is waiting: `Ready` once it has waited too long.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<ClientBodyError> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(ClientBodyError::TimedOut(timeout))
    }
}

/// The body of a request on an HTTP/1.1 client connection, decoded from the connection's
/// read half and buffer (which stay the connection's: the next request is read from them).
#[derive(Debug)]
pub struct H1Body<'c, R> {
    reader: &'c mut R,
    buf: &'c mut BytesMut,
    decoder: BodyDecoder,
    idle: IdleTimer,
}

impl<'c, R: AsyncRead + Unpin> H1Body<'c, R> {
    /// The body framed by `decoder`, read from `reader` after what `buf` already holds.
    pub fn new(
        reader: &'c mut R,
        buf: &'c mut BytesMut,
        decoder: BodyDecoder,
        idle: Duration,
    ) -> Self {
        Self {
            reader,
            buf,
            decoder,
            idle: IdleTimer::new(idle),
        }
    }
}

impl<R: AsyncRead + Unpin> ClientSource for H1Body<'_, R> {
    fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<BodyChunk>, ClientBodyError>> {
        loop {
            match self.decoder.decode(self.buf) {
                Ok(Decoded::Data(data)) => {
                    self.idle.activity();
                    return Poll::Ready(Ok(Some(BodyChunk::Data(data))));
                }
                Ok(Decoded::Trailers(trailers)) => {
                    return Poll::Ready(Ok(Some(BodyChunk::Trailers(trailers))));
                }
                Ok(Decoded::End) => return Poll::Ready(Ok(None)),
                Ok(Decoded::NeedMore) => {}
                Err(BodyError::Malformed(what)) => {
                    return Poll::Ready(Err(ClientBodyError::Malformed(what)));
                }
                Err(BodyError::Truncated) => return Poll::Ready(Err(ClientBodyError::Gone)),
            }
            match poll_read_into(Pin::new(&mut *self.reader), self.buf, BODY_READ_SIZE, cx) {
                Poll::Ready(Ok(0)) => {
                    if self.decoder.eof().is_err() {
                        return Poll::Ready(Err(ClientBodyError::Gone));
                    }
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(ClientBodyError::Gone)),
                Poll::Pending => return self.idle.poll_expired(cx).map(Err),
            }
        }
    }
}

/// The body of a request on an HTTP/2 stream: its DATA frames, then its trailers if any.
/// Each DATA frame's bytes are handed back to the client's flow-control window as they are
/// taken, as hyper did: the window then paces the client by what lbx has read, not by what a
/// backend has acknowledged.
#[derive(Debug)]
pub struct H2Body {
    body: h2::RecvStream,
    idle: IdleTimer,
    data_done: bool,
    ended: bool,
}

impl H2Body {
    /// Read `body` with `idle` as the client-body timeout.
    pub fn new(body: h2::RecvStream, idle: Duration) -> Self {
        let ended = body.is_end_stream();
        Self {
            body,
            idle: IdleTimer::new(idle),
            data_done: ended,
            ended,
        }
    }
}

impl ClientSource for H2Body {
    fn is_done(&self) -> bool {
        self.ended
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<BodyChunk>, ClientBodyError>> {
        if self.ended {
            return Poll::Ready(Ok(None));
        }
        if !self.data_done {
            match self.body.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    self.idle.activity();
                    // Only fails if the stream is already gone, which the next poll reports.
                    let _ = self.body.flow_control().release_capacity(data.len());
                    return Poll::Ready(Ok(Some(BodyChunk::Data(data))));
                }
                Poll::Ready(None) => self.data_done = true,
                // A reset stream (the client cancelled) or a protocol error h2 already answered
                // (DATA adding up to more or less than the content-length among them).
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(ClientBodyError::Gone)),
                Poll::Pending => return self.idle.poll_expired(cx).map(Err),
            }
        }
        match self.body.poll_trailers(cx) {
            Poll::Ready(Ok(trailers)) => {
                self.ended = true;
                Poll::Ready(Ok(
                    trailers.map(|t| BodyChunk::Trailers(crate::message::from_header_map(&t)))
                ))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(ClientBodyError::Gone)),
            Poll::Pending => self.idle.poll_expired(cx).map(Err),
        }
    }
}

/// The client's body as attempts read it: each attempt starts from the beginning, replayed
/// from the recording, then continues with what the client has not sent yet.
#[derive(Debug)]
pub struct BodyFeed<S> {
    source: S,
    /// `None`: not recorded (replay impossible once anything was read).
    recording: Option<Recording>,
    /// Recorded pieces this attempt has already been given.
    cursor: usize,
    /// Whether any piece was read from the source (before that, a retry needs no recording).
    consumed: bool,
    /// When the source ended cleanly.
    completed_at: Option<Instant>,
    /// Body bytes read from the client (replays not included).
    received: u64,
    /// The backend of the current attempt, whose traffic counts the bytes it is given.
    sending_to: Option<Arc<LiveStats>>,
    /// Body bytes handed to the current attempt.
    sent_this_attempt: u64,
    /// Pieces read ahead of any attempt (the body prefix for the plugin), handed out first.
    ahead: std::collections::VecDeque<BodyChunk>,
}

#[derive(Debug)]
struct Recording {
    chunks: Vec<BodyChunk>,
    bytes: usize,
    limit: usize,
    /// More than `limit` was read: the recording is gone and cannot be replayed.
    overflowed: bool,
}

impl<S: ClientSource> BodyFeed<S> {
    /// A feed over `source`, recording up to `record_limit` bytes when given. `complete_at` is
    /// set for a request that has no body (it was complete on arrival).
    pub fn new(source: S, record_limit: Option<usize>, complete_at: Option<Instant>) -> Self {
        Self {
            source,
            recording: record_limit.map(|limit| Recording {
                chunks: Vec::new(),
                bytes: 0,
                limit,
                overflowed: false,
            }),
            cursor: 0,
            consumed: false,
            completed_at: complete_at,
            received: 0,
            sending_to: None,
            sent_this_attempt: 0,
            ahead: std::collections::VecDeque::new(),
        }
    }

    /// Read the body ahead, before any attempt, until `limit` bytes or its end, and return its
    /// first `limit` bytes (the whole body when shorter). What was read is kept and handed to
    /// the first attempt as if it came now, so the backend still gets every byte; a body that
    /// fails here fails the request as the client's fault, as it would later.
    pub async fn read_prefix(&mut self, limit: usize) -> Result<Bytes, ClientBodyError> {
        let mut buffered = 0usize;
        while buffered < limit && self.completed_at.is_none() {
            let chunk = std::future::poll_fn(|cx| self.source.poll_chunk(cx)).await?;
            match chunk {
                Some(chunk) => {
                    if let BodyChunk::Data(data) = &chunk {
                        self.received += data.len() as u64;
                        buffered += data.len();
                    }
                    self.ahead.push_back(chunk);
                }
                None => self.completed_at = Some(Instant::now()),
            }
        }
        let mut data = self.ahead.iter().filter_map(|chunk| match chunk {
            BodyChunk::Data(data) if !data.is_empty() => Some(data),
            _ => None,
        });
        // One piece (the common case for a small JSON body) is shared, not copied.
        if self.ahead.len() == 1
            && let Some(only) = data.next()
        {
            return Ok(only.slice(..only.len().min(limit)));
        }
        let mut prefix = BytesMut::with_capacity(buffered.min(limit));
        for piece in self.ahead.iter().filter_map(|chunk| match chunk {
            BodyChunk::Data(data) => Some(data),
            BodyChunk::Trailers(_) => None,
        }) {
            let room = limit - prefix.len();
            prefix.extend_from_slice(&piece[..piece.len().min(room)]);
            if prefix.len() == limit {
                break;
            }
        }
        Ok(prefix.freeze())
    }

    /// Start the body over for another attempt. `false` if it cannot be sent again (parts
    /// were read and not recorded).
    pub fn rewind(&mut self) -> bool {
        let replayable = self.can_rewind();
        if replayable {
            self.cursor = 0;
        }
        replayable
    }

    /// Whether [`rewind`](Self::rewind) would succeed.
    pub fn can_rewind(&self) -> bool {
        match &self.recording {
            _ if !self.consumed => true,
            Some(recording) => !recording.overflowed,
            None => false,
        }
    }

    /// Count what is handed out from now on as sent to the backend with `stats` (the next
    /// attempt's).
    pub fn send_to(&mut self, stats: Arc<LiveStats>) {
        self.sending_to = Some(stats);
        self.sent_this_attempt = 0;
    }

    /// Body bytes handed to the current attempt so far.
    pub fn sent_this_attempt(&self) -> u64 {
        self.sent_this_attempt
    }

    /// Body bytes read from the client so far.
    pub fn received_bytes(&self) -> u64 {
        self.received
    }

    fn count_sent(&mut self, chunk: &BodyChunk) {
        if let (Some(stats), BodyChunk::Data(data)) = (&self.sending_to, chunk)
            && !data.is_empty()
        {
            stats.traffic().sent_body_bytes(data.len());
            self.sent_this_attempt += data.len() as u64;
        }
    }

    /// Whether the client's body has been read to its clean end.
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// The source (to ask whether its framing ended).
    pub fn source(&self) -> &S {
        &self.source
    }

    fn record(&mut self, chunk: &BodyChunk) {
        let Some(recording) = &mut self.recording else {
            return;
        };
        if recording.overflowed {
            return;
        }
        let len = match chunk {
            BodyChunk::Data(data) => data.len(),
            BodyChunk::Trailers(_) => 0,
        };
        if recording.bytes + len > recording.limit {
            recording.overflowed = true;
            recording.chunks = Vec::new();
            return;
        }
        recording.bytes += len;
        recording.chunks.push(chunk.clone());
        self.cursor = recording.chunks.len();
    }
}

impl<S: ClientSource> BodySource for BodyFeed<S> {
    type Error = ClientBodyError;

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<BodyChunk>, ClientBodyError>> {
        if let Some(recording) = &self.recording
            && !recording.overflowed
            && self.cursor < recording.chunks.len()
        {
            let chunk = recording.chunks[self.cursor].clone();
            self.cursor += 1;
            self.count_sent(&chunk);
            return Poll::Ready(Ok(Some(chunk)));
        }
        if let Some(chunk) = self.ahead.pop_front() {
            // Read ahead for the plugin (and counted as received then).
            self.consumed = true;
            self.count_sent(&chunk);
            self.record(&chunk);
            return Poll::Ready(Ok(Some(chunk)));
        }
        if self.completed_at.is_some() {
            return Poll::Ready(Ok(None));
        }
        let polled = ready!(self.source.poll_chunk(cx));
        match &polled {
            Ok(Some(chunk)) => {
                self.consumed = true;
                if let BodyChunk::Data(data) = chunk {
                    self.received += data.len() as u64;
                }
                self.count_sent(chunk);
                self.record(chunk);
            }
            Ok(None) => self.completed_at = Some(Instant::now()),
            Err(_) => self.consumed = true,
        }
        Poll::Ready(polled)
    }

    fn completed_at(&self) -> Option<Instant> {
        self.completed_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::VecDeque;

    /// A scripted source: hands out its pieces, then its end or error.
    struct Script(VecDeque<Result<Option<BodyChunk>, ClientBodyError>>);

    impl ClientSource for Script {
        fn poll_chunk(
            &mut self,
            _: &mut Context<'_>,
        ) -> Poll<Result<Option<BodyChunk>, ClientBodyError>> {
            Poll::Ready(self.0.pop_front().unwrap_or(Ok(None)))
        }

        fn is_done(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn data(text: &'static str) -> Result<Option<BodyChunk>, ClientBodyError> {
        Ok(Some(BodyChunk::Data(Bytes::from_static(text.as_bytes()))))
    }

    fn drain<S: ClientSource>(feed: &mut BodyFeed<S>) -> (Vec<u8>, Result<(), ClientBodyError>) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        loop {
            match feed.poll_chunk(&mut cx) {
                Poll::Ready(Ok(Some(BodyChunk::Data(d)))) => out.extend_from_slice(&d),
                Poll::Ready(Ok(Some(BodyChunk::Trailers(_)))) => {}
                Poll::Ready(Ok(None)) => return (out, Ok(())),
                Poll::Ready(Err(e)) => return (out, Err(e)),
                Poll::Pending => unreachable!("scripted sources are always ready"),
            }
        }
    }

    #[test]
    fn a_recorded_body_replays_from_the_start() {
        let source = Script(VecDeque::from([data("ab"), data("cd"), Ok(None)]));
        let mut feed = BodyFeed::new(source, Some(16), None);
        assert_eq!(drain(&mut feed).0, b"abcd");
        assert!(feed.is_complete());
        assert!(feed.rewind());
        assert_eq!(drain(&mut feed).0, b"abcd");
    }

    #[test]
    fn a_body_past_the_recording_limit_cannot_be_replayed() {
        let source = Script(VecDeque::from([data("abcdef"), data("gh"), Ok(None)]));
        let mut feed = BodyFeed::new(source, Some(4), None);
        assert_eq!(drain(&mut feed).0, b"abcdefgh");
        assert!(!feed.rewind());
    }

    #[test]
    fn a_body_that_broke_is_an_error_and_never_ends() {
        let source = Script(VecDeque::from([
            data("ab"),
            Err(ClientBodyError::Malformed("x")),
        ]));
        let mut feed = BodyFeed::new(source, Some(16), None);
        let (got, result) = drain(&mut feed);
        assert_eq!(got, b"ab");
        assert_eq!(result, Err(ClientBodyError::Malformed("x")));
        assert!(!feed.is_complete());
    }

    #[test]
    fn bytes_are_counted_once_as_received_and_per_attempt_as_sent() {
        let source = Script(VecDeque::from([data("ab"), data("cde"), Ok(None)]));
        let mut feed = BodyFeed::new(source, Some(16), None);
        let (first, second) = (
            Arc::new(LiveStats::default()),
            Arc::new(LiveStats::default()),
        );
        feed.send_to(first.clone());
        let _ = drain(&mut feed);
        assert!(feed.rewind());
        feed.send_to(second.clone());
        let _ = drain(&mut feed);
        assert_eq!(
            feed.received_bytes(),
            5,
            "the replay is not read from the client again"
        );
        assert_eq!(first.traffic().request_body_bytes(), 5);
        assert_eq!(second.traffic().request_body_bytes(), 5);
    }

    #[test]
    fn an_unrecorded_body_can_still_be_sent_again_if_nothing_was_read() {
        let source = Script(VecDeque::from([data("ab"), Ok(None)]));
        let mut feed = BodyFeed::new(source, None, None);
        assert!(feed.rewind(), "nothing read yet");
        let _ = drain(&mut feed);
        assert!(!feed.rewind(), "read and not recorded");
    }

    fn read_prefix<S: ClientSource>(
        feed: &mut BodyFeed<S>,
        limit: usize,
    ) -> Result<Bytes, ClientBodyError> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut reading = std::pin::pin!(feed.read_prefix(limit));
        match reading.as_mut().poll(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => unreachable!("scripted sources are always ready"),
        }
    }

    #[test]
    fn a_prefix_read_ahead_is_still_sent_whole_and_unrecorded_bodies_can_go_once() {
        let source = Script(VecDeque::from([
            data("abc"),
            data("defg"),
            data("hij"),
            Ok(None),
        ]));
        let mut feed = BodyFeed::new(source, None, None);
        assert_eq!(read_prefix(&mut feed, 5).unwrap(), "abcde");
        assert!(!feed.is_complete(), "the rest was not read yet");
        assert!(feed.rewind(), "nothing was sent yet");
        let stats = Arc::new(LiveStats::default());
        feed.send_to(stats.clone());
        assert_eq!(drain(&mut feed), (b"abcdefghij".to_vec(), Ok(())));
        assert_eq!(feed.sent_this_attempt(), 10);
        assert_eq!(feed.received_bytes(), 10, "read-ahead bytes counted once");
    }

    #[test]
    fn a_body_shorter_than_the_prefix_is_given_whole_and_complete() {
        let source = Script(VecDeque::from([data("ab"), data("c"), Ok(None)]));
        let mut feed = BodyFeed::new(source, Some(16), None);
        assert_eq!(read_prefix(&mut feed, 64).unwrap(), "abc");
        assert!(feed.is_complete());
        assert_eq!(drain(&mut feed).0, b"abc");
        assert!(feed.rewind());
        assert_eq!(drain(&mut feed).0, b"abc", "recorded for a replay as usual");
    }

    #[test]
    fn a_body_that_breaks_while_read_ahead_is_the_clients_error() {
        let source = Script(VecDeque::from([data("ab"), Err(ClientBodyError::Gone)]));
        let mut feed = BodyFeed::new(source, Some(16), None);
        assert_eq!(read_prefix(&mut feed, 64), Err(ClientBodyError::Gone));
    }
}
