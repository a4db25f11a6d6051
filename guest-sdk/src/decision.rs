//! Constructors for [`Decision`] and [`Header`], so plugins need not spell out the records.

use crate::{Decision, Header, Pick};

/// Sends the request to the backend at `index` (its position in the `backends` list), adding
/// no headers. Does not allocate.
///
/// An index that does not fit the WIT `u32` becomes `u32::MAX`, which the host treats as an
/// invalid pick.
///
/// ```
/// use lbx_guest::{Decision, pick};
///
/// match pick(2) {
///     Decision::Pick(p) => assert_eq!(p.backend, 2),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
pub fn pick(index: usize) -> Decision {
    pick_with_headers(index, Vec::new(), Vec::new())
}

/// Sends the request to the backend at `index`, adding `upstream` headers to the request sent
/// to the backend and `downstream` headers to the response sent to the client.
///
/// ```
/// use lbx_guest::{header, pick_with_headers};
///
/// // Pin the client to backend 1 with a sticky cookie.
/// let decision = pick_with_headers(
///     1,
///     vec![header("x-lbx-backend", "1")],
///     vec![header("set-cookie", "lbx=1; Path=/; HttpOnly")],
/// );
/// # assert_eq!(lbx_guest::testkit::picked(&decision), Some(1));
/// ```
pub fn pick_with_headers(index: usize, upstream: Vec<Header>, downstream: Vec<Header>) -> Decision {
    Decision::Pick(Pick {
        backend: u32::try_from(index).unwrap_or(u32::MAX),
        upstream_headers: upstream,
        downstream_headers: downstream,
    })
}

/// Answers the client directly with this HTTP status, without contacting a backend.
///
/// ```
/// use lbx_guest::{Decision, reject};
///
/// assert_eq!(reject(429), Decision::Reject(429));
/// ```
pub fn reject(status: u16) -> Decision {
    Decision::Reject(status)
}

/// No preference: the host's built-in fallback (least in-flight among healthy backends)
/// decides.
///
/// ```
/// use lbx_guest::{Decision, no_opinion};
///
/// assert_eq!(no_opinion(), Decision::NoOpinion);
/// ```
pub fn no_opinion() -> Decision {
    Decision::NoOpinion
}

/// One HTTP header for [`pick_with_headers`].
///
/// ```
/// let h = lbx_guest::header("x-canary", "1");
/// assert_eq!((h.name.as_str(), h.value.as_str()), ("x-canary", "1"));
/// ```
pub fn header(name: impl Into<String>, value: impl Into<String>) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}
