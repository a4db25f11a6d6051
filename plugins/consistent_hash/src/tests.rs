//! Unit tests of the ring and of bounded loads, run natively with `cargo test -p consistent_hash`.

use super::*;
use lbx_guest::testkit::{FakeRequest, all_healthy, backend_info, first_attempt, loads, picked};

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("backend-{i}")).collect()
}

fn owners(ring: &Ring, keys: &[String]) -> Vec<usize> {
    keys.iter()
        .map(|k| {
            ring.lookup(lbx_guest::stable_hash(k.as_bytes()), |_| true)
                .unwrap()
        })
        .collect()
}

#[test]
fn adding_a_sixth_backend_moves_at_most_a_sixth_of_10000_keys_plus_5_percent() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let five = ids(5);
    let six = ids(6);
    let before = owners(&Ring::new(five.iter().map(String::as_str)), &keys);
    let after = owners(&Ring::new(six.iter().map(String::as_str)), &keys);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let share = moved as f64 / keys.len() as f64;
    assert!(share <= 1.0 / 6.0 + 0.05, "moved {share}");
    // Every key that moved went to the new backend.
    assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == 5));
    // And the five shares stay reasonably even.
    for backend in 0..5 {
        let count = before.iter().filter(|&&o| o == backend).count();
        assert!(
            (1_500..2_500).contains(&count),
            "backend {backend}: {count}"
        );
    }
}

#[test]
fn the_same_key_sticks_and_a_down_backend_moves_only_its_own_keys() {
    let mut router = ConsistentHash::init(r#"{"key":"header:X-User"}"#).unwrap();
    router.backends_changed(&[
        backend_info("a", "a:80"),
        backend_info("b", "b:80"),
        backend_info("c", "c:80"),
    ]);
    let all = all_healthy(3);
    let req = |user: &str| FakeRequest::get("/").header("x-user", user);
    let choose = |router: &mut ConsistentHash, user: &str, backends: &Backends| {
        picked(&router.choose(&req(user), backends, &first_attempt())).unwrap()
    };
    let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    let home: Vec<usize> = users.iter().map(|u| choose(&mut router, u, &all)).collect();
    assert_eq!(
        home,
        users
            .iter()
            .map(|u| choose(&mut router, u, &all))
            .collect::<Vec<_>>()
    );

    let mut b_down = all.clone();
    b_down[1].healthy = false;
    for (user, &was) in users.iter().zip(&home) {
        let now = choose(&mut router, user, &b_down);
        if was != 1 {
            assert_eq!(now, was, "only keys of the down backend move");
        } else {
            assert_ne!(now, 1);
        }
    }
    // No key: the host decides.
    let anonymous = FakeRequest::get("/");
    assert_eq!(
        router.choose(&anonymous, &all, &first_attempt()),
        lbx_guest::no_opinion()
    );
}

/// A bounded router over backends a, b, c keyed by `x-user`.
fn bounded(factor: &str) -> ConsistentHash {
    let config = format!(r#"{{"key":"header:x-user","balance_factor":{factor}}}"#);
    let mut router = ConsistentHash::init(&config).unwrap();
    router.backends_changed(&[
        backend_info("a", "a:80"),
        backend_info("b", "b:80"),
        backend_info("c", "c:80"),
    ]);
    router
}

fn route(router: &mut ConsistentHash, user: &str, backends: &Backends) -> usize {
    let req = FakeRequest::get("/").header("x-user", user);
    picked(&router.choose(&req, backends, &first_attempt())).unwrap()
}

/// The backends of `user`'s key in clockwise order from its home.
fn clockwise(router: &ConsistentHash, user: &str) -> Vec<usize> {
    let hash = lbx_guest::stable_hash(user.as_bytes());
    let mut order = Vec::new();
    while let Some(next) = router.ring.lookup(hash, |i| !order.contains(&i)) {
        order.push(next);
    }
    order
}

#[test]
fn a_key_spills_clockwise_past_full_backends_and_returns_when_home_has_room() {
    let mut router = bounded("1.25");
    let order = clockwise(&router, "u1");
    let (home, next, last) = (order[0], order[1], order[2]);
    let mut load = [0; 3];
    // 20 in flight between 3, plus this request: capacity ⌈1.25 × 21 / 3⌉ = 9.
    load[home] = 10;
    load[next] = 10;
    assert_eq!(route(&mut router, "u1", &loads(&load)), last);
    // 10 in flight: capacity ⌈1.25 × 11 / 3⌉ = 5.
    load[next] = 0;
    assert_eq!(route(&mut router, "u1", &loads(&load)), next);
    // 7 + 4 + 4 in flight: capacity ⌈1.25 × 16 / 3⌉ = 7, which home would exceed.
    load = [4; 3];
    load[home] = 7;
    assert_eq!(route(&mut router, "u1", &loads(&load)), next);
    // One request fewer at home: capacity ⌈1.25 × 15 / 3⌉ = 7, and the key is back.
    load[home] = 6;
    assert_eq!(route(&mut router, "u1", &loads(&load)), home);
}

#[test]
fn no_key_moves_when_loads_are_even() {
    let mut unbounded = ConsistentHash::init(r#"{"key":"header:x-user"}"#).unwrap();
    unbounded.backends_changed(&[
        backend_info("a", "a:80"),
        backend_info("b", "b:80"),
        backend_info("c", "c:80"),
    ]);
    let mut router = bounded("1");
    for even in [0, 1, 7] {
        let backends = loads(&[even; 3]);
        for user in (0..1_000).map(|i| format!("user-{i}")) {
            assert_eq!(
                route(&mut router, &user, &backends),
                route(&mut unbounded, &user, &backends),
                "{user} at load {even}"
            );
        }
    }
}

#[test]
fn a_hot_key_overflows_to_other_backends_within_the_bound() {
    let mut router = bounded("1.25");
    let mut backends = all_healthy(3);
    // 300 requests of one key arrive and none has finished yet.
    for _ in 0..300 {
        let index = route(&mut router, "hot", &backends);
        backends[index].in_flight += 1;
    }
    let in_flight: Vec<u32> = backends.iter().map(|b| b.in_flight).collect();
    assert!(in_flight.iter().all(|&n| n <= 125), "{in_flight:?}");
    assert_eq!(in_flight.iter().sum::<u32>(), 300);
}

#[test]
fn down_backends_take_no_share_of_the_average() {
    let mut router = bounded("1.25");
    let order = clockwise(&router, "u2");
    let mut backends = loads(&[0; 3]);
    backends[order[2]].healthy = false;
    backends[order[2]].in_flight = 100;
    backends[order[0]].in_flight = 3;
    // Candidates: 3 + 0 in flight, plus this request: capacity ⌈1.25 × 4 / 2⌉ = 3 (with the
    // down backend's 100 it would be 44, and the key would stay home).
    assert_eq!(route(&mut router, "u2", &backends), order[1]);
    // 1 + 0 in flight: capacity ⌈1.25 × 2 / 2⌉ = 2.
    backends[order[0]].in_flight = 1;
    assert_eq!(route(&mut router, "u2", &backends), order[0]);
}

#[test]
fn a_balance_factor_below_1_or_not_a_number_is_refused_naming_the_key() {
    for bad in ["0.9", "-1", "null", "1e400"] {
        let config = format!(r#"{{"balance_factor":{bad}}}"#);
        let err = ConsistentHash::init(&config).unwrap_err();
        assert!(
            err.starts_with("plugin.config.balance_factor: "),
            "{bad}: {err}"
        );
    }
    let err = ConsistentHash::init(r#"{"balance_factor":"1.25"}"#).unwrap_err();
    assert!(
        err.starts_with("plugin.config.balance_factor: invalid type"),
        "{err}"
    );
    assert!(ConsistentHash::init(r#"{"balance_factor":1}"#).is_ok());
    assert!(ConsistentHash::init(r#"{"balance_factor":1.25}"#).is_ok());
}

#[test]
fn capacities_are_exact_for_decimal_factors() {
    let capacity =
        |factor, total, count| BalanceFactor::parse(factor).unwrap().capacity(total, count);
    assert_eq!(capacity(1.1, 9, 1), 11);
    assert_eq!(capacity(1.25, 20, 3), 9);
    assert_eq!(capacity(1.0, 5, 3), 2);
}

#[test]
fn keys_are_validated() {
    assert!(ConsistentHash::init(r#"{"key":"path"}"#).is_ok());
    assert!(ConsistentHash::init(r#"{"key":"cookie:session"}"#).is_ok());
    let err = ConsistentHash::init(r#"{"key":"body"}"#).unwrap_err();
    assert!(
        err.starts_with("plugin.config.key: \"body\" is not a key"),
        "{err}"
    );
}
