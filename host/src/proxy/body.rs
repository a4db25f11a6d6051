//! The response body relayed to the client. It streams the backend's body frame by frame
//! (nothing is buffered), keeps the request counted as in flight until the body is done, and
//! writes the access-log line when it ends — so logged latency covers the whole response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::plugin::DecidedBy;
use crate::upstream::{BackendSet, InFlight, Lease};

/// Body of every response lbx sends: a relayed backend body or one lbx wrote itself.
pub type ProxyBody = Either<RelayedBody, Full<Bytes>>;

/// One access-log line, written once the response is over.
#[derive(Debug)]
pub struct AccessLog {
    /// Request method.
    pub method: Method,
    /// Request URI (path and query are logged).
    pub uri: Uri,
    /// Status sent to the client.
    pub status: StatusCode,
    /// The set and index of the backend that served it, if any.
    pub backend: Option<(Arc<BackendSet>, usize)>,
    /// When the request arrived.
    pub started: Instant,
    /// Time spent deciding where it goes.
    pub decision: Duration,
    /// Who decided.
    pub decided_by: DecidedBy,
}

impl AccessLog {
    /// Start the line for `request`, which arrived at `started`.
    pub fn new<B>(request: &http::Request<B>, started: Instant) -> Self {
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            status: StatusCode::OK,
            backend: None,
            started,
            decision: Duration::ZERO,
            decided_by: DecidedBy::Host,
        }
    }

    /// Whether access logging is on; when off, no log data is collected at all.
    pub fn enabled() -> bool {
        tracing::enabled!(target: "lbx::access", tracing::Level::INFO)
    }

    /// Write the line. `complete` is false when the client went away before the body ended.
    pub fn emit(self, complete: bool) {
        let backend = self
            .backend
            .as_ref()
            .map(|(set, i)| set.backends[*i].id.as_str())
            .unwrap_or("-");
        tracing::info!(
            target: "lbx::access",
            method = %self.method,
            path = self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            status = self.status.as_u16(),
            backend,
            total_ms = %format_args!("{:.3}", self.started.elapsed().as_secs_f64() * 1e3),
            decision_us = %format_args!("{:.1}", self.decision.as_secs_f64() * 1e6),
            decided_by = self.decided_by.as_str(),
            complete,
        );
    }
}

/// A backend's response body on its way to the client.
#[derive(Debug)]
pub struct RelayedBody {
    inner: Incoming,
    /// The backend connection, handed back to its pool as soon as the body has ended; `None`
    /// from then on, so it also says whether the body ended.
    lease: Option<Lease>,
    _in_flight: InFlight,
    log: Option<AccessLog>,
}

impl RelayedBody {
    /// Relay `inner`; the request stays in flight and unlogged until this body is done.
    pub fn new(inner: Incoming, lease: Lease, in_flight: InFlight, log: Option<AccessLog>) -> Self {
        let mut body = Self {
            inner,
            lease: Some(lease),
            _in_flight: in_flight,
            log,
        };
        // Bodiless responses (HEAD, 204, 304, `content-length: 0`) free the connection at once.
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.put_back();
        }
    }

    fn finished(&self) -> bool {
        self.lease.is_none()
    }
}

impl Body for RelayedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            // The last data frame: the connection is free before the client has even read it.
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended && !self.finished() {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RelayedBody {
    fn drop(&mut self) {
        // A lease still held here means the body did not end: the connection is mid-response
        // and is dropped (closed) rather than reused.
        if let Some(log) = self.log.take() {
            log.emit(self.finished());
        }
    }
}
