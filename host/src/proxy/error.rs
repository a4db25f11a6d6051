//! Every error response lbx itself produces comes from here: one mapping from what went wrong
//! to an HTTP status and a short plain-text body that says what happened.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

/// Something that stopped lbx from relaying a backend's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No backend is configured or all are out of rotation.
    #[error("no usable backend")]
    NoUsableBackend,
    /// The backend could not be connected to, or dropped the connection before answering.
    #[error("backend {backend} unreachable: {reason}")]
    BackendUnreachable {
        /// The backend's id.
        backend: String,
        /// Why.
        reason: String,
    },
    /// The backend accepted the request but sent no response headers in time.
    #[error("backend {backend} did not answer within {} ms", .after.as_millis())]
    BackendTimeout {
        /// The backend's id.
        backend: String,
        /// The response-headers timeout that passed.
        after: std::time::Duration,
    },
    /// The request's overall deadline passed (retries included).
    #[error("no response within the request deadline of {} ms", .after.as_millis())]
    Deadline {
        /// The deadline.
        after: std::time::Duration,
    },
    /// The routing plugin rejected the request with this status.
    #[error("request rejected by routing plugin")]
    Rejected(StatusCode),
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoUsableBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BackendUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::BackendTimeout { .. } | ProxyError::Deadline { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::Rejected(status) => *status,
        }
    }

    /// The response the client receives: `lbx: <what happened>` as text.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let body = format!("lbx: {self}\n");
        Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        assert_eq!(
            ProxyError::NoUsableBackend.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let unreachable = ProxyError::BackendUnreachable {
            backend: "a".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(unreachable.status(), StatusCode::BAD_GATEWAY);
        let deadline = ProxyError::Deadline {
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(deadline.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            deadline.to_string(),
            "no response within the request deadline of 1000 ms"
        );
        assert_eq!(
            ProxyError::Rejected(StatusCode::FORBIDDEN).status(),
            StatusCode::FORBIDDEN
        );
    }
}
