//! One access-log line per request (target `lbx::access`), written when the response is over,
//! so the logged time covers the whole response. Nothing is collected when the target is off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use super::request::RequestId;
use crate::plugin::DecidedBy;
use crate::upstream::BackendSet;

/// One access-log line in the making.
#[derive(Debug)]
pub struct AccessLog {
    /// The request's id (also in error responses).
    pub id: RequestId,
    /// Request method.
    pub method: Method,
    /// Request target (path and query).
    pub target: Bytes,
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
    /// Attempts made.
    pub attempts: u32,
}

impl AccessLog {
    /// Start the line for a request that arrived at `started`.
    pub fn new(id: RequestId, method: &Method, target: &Bytes, started: Instant) -> Self {
        Self {
            id,
            method: method.clone(),
            target: target.clone(),
            status: StatusCode::OK,
            backend: None,
            started,
            decision: Duration::ZERO,
            decided_by: DecidedBy::Host,
            attempts: 0,
        }
    }

    /// Whether access logging is on; when off, no log data is collected at all.
    pub fn enabled() -> bool {
        tracing::enabled!(target: "lbx::access", tracing::Level::INFO)
    }

    /// Write the line. `complete` is false when the response did not reach its end.
    pub fn emit(self, complete: bool) {
        let backend = self
            .backend
            .as_ref()
            .map(|(set, i)| set.backends[*i].id.as_str())
            .unwrap_or("-");
        tracing::info!(
            target: "lbx::access",
            request_id = %self.id,
            method = %self.method,
            path = %String::from_utf8_lossy(&self.target),
            status = self.status.as_u16(),
            backend,
            attempts = self.attempts,
            total_ms = %format_args!("{:.3}", self.started.elapsed().as_secs_f64() * 1e3),
            decision_us = %format_args!("{:.1}", self.decision.as_secs_f64() * 1e6),
            decided_by = self.decided_by.as_str(),
            complete,
        );
    }
}
