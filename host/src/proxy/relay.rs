//! The backend's response body on its way to the client: streamed piece by piece (never
//! buffered), the request counted in flight until it ends, and — when it ends, cleanly, broken
//! by the backend or abandoned by the client — the attempt's [`Outcome`] recorded and the
//! access-log line written.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::access_log::AccessLog;
use super::record::Recorder;
use crate::http1::Framing;
use crate::message::BodyChunk;
use crate::outcome::{Fault, Outcome};
use crate::upstream::{InFlight, ResponseBody, ResponseBodyError};

/// The attempt whose response is being relayed, for recording its outcome at the end.
#[derive(Debug)]
pub struct ServedBy {
    /// Where the outcome is counted.
    pub recorder: Recorder,
    /// The outcome as far as the response head.
    pub outcome: Outcome,
    /// When the attempt started.
    pub started: Instant,
    /// When the request arrived, for its total latency; `None` for an upgraded connection,
    /// whose "response" lasts as long as the tunnel and would only blur the histogram.
    pub received_at: Option<Instant>,
}

/// A backend's response body being relayed.
#[derive(Debug)]
pub struct RelayedBody {
    inner: ResponseBody,
    served_by: ServedBy,
    _in_flight: InFlight,
    log: Option<AccessLog>,
    complete: bool,
}

impl RelayedBody {
    /// Relay `inner`; the request stays in flight and unlogged until this is done.
    pub fn new(
        inner: ResponseBody,
        served_by: ServedBy,
        in_flight: InFlight,
        log: Option<AccessLog>,
    ) -> Self {
        let complete = inner.is_end();
        Self {
            inner,
            served_by,
            _in_flight: in_flight,
            log,
            complete,
        }
    }

    /// The client's request body came to `bytes` (known only once the request side is done,
    /// which may be after the response began: a gRPC stream sends both ways).
    pub fn note_request_bytes(&mut self, bytes: u64) {
        self.served_by.outcome.bytes_up = bytes;
        if let Some(log) = &mut self.log {
            log.bytes_in = bytes;
        }
    }

    /// An upgraded connection's tunnel ended having carried these bytes each way: for the
    /// access line and the backend's body byte counters, as a body's bytes would be.
    pub fn note_tunnel_bytes(&mut self, from_client: u64, from_backend: u64) {
        if let Some(backend) = self.served_by.recorder.backend() {
            let traffic = backend.stats.traffic();
            traffic.sent_body_bytes(from_client as usize);
            traffic.received_body_bytes(from_backend as usize);
        }
        self.served_by.outcome.bytes_up = from_client;
        self.served_by.outcome.bytes_down = from_backend;
        if let Some(log) = &mut self.log {
            log.bytes_in = from_client;
            log.bytes_out = from_backend;
        }
    }

    /// How the backend framed the body.
    pub fn framing(&self) -> Framing {
        self.inner.framing()
    }

    /// The next piece; `Ready(None)` at the clean end. An error means the backend broke the
    /// body: the client must see an incomplete message, never a complete one.
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyChunk, ResponseBodyError>>> {
        let polled = self.inner.poll_chunk(cx);
        match &polled {
            Poll::Ready(Some(Ok(BodyChunk::Data(data)))) if !data.is_empty() => {
                if let Some(backend) = self.served_by.recorder.backend() {
                    backend.stats.traffic().received_body_bytes(data.len());
                }
                let outcome = &mut self.served_by.outcome;
                if outcome.first_body_byte.is_none() {
                    let took = self.served_by.started.elapsed();
                    outcome.first_body_byte = Some(took);
                    if let Some(log) = &mut self.log {
                        log.first_body_byte = Some(took);
                    }
                }
                outcome.bytes_down += data.len() as u64;
                if let Some(log) = &mut self.log {
                    log.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.complete = true,
            Poll::Ready(Some(Err(e))) => {
                if let Some(log) = &self.log {
                    tracing::warn!(request_id = %log.id, error = %e, "backend broke off its response body");
                }
                self.served_by.outcome.fault = Some(Fault::Backend);
            }
            _ => {}
        }
        polled
    }
}

impl Body for RelayedBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        self.poll_chunk(cx).map(|chunk| {
            chunk.map(|chunk| {
                chunk.map(|chunk| match chunk {
                    BodyChunk::Data(data) => Frame::data(data),
                    BodyChunk::Trailers(trailers) => {
                        Frame::trailers(crate::message::to_header_map(&trailers))
                    }
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.complete
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing() {
            Framing::Empty => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for RelayedBody {
    fn drop(&mut self) {
        let served_by = &mut self.served_by;
        let outcome = &mut served_by.outcome;
        outcome.total = served_by.started.elapsed();
        outcome.arrival_to_end = served_by.received_at.map(|at| at.elapsed());
        if !self.complete && outcome.fault.is_none() {
            // Not ended and not broken by the backend: the client stopped reading.
            outcome.fault = Some(Fault::Client);
        }
        served_by.recorder.record(outcome);
        if let Some(log) = self.log.take() {
            log.emit(self.complete);
        }
    }
}
