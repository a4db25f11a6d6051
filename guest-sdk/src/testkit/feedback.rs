//! Fake feedback: outcomes of attempts, delivered as the host would, and the clock.

use std::time::Duration;

use crate::{Decision, Fault, Outcome, Router};

/// The outcome of an attempt on backend `index` that got a response with `status`, its head
/// after `ttfb_us` microseconds (the whole exchange took as long: no body, so no
/// `first_byte_us`); attempt 0, tag 0, no bytes. Change other fields with struct update syntax
/// (a streamed answer: `first_byte_us: Some(…)`).
///
/// ```
/// use lbx_guest::{Outcome, testkit::answered};
///
/// let slow = answered(2, 200, 80_000);
/// assert_eq!((slow.backend, slow.status, slow.ttfb_us, slow.fault), (2, Some(200), Some(80_000), None));
/// let retried = Outcome { attempt: 1, tag: 9, ..answered(0, 503, 1_000) };
/// assert_eq!(retried.attempt, 1);
/// ```
pub fn answered(index: usize, status: u16, ttfb_us: u64) -> Outcome {
    Outcome {
        backend: u32::try_from(index).unwrap_or(u32::MAX),
        status: Some(status),
        fault: None,
        ttfb_us: Some(ttfb_us),
        first_byte_us: None,
        total_us: ttfb_us,
        bytes_up: 0,
        bytes_down: 0,
        attempt: 0,
        tag: 0,
    }
}

/// The outcome of an attempt on backend `index` that failed for `fault` before any response
/// (no status, no time to first byte); attempt 0, tag 0.
///
/// ```
/// use lbx_guest::{Fault, testkit::failed};
///
/// let refused = failed(1, Fault::Backend);
/// assert_eq!((refused.status, refused.fault, refused.ttfb_us), (None, Some(Fault::Backend), None));
/// ```
pub fn failed(index: usize, fault: Fault) -> Outcome {
    Outcome {
        status: None,
        fault: Some(fault),
        ttfb_us: None,
        total_us: 0,
        ..answered(index, 0, 0)
    }
}

/// The outcome of `decision`'s pick answered with `status` after `ttfb_us`: backend and tag
/// taken from the pick, as the host reports them.
///
/// # Panics
///
/// If the decision is not a pick (no attempt follows a rejection; the host's fallback would
/// report tag 0: build that with [`answered`]).
///
/// ```
/// use lbx_guest::testkit::outcome_of;
///
/// let decision = lbx_guest::pick(1).tag(42);
/// let outcome = outcome_of(&decision, 200, 3_000);
/// assert_eq!((outcome.backend, outcome.tag, outcome.status), (1, 42, Some(200)));
/// ```
pub fn outcome_of(decision: &Decision, status: u16, ttfb_us: u64) -> Outcome {
    let pick = super::expect_pick(decision);
    Outcome {
        backend: pick.backend,
        tag: pick.tag,
        ..answered(0, status, ttfb_us)
    }
}

/// Hands `outcome` to `router` as the host would: only if the router
/// [wants outcomes](Router::wants_outcomes). Returns whether it was delivered, so a test of a
/// learning router also checks that it asked.
///
/// ```
/// use lbx_guest::testkit::{answered, deliver};
/// # use lbx_guest::{Backends, Decision, Request, RetryContext, Router};
/// # #[derive(Default)] struct Deaf;
/// # impl Router for Deaf {
/// #     fn init(c: &str) -> Result<Self, String> { lbx_guest::init_default(c) }
/// #     fn choose(&mut self, _: &dyn Request, _: &Backends, _: &RetryContext) -> Decision {
/// #         lbx_guest::no_opinion()
/// #     }
/// # }
///
/// // A router that did not set `OUTCOMES` never hears of an attempt.
/// assert!(!deliver(&mut Deaf, &answered(0, 200, 1_000)));
/// ```
pub fn deliver<R: Router>(router: &mut R, outcome: &Outcome) -> bool {
    let wanted = router.wants_outcomes();
    if wanted {
        router.on_outcome(outcome);
    }
    wanted
}

/// Moves the test thread's fake clock ([`now_us`](crate::now_us)) forward. It starts at 0 in
/// every test; only this moves it.
///
/// ```
/// use std::time::Duration;
///
/// let before = lbx_guest::now_us();
/// lbx_guest::testkit::advance_clock(Duration::from_secs(2));
/// assert_eq!(lbx_guest::now_us(), before + 2_000_000);
/// ```
pub fn advance_clock(by: Duration) {
    crate::clock::advance(u64::try_from(by.as_micros()).unwrap_or(u64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_zero_in_each_test_and_only_moves_when_advanced() {
        assert_eq!(crate::now_us(), 0);
        assert_eq!(crate::now_us(), 0);
        advance_clock(Duration::from_micros(7));
        assert_eq!(crate::now_us(), 7);
    }

    #[test]
    #[should_panic(expected = "expected a pick")]
    fn an_outcome_of_a_rejection_fails_the_test() {
        let _ = outcome_of(&crate::reject(503), 200, 1);
    }
}
