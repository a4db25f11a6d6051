//! Unit tests of the round-robin logic, run natively with `cargo test -p round_robin`.

use lbx_guest::testkit::{FakeRequest, all_healthy, backend, first_attempt, picked, retry};
use lbx_guest::{Backends, Decision, RetryContext, Router};

use crate::RoundRobin;

fn router() -> RoundRobin {
    RoundRobin::init("{}").expect("empty config is accepted")
}

fn choose(router: &mut RoundRobin, backends: &Backends, retry: &RetryContext) -> Decision {
    router.choose(&FakeRequest::get("/"), backends, retry)
}

fn picks(router: &mut RoundRobin, backends: &Backends, n: usize) -> Vec<Option<usize>> {
    (0..n)
        .map(|_| picked(&choose(router, backends, &first_attempt())))
        .collect()
}

#[test]
fn three_healthy_backends_are_picked_in_order_forever() {
    let mut rr = router();
    let expected: Vec<_> = [0, 1, 2]
        .iter()
        .copied()
        .cycle()
        .take(30)
        .map(Some)
        .collect();
    assert_eq!(picks(&mut rr, &all_healthy(3), 30), expected);
}

#[test]
fn unhealthy_backends_are_skipped_and_the_rest_share_evenly() {
    let mut rr = router();
    let backends = Backends::from([
        backend(true, 0),
        backend(false, 0),
        backend(true, 0),
        backend(true, 0),
    ]);
    let expected: Vec<_> = [0, 2, 3]
        .iter()
        .copied()
        .cycle()
        .take(12)
        .map(Some)
        .collect();
    assert_eq!(picks(&mut rr, &backends, 12), expected);
}

#[test]
fn all_unhealthy_means_no_opinion() {
    let mut rr = router();
    let backends = Backends::from([backend(false, 0), backend(false, 0)]);
    assert_eq!(
        choose(&mut rr, &backends, &first_attempt()),
        Decision::NoOpinion
    );
    assert_eq!(
        choose(&mut rr, &Backends::default(), &first_attempt()),
        Decision::NoOpinion
    );
}

#[test]
fn in_flight_counts_do_not_change_the_rotation() {
    let mut rr = router();
    let backends = lbx_guest::testkit::loads(&[100, 0, 50]);
    assert_eq!(picks(&mut rr, &backends, 3), [Some(0), Some(1), Some(2)]);
}

#[test]
fn retry_avoids_the_backend_that_already_failed() {
    let backends = all_healthy(3);
    for failed in 0..3u32 {
        // Whatever the rotation position, the retry never goes back to the failed backend.
        for turn in 0..6 {
            let mut rr = RoundRobin { turn };
            let pick = picked(&choose(&mut rr, &backends, &retry(&[failed])));
            assert!(
                pick.is_some_and(|i| i != failed as usize),
                "turn {turn}: {pick:?}"
            );
        }
    }
}

#[test]
fn retry_reuses_a_tried_backend_when_it_is_the_only_healthy_one() {
    let mut rr = router();
    let backends = Backends::from([backend(true, 0), backend(false, 0)]);
    assert_eq!(picked(&choose(&mut rr, &backends, &retry(&[0]))), Some(0));
}

#[test]
fn configuration_is_refused() {
    assert!(RoundRobin::init(r#"{"start": 1}"#).is_err());
}
