//! Unit tests of the least-connections logic, run natively with `cargo test -p least_conn`.

use lbx_guest::testkit::{FakeRequest, all_healthy, backend, first_attempt, loads, picked, retry};
use lbx_guest::{Backends, Decision, RetryContext, Router};

use crate::LeastConn;

fn router() -> LeastConn {
    LeastConn::init("{}").expect("empty config is accepted")
}

fn choose(router: &mut LeastConn, backends: &Backends, retry: &RetryContext) -> Decision {
    router.choose(&FakeRequest::get("/"), backends, retry)
}

fn pick_first(router: &mut LeastConn, backends: &Backends) -> Option<usize> {
    picked(&choose(router, backends, &first_attempt()))
}

#[test]
fn the_least_loaded_healthy_backend_is_picked() {
    let mut lc = router();
    assert_eq!(pick_first(&mut lc, &loads(&[5, 2, 9])), Some(1));
    assert_eq!(pick_first(&mut lc, &loads(&[5, 2, 1])), Some(2));
}

#[test]
fn an_unhealthy_backend_is_skipped_even_when_idle() {
    let mut lc = router();
    let backends = Backends::from([backend(true, 4), backend(false, 0), backend(true, 3)]);
    assert_eq!(pick_first(&mut lc, &backends), Some(2));
}

#[test]
fn equal_load_is_spread_in_rotation() {
    let mut lc = router();
    let backends = all_healthy(3);
    let picks: Vec<_> = (0..9).map(|_| pick_first(&mut lc, &backends)).collect();
    let expected: Vec<_> = [0, 1, 2]
        .iter()
        .copied()
        .cycle()
        .take(9)
        .map(Some)
        .collect();
    assert_eq!(picks, expected);
}

#[test]
fn ties_rotate_among_the_least_loaded_only() {
    let mut lc = router();
    let backends = loads(&[7, 1, 1, 3, 1]);
    let picks: Vec<_> = (0..6).map(|_| pick_first(&mut lc, &backends)).collect();
    assert_eq!(
        picks,
        [Some(1), Some(2), Some(4), Some(1), Some(2), Some(4)]
    );
}

#[test]
fn load_reported_by_the_host_steers_the_next_pick() {
    // Simulate the host: each pick adds one in-flight request to the chosen backend.
    let mut lc = router();
    let mut backends = loads(&[0, 0, 0]);
    let mut counts = [0u32; 3];
    for _ in 0..30 {
        let index = pick_first(&mut lc, &backends).expect("a healthy backend");
        backends[index].in_flight += 1;
        counts[index] += 1;
    }
    assert_eq!(counts, [10, 10, 10]);
}

#[test]
fn all_unhealthy_means_no_opinion() {
    let mut lc = router();
    let backends = Backends::from([backend(false, 0), backend(false, 1)]);
    assert_eq!(
        choose(&mut lc, &backends, &first_attempt()),
        Decision::NoOpinion
    );
    assert_eq!(
        choose(&mut lc, &Backends::default(), &first_attempt()),
        Decision::NoOpinion
    );
}

#[test]
fn retry_avoids_the_failed_backend_even_if_it_is_least_loaded() {
    let mut lc = router();
    let backends = loads(&[0, 5, 9]);
    assert_eq!(picked(&choose(&mut lc, &backends, &retry(&[0]))), Some(1));
    assert_eq!(
        picked(&choose(&mut lc, &backends, &retry(&[0, 1]))),
        Some(2)
    );
}

#[test]
fn retry_reuses_the_only_healthy_backend() {
    let mut lc = router();
    let backends = Backends::from([backend(false, 0), backend(true, 3)]);
    assert_eq!(picked(&choose(&mut lc, &backends, &retry(&[1]))), Some(1));
}

#[test]
fn a_shrunken_backend_list_is_handled() {
    let mut lc = router();
    for _ in 0..5 {
        pick_first(&mut lc, &all_healthy(5));
    }
    // The rotation position is past the end of the new, shorter list.
    assert_eq!(
        pick_first(&mut lc, &all_healthy(2)).map(|i| i < 2),
        Some(true)
    );
}

#[test]
fn configuration_is_refused() {
    assert!(LeastConn::init(r#"{"weights": true}"#).is_err());
}
