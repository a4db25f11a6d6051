//! Unit tests of the power-of-two-choices logic, run natively with `cargo test -p random`.

use lbx_guest::testkit::{FakeRequest, all_healthy, backend, first_attempt, loads, picked, retry};
use lbx_guest::{Backends, Decision, RetryContext, Router};

use crate::PowerOfTwo;

fn choose(router: &mut PowerOfTwo, backends: &Backends, retry: &RetryContext) -> Decision {
    router.choose(&FakeRequest::get("/"), backends, retry)
}

/// How often each backend is picked over `n` first attempts.
fn histogram(router: &mut PowerOfTwo, backends: &Backends, n: usize) -> Vec<usize> {
    let mut counts = vec![0; backends.len()];
    for _ in 0..n {
        let index = picked(&choose(router, backends, &first_attempt())).expect("a pick");
        counts[index] += 1;
    }
    counts
}

#[test]
fn the_most_loaded_backend_is_never_picked() {
    // It can only win a draw against itself, and the two draws are distinct.
    for seed in 0..20 {
        let mut p2c = PowerOfTwo::with_seed(seed);
        let counts = histogram(&mut p2c, &loads(&[3, 9, 1, 2]), 200);
        assert_eq!(counts[1], 0, "seed {seed}: {counts:?}");
    }
}

#[test]
fn equal_load_spreads_roughly_evenly() {
    let mut p2c = PowerOfTwo::with_seed(7);
    let counts = histogram(&mut p2c, &all_healthy(4), 8_000);
    // Each backend expects 2,000 picks.
    assert!(
        counts.iter().all(|&c| (1_700..2_300).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn lighter_backends_get_more_requests() {
    let mut p2c = PowerOfTwo::with_seed(11);
    let counts = histogram(&mut p2c, &loads(&[0, 5, 10]), 3_000);
    // Backend 0 wins every draw it is in (2/3), backend 1 only against 2 (1/3), 2 never.
    assert!(
        counts[0] > 1_800 && counts[1] > 800 && counts[2] == 0,
        "{counts:?}"
    );
}

#[test]
fn unhealthy_backends_are_never_picked() {
    let mut p2c = PowerOfTwo::with_seed(3);
    let backends = Backends::from([
        backend(false, 0),
        backend(true, 5),
        backend(false, 0),
        backend(true, 5),
    ]);
    let counts = histogram(&mut p2c, &backends, 500);
    assert_eq!((counts[0], counts[2]), (0, 0), "{counts:?}");
    assert!(counts[1] > 0 && counts[3] > 0, "{counts:?}");
}

#[test]
fn a_single_healthy_backend_is_always_picked() {
    let mut p2c = PowerOfTwo::with_seed(1);
    let backends = Backends::from([backend(false, 0), backend(true, 50)]);
    assert_eq!(histogram(&mut p2c, &backends, 50), [0, 50]);
}

#[test]
fn all_unhealthy_means_no_opinion() {
    let mut p2c = PowerOfTwo::with_seed(1);
    let backends = Backends::from([backend(false, 0), backend(false, 0)]);
    assert_eq!(
        choose(&mut p2c, &backends, &first_attempt()),
        Decision::NoOpinion
    );
    assert_eq!(
        choose(&mut p2c, &Backends::default(), &first_attempt()),
        Decision::NoOpinion
    );
}

#[test]
fn retry_avoids_the_failed_backend() {
    let mut p2c = PowerOfTwo::with_seed(5);
    let backends = loads(&[0, 4, 4]);
    for _ in 0..200 {
        let pick = picked(&choose(&mut p2c, &backends, &retry(&[0])));
        assert!(matches!(pick, Some(1 | 2)), "{pick:?}");
    }
}

#[test]
fn retry_reuses_a_tried_backend_when_it_is_the_only_healthy_one() {
    let mut p2c = PowerOfTwo::with_seed(5);
    let backends = Backends::from([backend(true, 0), backend(false, 0)]);
    assert_eq!(picked(&choose(&mut p2c, &backends, &retry(&[0]))), Some(0));
}

#[test]
fn empty_configuration_is_accepted_and_anything_else_refused() {
    assert!(PowerOfTwo::init("{}").is_ok());
    assert!(PowerOfTwo::init(r#"{"seed": 1}"#).is_err());
}
