//! Building a [`Decision`]: [`pick`], [`reject`] and [`no_opinion`], and the options a pick
//! carries (ranked fallbacks, statuses worth a retry, a path rewrite, a tag, headers), chained
//! on the decision so that `lbx_guest::pick(i)` alone stays a complete answer.

use std::borrow::Borrow;

use crate::{Decision, Header, Pick, PickOptions, Rejection};

/// Sends the request to the backend at `index` (its position in the `backends` list), with no
/// fallbacks, no retry statuses, no rewrite, tag 0 and no headers. Does not allocate.
///
/// Chain [`Decision`]'s options to say more:
/// `pick(1).fallbacks(&[2, 0]).retry_on(&[503]).tag(7)`.
///
/// An index that does not fit the WIT `u32` becomes `u32::MAX`, which the host treats as an
/// invalid pick.
///
/// ```
/// use lbx_guest::{Decision, pick};
///
/// match pick(2) {
///     // No options: the plain pick crosses into the host as cheaply as it can.
///     Decision::Pick(p) => assert_eq!((p.backend, p.options), (2, None)),
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
        backend: wire_index(index),
        upstream_headers: upstream,
        downstream_headers: downstream,
        options: None,
    })
}

/// Answers the client directly with this HTTP status (a 4xx or 5xx), without contacting a
/// backend; chain [`Decision::downstream_header`] to add fields to the answer, such as
/// `retry-after` when shedding load.
///
/// ```
/// use lbx_guest::{reject, testkit::{downstream_header, rejected}};
///
/// let shed = reject(429).downstream_header("retry-after", "2");
/// assert_eq!(rejected(&shed), Some(429));
/// assert_eq!(downstream_header(&shed, "Retry-After"), Some("2"));
/// ```
pub fn reject(status: u16) -> Decision {
    Decision::Reject(Rejection {
        status,
        headers: Vec::new(),
    })
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

/// The options of a pick, chained on the [`Decision`] that [`pick`] returns. Each applies to a
/// pick only: on [`reject`] or [`no_opinion`] it changes nothing, so a chain never fails.
///
/// The host checks what a pick says (an index out of range, a duplicate fallback, a rewrite
/// that is not an origin-form path, ...) and answers a bad one with its fallback, counted as a
/// decision error; the SDK passes the values through as given.
impl Decision {
    /// Alternates in order of preference, replacing any given before. A retry takes the next
    /// one that is usable and not yet tried, without calling `choose` again; `choose` is called
    /// again only when the list is exhausted. Must not repeat an index or name the pick itself.
    ///
    /// ```
    /// use lbx_guest::testkit::attempt_order;
    ///
    /// let decision = lbx_guest::pick(1).fallbacks(&[2, 0]);
    /// assert_eq!(attempt_order(&decision), [1, 2, 0]);
    /// // Any iterator of indexes will do.
    /// let decision = lbx_guest::pick(0).fallbacks((1..4).rev());
    /// assert_eq!(attempt_order(&decision), [0, 3, 2, 1]);
    /// ```
    pub fn fallbacks<I>(mut self, indexes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<usize>,
    {
        if let Decision::Pick(pick) = &mut self {
            let indexes: Vec<u32> = indexes
                .into_iter()
                .map(|i| wire_index(*i.borrow()))
                .collect();
            if !indexes.is_empty() || pick.options.is_some() {
                options_of(pick).fallbacks = indexes;
            }
        }
        self
    }

    /// Response statuses worth another attempt (e.g. 429, 503), besides the failures the host
    /// retries anyway; replaces any given before. The host's `max_attempts`, retry budget and
    /// replay rules still bound the retries; on the last attempt the response goes to the client.
    ///
    /// ```
    /// let decision = lbx_guest::pick(0).retry_on(&[429, 503]);
    /// assert_eq!(lbx_guest::testkit::expect_pick(&decision).retry_on, [429, 503]);
    /// ```
    pub fn retry_on<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<u16>,
    {
        if let Decision::Pick(pick) = &mut self {
            let statuses: Vec<u16> = statuses.into_iter().map(|s| *s.borrow()).collect();
            if !statuses.is_empty() || pick.options.is_some() {
                options_of(pick).retry_on = statuses;
            }
        }
        self
    }

    /// A new upstream path and query in origin form (`/v1/users?page=2`), replacing the
    /// request's. The host refuses one that does not start with `/`, holds CR, LF or NUL, or
    /// is longer than 8 KiB.
    ///
    /// ```
    /// let decision = lbx_guest::pick(0).rewrite("/v1/users?page=2");
    /// let pick = lbx_guest::testkit::expect_pick(&decision);
    /// assert_eq!(pick.rewrite.as_deref(), Some("/v1/users?page=2"));
    /// ```
    pub fn rewrite(mut self, path_and_query: impl Into<String>) -> Self {
        if let Decision::Pick(pick) = &mut self {
            options_of(pick).rewrite = Some(path_and_query.into());
        }
        self
    }

    /// An opaque number the host hands back in every [`Outcome`](crate::Outcome) of this
    /// pick, to match an outcome to the decision (and the backend list) that led to it.
    ///
    /// ```
    /// let decision = lbx_guest::pick(0).tag(7);
    /// assert_eq!(lbx_guest::testkit::expect_pick(&decision).tag, 7);
    /// ```
    pub fn tag(mut self, tag: u64) -> Self {
        if let Decision::Pick(pick) = &mut self
            && (tag != 0 || pick.options.is_some())
        {
            options_of(pick).tag = tag;
        }
        self
    }

    /// Adds a header to the request sent to the backend.
    ///
    /// ```
    /// use lbx_guest::testkit::upstream_header;
    ///
    /// let decision = lbx_guest::pick(0).upstream_header("x-route", "api");
    /// assert_eq!(upstream_header(&decision, "X-Route"), Some("api"));
    /// ```
    pub fn upstream_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Decision::Pick(pick) = &mut self {
            pick.upstream_headers.push(header(name, value));
        }
        self
    }

    /// Adds a header to the response sent to the client: to the backend's answer on a pick
    /// (e.g. a sticky `set-cookie`), to lbx's own answer on a [`reject`] (e.g. `retry-after`;
    /// lbx refuses framing and connection fields there, which it writes itself).
    ///
    /// ```
    /// use lbx_guest::testkit::downstream_header;
    ///
    /// let decision = lbx_guest::pick(0).downstream_header("set-cookie", "lbx=0; Path=/");
    /// assert_eq!(downstream_header(&decision, "set-cookie"), Some("lbx=0; Path=/"));
    /// // Options of a pick do nothing on other answers.
    /// assert_eq!(lbx_guest::reject(503).tag(1), lbx_guest::reject(503));
    /// ```
    pub fn downstream_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self {
            Decision::Pick(pick) => pick.downstream_headers.push(header(name, value)),
            Decision::Reject(rejection) => rejection.headers.push(header(name, value)),
            Decision::NoOpinion => {}
        }
        self
    }
}

/// The pick's options, created empty on first use. A plain pick carries none, the cheapest
/// answer to hand over, so the setters leave them absent when given nothing (no indexes, no
/// statuses, tag 0): the host reads absent options as exactly that.
fn options_of(pick: &mut Pick) -> &mut PickOptions {
    pick.options.get_or_insert_with(|| PickOptions {
        fallbacks: Vec::new(),
        retry_on: Vec::new(),
        rewrite: None,
        tag: 0,
    })
}

/// A backend index as the WIT `u32`; one that does not fit becomes `u32::MAX`, out of range
/// for any backend list, so the host refuses it instead of picking another backend.
fn wire_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_kept_together_on_one_pick() {
        let decision = pick(3)
            .fallbacks([1, 0])
            .retry_on([503])
            .rewrite("/x")
            .tag(9)
            .upstream_header("a", "1")
            .downstream_header("b", "2");
        let Decision::Pick(p) = decision else {
            panic!("not a pick")
        };
        assert_eq!(
            p,
            Pick {
                backend: 3,
                upstream_headers: vec![header("a", "1")],
                downstream_headers: vec![header("b", "2")],
                options: Some(PickOptions {
                    fallbacks: vec![1, 0],
                    retry_on: vec![503],
                    rewrite: Some("/x".into()),
                    tag: 9,
                }),
            }
        );
    }

    #[test]
    fn lists_are_replaced_and_headers_appended() {
        let decision = pick(0)
            .fallbacks([1])
            .fallbacks([2])
            .retry_on([429])
            .retry_on([503])
            .upstream_header("a", "1")
            .upstream_header("a", "2");
        let Decision::Pick(p) = decision else {
            panic!("not a pick")
        };
        let options = p.options.expect("options");
        assert_eq!((options.fallbacks, options.retry_on), (vec![2], vec![503]));
        assert_eq!(p.upstream_headers.len(), 2);
    }

    #[test]
    fn an_index_too_large_for_the_wire_is_sent_as_invalid() {
        let big = usize::try_from(u64::from(u32::MAX) + 1).unwrap_or(usize::MAX);
        let Decision::Pick(p) = pick(big).fallbacks([big]) else {
            panic!("not a pick")
        };
        assert_eq!(
            (p.backend, p.options.expect("options").fallbacks[0]),
            (u32::MAX, u32::MAX)
        );
    }

    #[test]
    fn options_leave_other_decisions_alone() {
        assert_eq!(
            no_opinion()
                .fallbacks([1])
                .rewrite("/")
                .downstream_header("a", "b"),
            no_opinion()
        );
    }
}
