//! One scrape of one backend: `GET [signals] path` on a fresh connection over the backend's own
//! transport (the probe health checks use), the whole exchange bounded by `timeout`, the body
//! by `max_bytes` — reading stops at the limit, so a backend answering 10 MiB costs lbx at most
//! `max_bytes` of memory — then parsed and reduced to one number per signal.

use http::uri::Authority;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::exposition::ParseError;
use super::selector;
use crate::config::SignalsSpec;
use crate::upstream::Transport;
use crate::upstream::probe::{self, ProbeRequest};

/// What lbx asks for: the text format, which every client library serves (OpenMetrics and
/// protobuf only when asked).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// Why a scrape gave no reading. The text is what `/admin/backends` shows as `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// No connection, or no response head (refused, reset, TLS refused...).
    #[error("{0}")]
    Request(String),
    /// The whole scrape did not end within `timeout`.
    #[error("no complete answer within {0} ms")]
    TimedOut(u128),
    /// A status other than 2xx.
    #[error("{path} answered {status}")]
    Status {
        /// The scraped path.
        path: String,
        /// The status.
        status: u16,
    },
    /// The body is longer than `max_bytes`.
    #[error("the body is larger than max_bytes ({0} bytes)")]
    TooLarge(usize),
    /// The body broke off.
    #[error("the body broke off: {0}")]
    Body(String),
    /// The body is not UTF-8, so not the text format.
    #[error("not Prometheus text format: not UTF-8")]
    NotUtf8,
    /// The body is not the text format.
    #[error("not Prometheus text format: {0}")]
    Parse(ParseError),
}

/// Scrape `path` from the backend at `authority` over `transport`; each signal's value, in slot
/// order (NaN for a signal no series matched).
pub async fn scrape(
    transport: &Transport,
    authority: &Authority,
    spec: &SignalsSpec,
) -> Result<Box<[f64]>, ScrapeError> {
    let exchange = async {
        let request = ProbeRequest {
            path: &spec.path,
            user_agent: "lbx-signals",
            accept: Some(ACCEPT),
        };
        let probed = probe::get(transport, authority, request)
            .await
            .map_err(ScrapeError::Request)?;
        let status = probed.response.status();
        if !status.is_success() {
            return Err(ScrapeError::Status {
                path: spec.path.clone(),
                status: status.as_u16(),
            });
        }
        let declared = probed
            .response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > spec.max_bytes as u64) {
            return Err(ScrapeError::TooLarge(spec.max_bytes));
        }
        let mut probed = probed;
        // Read through a borrow: the connection lives as long as `probed`.
        let body = Limited::new(probed.response.body_mut(), spec.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    ScrapeError::TooLarge(spec.max_bytes)
                } else {
                    ScrapeError::Body(e.to_string())
                }
            })?
            .to_bytes();
        let text = std::str::from_utf8(&body).map_err(|_| ScrapeError::NotUtf8)?;
        selector::evaluate(text, &spec.selectors).map_err(ScrapeError::Parse)
    };
    tokio::time::timeout(spec.timeout, exchange)
        .await
        .unwrap_or(Err(ScrapeError::TimedOut(spec.timeout.as_millis())))
}
