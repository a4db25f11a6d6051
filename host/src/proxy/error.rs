//! Every error lbx answers itself comes from here: one mapping from what went wrong to an HTTP
//! status and a short, generic body, and to whose fault it was.
//!
//! The client sees the status, a sentence that names no backend, address or library error, and
//! the request id; the log line for the same request id carries the details.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::client_body::ClientBodyError;
use super::request::RequestId;
use crate::http1::RequestError;
use crate::message::ResponseHead;

/// Something that stopped lbx from relaying a backend's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request head broke HTTP/1.1's rules.
    #[error("refused request: {0}")]
    BadRequest(#[from] RequestError),
    /// The request head arrived but is unusable (e.g. HTTP/2 `:authority` and Host disagree).
    #[error("refused request: {0}")]
    Malformed(&'static str),
    /// The client started a request head and did not finish it in time.
    #[error("request head not received within {} ms", .0.as_millis())]
    HeadTimedOut(Duration),
    /// The client's body failed (malformed, gone, too slow).
    #[error(transparent)]
    ClientBody(#[from] ClientBodyError),
    /// No backend is configured or all are out of rotation.
    #[error("no usable backend")]
    NoUsableBackend,
    /// The backend could not be connected to.
    #[error("backend {backend} unreachable: {reason}")]
    Unreachable {
        /// The backend's id.
        backend: String,
        /// Why (OS error).
        reason: String,
    },
    /// The connection to the backend failed or closed before a response head.
    #[error("backend {backend} failed: {reason}")]
    Broken {
        /// The backend's id.
        backend: String,
        /// Why.
        reason: String,
    },
    /// The backend's response is not valid HTTP/1.1 or has contradictory framing.
    #[error("backend {backend} sent an invalid response: {reason}")]
    InvalidResponse {
        /// The backend's id.
        backend: String,
        /// What was wrong.
        reason: String,
    },
    /// The backend made no progress in time.
    #[error("backend {backend} did not answer within {} ms", .after.as_millis())]
    BackendTimeout {
        /// The backend's id.
        backend: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The request's overall deadline passed (retries included).
    #[error("no response within the request deadline of {} ms", .after.as_millis())]
    Deadline {
        /// The deadline.
        after: Duration,
    },
    /// The request cannot be expressed to the backend (a field HTTP/2 cannot carry).
    #[error("request cannot be forwarded: {0}")]
    Unforwardable(String),
    /// The routing plugin rejected the request with this status and these extra response
    /// fields (checked when the decision was interpreted).
    #[error("request rejected by routing plugin with {status}")]
    Rejected {
        /// A 4xx or 5xx.
        status: StatusCode,
        /// Added to lbx's answer.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

pub use crate::outcome::Fault;

impl ProxyError {
    /// Who caused it.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::Malformed(_)
            | ProxyError::HeadTimedOut(_)
            | ProxyError::ClientBody(_) => Fault::Client,
            ProxyError::Unreachable { .. }
            | ProxyError::Broken { .. }
            | ProxyError::InvalidResponse { .. }
            | ProxyError::BackendTimeout { .. } => Fault::Backend,
            ProxyError::NoUsableBackend
            | ProxyError::Deadline { .. }
            | ProxyError::Rejected { .. }
            | ProxyError::Unforwardable(_) => Fault::Proxy,
        }
    }

    /// The status the client receives; `None` when there is nobody to answer (the client is
    /// gone).
    pub fn status(&self) -> Option<StatusCode> {
        Some(match self {
            ProxyError::BadRequest(e) => e.status(),
            ProxyError::Malformed(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(ClientBodyError::Malformed(_)) => StatusCode::BAD_REQUEST,
            ProxyError::ClientBody(ClientBodyError::TimedOut(_)) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(ClientBodyError::Gone) => return None,
            ProxyError::NoUsableBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unreachable { .. }
            | ProxyError::Broken { .. }
            | ProxyError::InvalidResponse { .. }
            | ProxyError::Unforwardable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::BackendTimeout { .. } | ProxyError::Deadline { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::Rejected { status, .. } => *status,
        })
    }

    /// What the client is told, after the status line: generic on purpose.
    fn public_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(RequestError::Connect) => "this server is not a forward proxy",
            ProxyError::BadRequest(RequestError::Expectation) => "the expectation is not supported",
            ProxyError::BadRequest(RequestError::UnsupportedTransferCoding) => {
                "the transfer coding is not supported"
            }
            ProxyError::BadRequest(RequestError::Version) => "the HTTP version is not supported",
            ProxyError::BadRequest(RequestError::TargetTooLong) => "the request target is too long",
            ProxyError::BadRequest(RequestError::HeadTooLarge) => "the request header is too large",
            ProxyError::BadRequest(RequestError::Bad(_)) | ProxyError::Malformed(_) => {
                "the request is malformed"
            }
            ProxyError::HeadTimedOut(_) => "the request header was not received in time",
            ProxyError::ClientBody(ClientBodyError::Malformed(_)) => {
                "the request body is malformed"
            }
            ProxyError::ClientBody(_) => "the request body was not received in time",
            ProxyError::NoUsableBackend => "no backend is available",
            ProxyError::Unreachable { .. } => "the backend could not be reached",
            ProxyError::Broken { .. } => "the backend closed the connection",
            ProxyError::InvalidResponse { .. } => "the backend sent an invalid response",
            ProxyError::Unforwardable(_) => "the request could not be forwarded",
            ProxyError::BackendTimeout { .. } | ProxyError::Deadline { .. } => {
                "the backend did not answer in time"
            }
            ProxyError::Rejected { .. } => "the request was rejected",
        }
    }

    /// The response for the client, head and body, for request `id` (`None` if nobody is
    /// there to receive it). Framing fields are the writer's business.
    pub fn response(&self, id: &RequestId) -> Option<(ResponseHead, Bytes)> {
        let status = self.status()?;
        let reason = status.canonical_reason().unwrap_or("");
        let body = format!(
            "{} {reason}: {}\nrequest id: {id}\n",
            status.as_u16(),
            self.public_message()
        );
        let mut head = ResponseHead::new(status);
        head.headers.push(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain; charset=utf-8"),
        );
        head.headers.push(
            Bytes::from_static(b"Cache-Control"),
            Bytes::from_static(b"no-store"),
        );
        head.headers.push(
            Bytes::from_static(b"X-Request-Id"),
            Bytes::copy_from_slice(id.as_bytes()),
        );
        head.headers
            .push(Bytes::from_static(b"Date"), super::headers::http_date());
        if let ProxyError::Rejected { headers, .. } = self {
            for (name, value) in headers {
                head.headers.push(
                    Bytes::copy_from_slice(name.as_str().as_bytes()),
                    Bytes::copy_from_slice(value.as_bytes()),
                );
            }
        }
        Some((head, Bytes::from(body)))
    }

    /// Log it under the request's id: the details the client does not see.
    pub fn log(&self, id: &RequestId) {
        let status = self.status().map_or(0, |s| s.as_u16());
        match self.fault() {
            Fault::Client => {
                tracing::debug!(request_id = %id, status, error = %self, "client error")
            }
            Fault::Backend => {
                tracing::warn!(request_id = %id, status, error = %self, "backend error")
            }
            Fault::Proxy => {
                tracing::info!(request_id = %id, status, error = %self, "not forwarded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(error: &ProxyError) -> String {
        let (_, body) = error.response(&RequestId::next()).unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn each_error_has_its_status_and_fault() {
        let unreachable = ProxyError::Unreachable {
            backend: "a".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        assert_eq!(unreachable.status(), Some(StatusCode::BAD_GATEWAY));
        assert_eq!(unreachable.fault(), Fault::Backend);
        let slow_client = ProxyError::ClientBody(ClientBodyError::TimedOut(Duration::from_secs(1)));
        assert_eq!(slow_client.status(), Some(StatusCode::REQUEST_TIMEOUT));
        assert_eq!(slow_client.fault(), Fault::Client);
        assert_eq!(ProxyError::ClientBody(ClientBodyError::Gone).status(), None);
        assert_eq!(ProxyError::NoUsableBackend.fault(), Fault::Proxy);
        assert_eq!(
            ProxyError::BadRequest(RequestError::Connect).status(),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn client_bodies_name_no_backend_address_or_os_error() {
        let error = ProxyError::Unreachable {
            backend: "127.0.0.1:9001".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        let body = body_of(&error);
        assert!(
            body.starts_with("502 Bad Gateway: the backend could not be reached\nrequest id: "),
            "{body}"
        );
        assert!(
            !body.contains("127.0.0.1") && !body.contains("os error"),
            "{body}"
        );
        assert!(
            error.to_string().contains("os error 111"),
            "the log keeps the detail"
        );
    }
}
