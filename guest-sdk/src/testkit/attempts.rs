//! What a `choose` call takes besides the request and backends (the retry context), and
//! readers of the decision it returns.

use crate::{Decision, Header, RetryContext};

/// The retry context of a first attempt: attempt 0, nothing tried.
///
/// ```
/// assert_eq!(lbx_guest::testkit::first_attempt().attempt, 0);
/// ```
pub fn first_attempt() -> RetryContext {
    RetryContext {
        attempt: 0,
        tried: Vec::new(),
    }
}

/// The retry context after the backends at `tried` failed this request, one attempt each.
///
/// ```
/// let ctx = lbx_guest::testkit::retry(&[2, 0]);
/// assert_eq!((ctx.attempt, ctx.tried), (2, vec![2, 0]));
/// ```
pub fn retry(tried: &[u32]) -> RetryContext {
    RetryContext {
        attempt: u32::try_from(tried.len()).unwrap_or(u32::MAX),
        tried: tried.to_vec(),
    }
}

/// The backend index a decision picks, or `None` for `reject` and `no-opinion`.
///
/// ```
/// use lbx_guest::testkit::picked;
///
/// assert_eq!(picked(&lbx_guest::pick(3)), Some(3));
/// assert_eq!(picked(&lbx_guest::no_opinion()), None);
/// ```
pub fn picked(decision: &Decision) -> Option<usize> {
    match decision {
        Decision::Pick(p) => usize::try_from(p.backend).ok(),
        Decision::Reject(_) | Decision::NoOpinion => None,
    }
}

/// The pick of a decision, to assert on its fields (`fallbacks`, `retry_on`, `rewrite`, `tag`,
/// headers).
///
/// # Panics
///
/// If the decision is not a pick, naming what it is.
///
/// ```
/// use lbx_guest::testkit::expect_pick;
///
/// let decision = lbx_guest::pick(1).fallbacks(&[0]).retry_on(&[503]).rewrite("/v2").tag(4);
/// let pick = expect_pick(&decision);
/// assert_eq!(pick.fallbacks, [0]);
/// assert_eq!(pick.retry_on, [503]);
/// assert_eq!(pick.rewrite.as_deref(), Some("/v2"));
/// assert_eq!(pick.tag, 4);
/// ```
pub fn expect_pick(decision: &Decision) -> PickView {
    match decision {
        Decision::Pick(pick) => {
            let options = pick.options.clone();
            PickView {
                backend: pick.backend,
                fallbacks: options
                    .as_ref()
                    .map(|o| o.fallbacks.clone())
                    .unwrap_or_default(),
                retry_on: options
                    .as_ref()
                    .map(|o| o.retry_on.clone())
                    .unwrap_or_default(),
                rewrite: options.as_ref().and_then(|o| o.rewrite.clone()),
                tag: options.map_or(0, |o| o.tag),
                upstream_headers: pick.upstream_headers.clone(),
                downstream_headers: pick.downstream_headers.clone(),
            }
        }
        other => panic!("expected a pick, got {other:?}"),
    }
}

/// A pick with its options spelled out as the host reads them (a pick without options has no
/// fallbacks, retry statuses or rewrite, and tag 0), for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickView {
    /// The backend picked.
    pub backend: u32,
    /// Alternates, best first.
    pub fallbacks: Vec<u32>,
    /// Statuses worth another attempt.
    pub retry_on: Vec<u16>,
    /// The new upstream path and query.
    pub rewrite: Option<String>,
    /// The tag handed back with outcomes.
    pub tag: u64,
    /// Headers for the backend.
    pub upstream_headers: Vec<Header>,
    /// Headers for the client.
    pub downstream_headers: Vec<Header>,
}

/// The backends the host would try for this decision, in order: the pick, then its fallbacks.
/// Empty for `reject` and `no-opinion`.
///
/// ```
/// use lbx_guest::testkit::attempt_order;
///
/// assert_eq!(attempt_order(&lbx_guest::pick(2).fallbacks(&[0, 1])), [2, 0, 1]);
/// assert!(attempt_order(&lbx_guest::reject(503)).is_empty());
/// ```
pub fn attempt_order(decision: &Decision) -> Vec<usize> {
    match decision {
        Decision::Pick(pick) => std::iter::once(pick.backend)
            .chain(
                pick.options
                    .iter()
                    .flat_map(|o| o.fallbacks.iter().copied()),
            )
            .map(|i| usize::try_from(i).unwrap_or(usize::MAX))
            .collect(),
        Decision::Reject(_) | Decision::NoOpinion => Vec::new(),
    }
}

/// The value of the first header the pick adds to the request sent to the backend with this
/// name (case-insensitive); `None` if it adds none, or the decision is not a pick.
///
/// ```
/// use lbx_guest::testkit::upstream_header;
///
/// let decision = lbx_guest::pick(0).upstream_header("X-Tenant", "acme");
/// assert_eq!(upstream_header(&decision, "x-tenant"), Some("acme"));
/// assert_eq!(upstream_header(&decision, "x-other"), None);
/// ```
pub fn upstream_header<'a>(decision: &'a Decision, name: &str) -> Option<&'a str> {
    match decision {
        Decision::Pick(pick) => named(&pick.upstream_headers, name),
        Decision::Reject(_) | Decision::NoOpinion => None,
    }
}

/// The value of the first header the decision adds to the response sent to the client with
/// this name (case-insensitive) — the backend's answer on a pick, lbx's on a rejection; `None`
/// if it adds none, or the decision is `no-opinion`.
///
/// ```
/// use lbx_guest::testkit::downstream_header;
///
/// let decision = lbx_guest::pick(0).downstream_header("Set-Cookie", "lbx=0");
/// assert_eq!(downstream_header(&decision, "set-cookie"), Some("lbx=0"));
/// let shed = lbx_guest::reject(429).downstream_header("retry-after", "1");
/// assert_eq!(downstream_header(&shed, "retry-after"), Some("1"));
/// ```
pub fn downstream_header<'a>(decision: &'a Decision, name: &str) -> Option<&'a str> {
    match decision {
        Decision::Pick(pick) => named(&pick.downstream_headers, name),
        Decision::Reject(rejection) => named(&rejection.headers, name),
        Decision::NoOpinion => None,
    }
}

/// The status of a rejection, or `None` for a pick or `no-opinion`.
///
/// ```
/// use lbx_guest::testkit::rejected;
///
/// assert_eq!(rejected(&lbx_guest::reject(404)), Some(404));
/// assert_eq!(rejected(&lbx_guest::pick(0)), None);
/// ```
pub fn rejected(decision: &Decision) -> Option<u16> {
    match decision {
        Decision::Reject(rejection) => Some(rejection.status),
        Decision::Pick(_) | Decision::NoOpinion => None,
    }
}

fn named<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "expected a pick, got Decision::Reject(Rejection { status: 429")]
    fn expecting_a_pick_of_a_rejection_fails_the_test() {
        let _ = expect_pick(&crate::reject(429));
    }
}
