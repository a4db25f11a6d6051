//! Unit tests of the peak-EWMA logic, run natively with `cargo test -p p2c_ewma`: latency is
//! taught through outcomes, time moves on the test kit's fake clock.

use std::time::Duration;

use lbx_guest::testkit::{
    FakeRequest, advance_clock, answered, backend_info, deliver, failed, first_attempt, loads,
    outcome_of, picked, retry,
};
use lbx_guest::{BackendInfo, Backends, Fault, Outcome, Router};

use crate::P2cEwma;

fn infos(ids: &[&str]) -> Vec<BackendInfo> {
    ids.iter()
        .map(|id| backend_info(id, "127.0.0.1:80"))
        .collect()
}

fn router(seed: u64, ids: &[&str]) -> P2cEwma {
    let mut router = P2cEwma::with_seed(seed);
    router.backends_changed(&infos(ids));
    router
}

/// Serves `n` requests one after the other, 1 ms apart: each backend answers after
/// `ttfb_us(index)`, and the outcome goes back to the router. Returns the picks per backend.
fn serve(
    router: &mut P2cEwma,
    backends: &Backends,
    n: usize,
    ttfb_us: impl Fn(usize) -> u64,
) -> Vec<usize> {
    let mut counts = vec![0; backends.len()];
    let req = FakeRequest::get("/");
    for _ in 0..n {
        let decision = router.choose(&req, backends, &first_attempt());
        let index = picked(&decision).expect("a pick");
        counts[index] += 1;
        advance_clock(Duration::from_millis(1));
        assert!(deliver(router, &outcome_of(&decision, 200, ttfb_us(index))));
    }
    counts
}

/// Picks per backend over `n` decisions, without feedback or time passing.
fn shares(router: &mut P2cEwma, backends: &Backends, n: usize) -> Vec<usize> {
    let mut counts = vec![0; backends.len()];
    let req = FakeRequest::get("/");
    for _ in 0..n {
        counts[picked(&router.choose(&req, backends, &first_attempt())).unwrap()] += 1;
    }
    counts
}

/// Teaches `router` that backend `index` answers after `ttfb_us`, with the tag of its picks.
fn teach(router: &mut P2cEwma, index: usize, ttfb_us: u64) {
    let tag = router.fingerprint;
    deliver(
        router,
        &Outcome {
            tag,
            ..answered(index, 200, ttfb_us)
        },
    );
}

fn latency_of(router: &P2cEwma, index: usize) -> f64 {
    router.estimates[index].expect("a sample").latency_us
}

#[test]
fn a_backend_learned_slow_from_its_answers_gets_little_traffic() {
    let mut router = router(1, &["a", "b", "c"]);
    let backends = loads(&[0, 0, 0]);
    let slow = |i| if i == 2 { 50_000 } else { 1_000 };
    serve(&mut router, &backends, 30, slow);
    let counts = serve(&mut router, &backends, 3_000, slow);
    // Once learned, the slow backend wins only when drawn twice, which two different draws never are.
    assert_eq!(counts[2], 0, "{counts:?}");
    assert!(counts[0] > 1_200 && counts[1] > 1_200, "{counts:?}");
}

#[test]
fn load_counts_against_a_fast_backend() {
    let mut router = router(2, &["a", "b"]);
    teach(&mut router, 0, 1_000);
    teach(&mut router, 1, 1_500);
    let mut backends = loads(&[0, 0]);
    assert_eq!(shares(&mut router, &backends, 100), [100, 0]);
    backends[0].in_flight = 9; // cost 10_000 against 1_500
    assert_eq!(shares(&mut router, &backends, 100), [0, 100]);
}

#[test]
fn one_slow_answer_counts_at_once_and_fast_ones_undo_it_by_time_not_by_count() {
    let mut router = router(3, &["a", "b"]);
    teach(&mut router, 0, 1_000);
    teach(&mut router, 0, 10_000);
    assert_eq!(latency_of(&router, 0), 10_000.0, "a peak is taken at once");
    // A burst of fast answers within a millisecond barely moves it...
    for _ in 0..100 {
        advance_clock(Duration::from_micros(10));
        teach(&mut router, 0, 1_000);
    }
    assert!(
        latency_of(&router, 0) > 9_000.0,
        "{}",
        latency_of(&router, 0)
    );
    // ...while the same answers spread over a minute bring it back.
    for _ in 0..100 {
        advance_clock(Duration::from_millis(600));
        teach(&mut router, 0, 1_000);
    }
    assert!(
        latency_of(&router, 0) < 1_100.0,
        "{}",
        latency_of(&router, 0)
    );
}

#[test]
fn a_backend_slow_a_minute_ago_is_tried_again_when_the_fast_one_is_busy() {
    let mut router = router(4, &["fast", "slow"]);
    teach(&mut router, 0, 1_000);
    teach(&mut router, 1, 50_000);
    let backends = loads(&[2, 0]);
    assert_eq!(shares(&mut router, &backends, 50), [50, 0]);
    advance_clock(Duration::from_secs(60));
    assert_eq!(shares(&mut router, &backends, 50), [0, 50]);
    // Its next answer decides: still slow, it is avoided again.
    teach(&mut router, 1, 50_000);
    assert_eq!(shares(&mut router, &backends, 50), [50, 0]);
}

#[test]
fn a_backend_without_a_sample_counts_as_the_fastest_so_it_is_tried() {
    let mut router = router(5, &["a", "b"]);
    teach(&mut router, 0, 5_000);
    assert_eq!(shares(&mut router, &loads(&[1, 0]), 20), [0, 20]);
}

#[test]
fn estimates_follow_backend_ids_when_the_set_changes() {
    let mut router = router(6, &["a", "b"]);
    teach(&mut router, 0, 50_000);
    teach(&mut router, 1, 1_000);
    router.backends_changed(&infos(&["c", "b", "a"]));
    assert_eq!(router.estimates[0], None, "c is new");
    assert_eq!(latency_of(&router, 1), 1_000.0);
    assert_eq!(latency_of(&router, 2), 50_000.0);
    let counts = shares(&mut router, &loads(&[0, 0, 0]), 300);
    assert_eq!(counts[2], 0, "a is still known as slow: {counts:?}");
}

#[test]
fn an_outcome_of_a_pick_made_on_another_backend_set_is_not_used() {
    let mut router = router(7, &["a", "b"]);
    let before = router.choose(&FakeRequest::get("/"), &loads(&[0, 0]), &first_attempt());
    router.backends_changed(&infos(&["b", "a"]));
    assert!(deliver(&mut router, &outcome_of(&before, 200, 9_000)));
    assert_eq!(router.estimates, [None, None]);
    // Nor one of lbx's fallback (tag 0).
    deliver(&mut router, &answered(0, 200, 9_000));
    assert_eq!(router.estimates, [None, None]);
    // The same set in another instance gives the same tag.
    let after = router.choose(&FakeRequest::get("/"), &loads(&[0, 0]), &first_attempt());
    let mut other = self::router(8, &["b", "a"]);
    deliver(&mut other, &outcome_of(&after, 200, 9_000));
    assert!(other.estimates.iter().any(Option::is_some));
}

#[test]
fn a_failure_without_an_answer_teaches_no_latency() {
    let mut router = router(9, &["a"]);
    let tag = router.fingerprint;
    deliver(
        &mut router,
        &Outcome {
            tag,
            ..failed(0, Fault::Backend)
        },
    );
    assert_eq!(router.estimates, [None]);
}

#[test]
fn down_and_tried_backends_are_never_chosen() {
    let mut router = router(10, &["a", "b", "c"]);
    let mut backends = loads(&[0, 0, 0]);
    backends[1].healthy = false;
    let req = FakeRequest::get("/");
    for _ in 0..100 {
        let decision = router.choose(&req, &backends, &retry(&[0]));
        assert_eq!(picked(&decision), Some(2));
    }
    assert_eq!(
        router.choose(&req, &Backends::default(), &first_attempt()),
        lbx_guest::no_opinion()
    );
}

#[test]
fn it_asks_for_outcomes_and_takes_no_configuration() {
    let router = P2cEwma::init("{}").unwrap();
    assert!(router.wants_outcomes());
    assert!(P2cEwma::init(r#"{"decay":"1s"}"#).is_err());
}
