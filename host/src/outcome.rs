//! How one attempt at a backend went, as plain data: who was at fault when it failed, the
//! status, the times and the bytes. The proxy fills one [`Outcome`] per attempt and records it
//! once (`proxy::record`); the backend's statistics, its ejection, the access log and the
//! routing plugin's feedback all read that one record.
//!
//! It sits below both the proxy and the plugin module so that neither depends on the other to
//! name it.

use std::time::Duration;

use http::StatusCode;

/// Who caused an error: decides what it may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client: never counted against a backend, never retried.
    Client,
    /// The backend that was tried: counted toward its ejection.
    Backend,
    /// lbx's own limits or policy (no backend, deadline, plugin's rejection).
    Proxy,
}

impl Fault {
    /// Its name in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Backend => "backend",
            Fault::Proxy => "proxy",
        }
    }
}

/// One attempt's outcome: the response relayed to its end (or broken off), a response set
/// aside for a retry, or a failure before any response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 0 for the request's first attempt.
    pub attempt: u32,
    /// The backend's response status; `None` if it never answered.
    pub status: Option<StatusCode>,
    /// Why the attempt failed; `None` if the exchange completed cleanly.
    pub fault: Option<Fault>,
    /// From the attempt's start (connecting included) to the response head.
    pub ttfb: Option<Duration>,
    /// From the attempt's start to the response body's first byte: for a streamed answer (an
    /// LLM's tokens as server-sent events) the time to its first piece, which the head may
    /// precede by seconds. `None` when no body byte arrived.
    pub first_body_byte: Option<Duration>,
    /// From the attempt's start to its end.
    pub total: Duration,
    /// Request body bytes sent to the backend.
    pub bytes_up: u64,
    /// Response body bytes received from the backend.
    pub bytes_down: u64,
    /// lbx's own answer to the client, when this failed attempt was the request's last and the
    /// client was not at fault: counted as the backend's response, so a failing backend shows
    /// as 5xx.
    pub answered: Option<StatusCode>,
    /// For the response relayed to the client: from the request's arrival to the response's
    /// end (the total-latency histogram). `None` for other attempts and for upgraded
    /// connections, whose tunnel would only blur the histogram.
    pub arrival_to_end: Option<Duration>,
}

impl Outcome {
    /// An attempt that ended without a response, by `fault`.
    pub fn failed(attempt: u32, fault: Fault, total: Duration, bytes_up: u64) -> Self {
        Self {
            attempt,
            status: None,
            fault: Some(fault),
            ttfb: None,
            first_body_byte: None,
            total,
            bytes_up,
            bytes_down: 0,
            answered: None,
            arrival_to_end: None,
        }
    }

    /// An attempt the backend answered with `status` after `ttfb`; the rest is filled in as the
    /// response is relayed.
    pub fn answered(attempt: u32, status: StatusCode, ttfb: Duration) -> Self {
        Self {
            attempt,
            status: Some(status),
            fault: None,
            ttfb: Some(ttfb),
            first_body_byte: None,
            total: ttfb,
            bytes_up: 0,
            bytes_down: 0,
            answered: None,
            arrival_to_end: None,
        }
    }

    /// Whether the backend did its part: it answered with a non-5xx status and did not break
    /// the exchange (a client that left early does not make it a failure).
    pub fn is_backend_success(&self) -> bool {
        self.status.is_some_and(|s| !s.is_server_error()) && self.fault != Some(Fault::Backend)
    }
}
