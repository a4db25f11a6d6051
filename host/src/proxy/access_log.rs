//! One access-log line per request (target `lbx::access`), written when the response is over,
//! so the logged time covers the whole response. Nothing is collected when the target is off.
//!
//! The line is formatted here, by hand, into the same text `tracing`'s formatter would write,
//! and handed to the log writer thread ([`crate::logging::write_line`]). Going through
//! `tracing`'s field visitors, float formatting and timestamp cost ~8% of a worker's CPU per
//! proxied request (perf, HTTP/1.1 keep-alive against nginx `return 200` backends); this
//! costs a fraction of that. `RUST_LOG` still decides whether lines are written.

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
        let mut line = Vec::with_capacity(256);
        if crate::logging::is_initialised() {
            crate::logging::write_timestamp(&mut line);
            line.extend_from_slice(b"  INFO lbx::access: ");
            self.write_fields(complete, &mut line);
            line.push(b'\n');
            crate::logging::write_line(&line);
            return;
        }
        // A process that set up its own `tracing` output (tests, embedders).
        self.write_fields(complete, &mut line);
        tracing::info!(target: "lbx::access", "{}", String::from_utf8_lossy(&line));
    }

    /// `request_id=… method=… path=… status=… backend="…" attempts=… total_ms=…
    /// decision_us=… decided_by="…" complete=…`
    fn write_fields(&self, complete: bool, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let backend = self
            .backend
            .as_ref()
            .map(|(set, i)| set.backends[*i].id.as_str())
            .unwrap_or("-");
        let total_us = self.started.elapsed().as_micros();
        let decision_ns = self.decision.as_nanos();
        // Writing to a Vec cannot fail.
        let _ = write!(out, "request_id={} method={} path=", self.id, self.method);
        // Targets are visible ASCII from both parsers; anything else is escaped, so a line
        // stays one line whatever arrives.
        for &byte in self.target.iter() {
            if byte.is_ascii_graphic() {
                out.push(byte);
            } else {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
        let _ = write!(
            out,
            " status={} backend={backend:?} attempts={} total_ms={}.{:03} decision_us={}.{} \
             decided_by={:?} complete={complete}",
            self.status.as_u16(),
            self.attempts,
            total_us / 1000,
            total_us % 1000,
            decision_ns / 1000,
            decision_ns % 1000 / 100,
            self.decided_by.as_str(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_field_and_stays_one_line() {
        let mut log = AccessLog::new(
            RequestId::next(),
            &Method::GET,
            &Bytes::from_static(b"/a?b=1 \r\nforged=1"),
            Instant::now(),
        );
        log.status = StatusCode::BAD_GATEWAY;
        log.attempts = 2;
        log.decision = Duration::from_nanos(1_250);
        log.decided_by = DecidedBy::Plugin;
        let mut line = Vec::new();
        log.write_fields(false, &mut line);
        let line = String::from_utf8(line).unwrap();
        let expected_start = format!(
            "request_id={} method=GET path=/a?b=1\\x20\\x0d\\x0aforged=1 status=502 backend=\"-\" \
             attempts=2 total_ms=0.",
            log.id
        );
        assert!(line.starts_with(&expected_start), "{line}");
        assert!(
            line.ends_with(" decision_us=1.2 decided_by=\"plugin\" complete=false"),
            "{line}"
        );
    }
}
