//! A plugin's answer in the host's own types, whichever contract version produced it, and its
//! check against the backend set: [`interpret`] turns a [`Decision`] into a [`Route`] plus the
//! [`Directives`] its attempts follow, or says why it cannot be used (a decision error, which
//! the caller counts and replaces with the fallback).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::upstream::BackendSet;

/// The longest upstream path and query a plugin may substitute.
pub const MAX_REWRITE_BYTES: usize = 8 * 1024;

/// Which version of the `lbx:router` contract a plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `lbx:router@0.1.0`: choose with host statistics; headers in the pick.
    V0_1,
    /// `lbx:router@0.2.0`: adds outcome feedback, ranked fallbacks, retry statuses, path
    /// rewrite, the body prefix, backend signals and a clock.
    V0_2,
}

impl Contract {
    /// The package name and version, as plugins and the README spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1 => "lbx:router@0.1.0",
            Contract::V0_2 => "lbx:router@0.2.0",
        }
    }
}

/// What a plugin asked of the host when it started (`init`'s answer in 0.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Tell it how each attempt it decided went.
    pub outcomes: bool,
}

/// What the host knows about earlier attempts of a request, as the plugin is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryContext {
    /// 0 for the first attempt.
    pub attempt: u32,
    /// Indexes of the backends that already failed the request.
    pub tried: Vec<u32>,
}

/// One header a pick adds, as the plugin wrote it (checked by [`interpret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

/// A plugin's choice of backend and what comes with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pick {
    /// Index of the backend in the set the plugin was shown.
    pub backend: u32,
    /// Alternates for retries, best first.
    pub fallbacks: Vec<u32>,
    /// Response statuses worth another attempt.
    pub retry_on: Vec<u16>,
    /// A new upstream path and query.
    pub rewrite: Option<String>,
    /// Handed back with the outcome.
    pub tag: u64,
    /// Added to the request sent to the backend.
    pub upstream_headers: Vec<Header>,
    /// Added to the response sent to the client.
    pub downstream_headers: Vec<Header>,
}

/// A plugin's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the request to a backend.
    Pick(Pick),
    /// Answer the client with this status and these extra response fields.
    Reject {
        /// A 4xx or 5xx.
        status: u16,
        /// Added to the response sent to the client.
        headers: Vec<Header>,
    },
    /// Let the built-in fallback decide.
    NoOpinion,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Forward to the backend at this index of the set the decision was made on, following
    /// the request's [`Directives`].
    Forward {
        /// Backend index.
        index: usize,
    },
    /// Answer the client with this status (the plugin rejected the request).
    Reject(StatusCode),
    /// No backend can take the request.
    NoUsableBackend,
}

/// What the decision in force asks of every attempt it covers — the pick's and those its
/// fallbacks take. The fallback's decisions ask nothing.
#[derive(Debug, Default)]
pub struct Directives {
    /// Alternates not yet used, best first.
    pub fallbacks: Vec<u32>,
    /// Statuses worth another attempt.
    pub retry_on: Vec<u16>,
    /// Upstream target (path and query) replacing the request's.
    pub rewrite: Option<Bytes>,
    /// Extra fields for the upstream request.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra fields for the client's response.
    pub downstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// The pick's tag, handed back with each outcome.
    pub tag: u64,
}

impl Directives {
    /// Whether a response with `status` is worth another attempt.
    pub fn retries_on(&self, status: StatusCode) -> bool {
        self.retry_on.contains(&status.as_u16())
    }
}

/// Fields of lbx's own answer to a rejected request that a plugin may not add: its framing, its
/// connection handling and its request id.
const LBX_WRITES_ON_REJECT: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "content-type",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "x-request-id",
];

/// Check a plugin's answer against the backend set. `Ok(None)` means "no opinion"; `Err` says
/// why the answer cannot be used.
pub fn interpret(
    decision: Decision,
    set: &BackendSet,
) -> Result<Option<(Route, Directives)>, String> {
    match decision {
        Decision::NoOpinion => Ok(None),
        Decision::Reject { status, headers } => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| format!("reject with status {status}, which is not a 4xx or 5xx"))?;
            if let Some(own) = headers.iter().find(|h| {
                LBX_WRITES_ON_REJECT
                    .iter()
                    .any(|name| h.name.eq_ignore_ascii_case(name))
            }) {
                return Err(format!(
                    "reject header {:?} is one lbx writes itself on its own answers",
                    own.name
                ));
            }
            let directives = Directives {
                downstream_headers: convert_headers(headers)?,
                ..Directives::default()
            };
            Ok(Some((Route::Reject(status), directives)))
        }
        Decision::Pick(pick) => {
            let index = pick.backend as usize;
            let Some(backend) = set.backends.get(index) else {
                return Err(format!(
                    "picked backend {index}, but there are only {}",
                    set.len()
                ));
            };
            if !backend.is_usable() {
                return Err(format!(
                    "picked backend {}, which is not usable (down, ejected or draining)",
                    backend.spec.id
                ));
            }
            check_fallbacks(pick.backend, &pick.fallbacks, set.len())?;
            if let Some(status) = pick.retry_on.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(format!("retry-on status {status} is not an HTTP status"));
            }
            let rewrite = pick.rewrite.map(check_rewrite).transpose()?;
            Ok(Some((
                Route::Forward { index },
                Directives {
                    fallbacks: pick.fallbacks,
                    retry_on: pick.retry_on,
                    rewrite,
                    upstream_headers: convert_headers(pick.upstream_headers)?,
                    downstream_headers: convert_headers(pick.downstream_headers)?,
                    tag: pick.tag,
                },
            )))
        }
    }
}

/// Fallbacks must name backends of the set, once each, and not the pick itself.
fn check_fallbacks(picked: u32, fallbacks: &[u32], backends: usize) -> Result<(), String> {
    for (position, &index) in fallbacks.iter().enumerate() {
        if index as usize >= backends {
            return Err(format!(
                "fallback {index} is out of range: there are only {backends} backends"
            ));
        }
        if index == picked {
            return Err(format!("fallback {index} is the picked backend itself"));
        }
        if fallbacks[..position].contains(&index) {
            return Err(format!("fallback {index} is listed twice"));
        }
    }
    Ok(())
}

/// A rewrite must be an origin-form target (RFC 9112 §3.2.1) lbx can write as is: starting
/// with `/`, no whitespace or control bytes (no CR, LF or NUL can smuggle a second request),
/// at most [`MAX_REWRITE_BYTES`].
fn check_rewrite(target: String) -> Result<Bytes, String> {
    if target.len() > MAX_REWRITE_BYTES {
        return Err(format!(
            "rewrite of {} bytes is longer than {MAX_REWRITE_BYTES}",
            target.len()
        ));
    }
    if !target.starts_with('/') {
        return Err(format!(
            "rewrite {:?} is not an origin-form path (it must start with /)",
            target
        ));
    }
    if let Some(bad) = target.bytes().find(|b| b.is_ascii_control() || *b == b' ') {
        return Err(format!(
            "rewrite {:?} holds a forbidden byte 0x{bad:02x} (control characters and spaces \
             are not allowed)",
            target
        ));
    }
    if http::uri::PathAndQuery::try_from(target.as_str()).is_err() {
        return Err(format!("rewrite {target:?} is not a valid path and query"));
    }
    Ok(Bytes::from(target))
}

fn convert_headers(headers: Vec<Header>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .into_iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("invalid header name {:?}", h.name))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|_| format!("invalid value for header {:?}", h.name))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks_out_of_range_duplicated_or_self_are_refused() {
        assert!(check_fallbacks(0, &[1, 2], 3).is_ok());
        assert!(check_fallbacks(0, &[], 1).is_ok());
        let out = check_fallbacks(0, &[3], 3).unwrap_err();
        assert!(out.contains("out of range"), "{out}");
        let twice = check_fallbacks(0, &[2, 1, 2], 3).unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
        let itself = check_fallbacks(1, &[1], 3).unwrap_err();
        assert!(itself.contains("picked backend itself"), "{itself}");
    }

    #[test]
    fn rewrites_must_be_origin_form_without_control_bytes() {
        assert_eq!(
            check_rewrite("/users?page=2".into()).unwrap(),
            Bytes::from_static(b"/users?page=2")
        );
        for bad in [
            "users",
            "/a\r\nX-Evil: 1",
            "/a\0b",
            "/a b",
            "http://other/",
            "",
        ] {
            assert!(check_rewrite(bad.into()).is_err(), "{bad:?} accepted");
        }
        let long = format!("/{}", "a".repeat(MAX_REWRITE_BYTES));
        assert!(check_rewrite(long).unwrap_err().contains("longer than"));
    }
}
