//! Unit tests of the rules, run natively with `cargo test -p header_router`.

use super::*;
use lbx_guest::testkit::{FakeRequest, all_healthy, expect_pick, first_attempt, labeled, picked};

const CONFIG: &str = r#"{
    "default": {"version": "stable"},
    "rules": [
        {"path_prefix": "/api", "group": {"pool": "api"}},
        {"header": "x-canary", "equals": "1", "group": {"version": "canary"}},
        {"percent": 5.0, "group": {"version": "canary"}}
    ]
}"#;

/// Path rules that strip their prefix, and cookie rules.
const STRIP_AND_COOKIES: &str = r#"{
    "default": {"version": "stable"},
    "rules": [
        {"path_prefix": "/api", "strip_prefix": true, "group": {"pool": "api"}},
        {"path_prefix": "/web/", "strip_prefix": true, "group": {"pool": "web"}},
        {"path_prefix": "/static", "group": {"pool": "web"}},
        {"cookie": "beta", "equals": "yes", "group": {"version": "canary"}},
        {"cookie": "Tester", "group": {"version": "canary"}}
    ]
}"#;

/// 0: web stable, 1: web canary, 2: api stable.
fn router(seed: u64) -> HeaderRouter {
    router_with(CONFIG, seed)
}

/// A router with this configuration over the three backends of [`router`].
fn router_with(config: &str, seed: u64) -> HeaderRouter {
    let mut router = HeaderRouter::with_seed(config, seed).unwrap();
    router.backends_changed(&[
        labeled("web-1", &[("pool", "web"), ("version", "stable")]),
        labeled("web-canary", &[("pool", "web"), ("version", "canary")]),
        labeled("api-1", &[("pool", "api"), ("version", "stable")]),
    ]);
    router
}

fn route(router: &mut HeaderRouter, req: &FakeRequest, backends: &Backends) -> usize {
    picked(&router.choose(req, backends, &first_attempt())).unwrap()
}

#[test]
fn path_and_header_rules_route_to_their_groups() {
    let mut router = router(1);
    let all = all_healthy(3);
    assert_eq!(route(&mut router, &FakeRequest::get("/api/users"), &all), 2);
    let canary = FakeRequest::get("/").header("X-Canary", "1");
    assert_eq!(route(&mut router, &canary, &all), 1);
    // The path rule comes first.
    let both = FakeRequest::get("/api").header("x-canary", "1");
    assert_eq!(route(&mut router, &both, &all), 2);
    // A header with another value does not match.
    let not_canary = FakeRequest::get("/").header("x-canary", "0");
    let stable = (0..100)
        .filter(|_| route(&mut router, &not_canary, &all) == 0)
        .count();
    assert!(stable > 80, "{stable}");
}

#[test]
fn the_percentage_rule_takes_5_percent_within_2_points_over_10000_decisions() {
    let mut router = router(7);
    let all = all_healthy(3);
    let req = FakeRequest::get("/");
    let canary = (0..10_000)
        .filter(|_| route(&mut router, &req, &all) == 1)
        .count();
    let share = canary as f64 / 10_000.0;
    assert!((0.03..=0.07).contains(&share), "canary share {share}");
}

#[test]
fn an_unavailable_group_falls_back_to_the_default_then_to_lbx() {
    let mut router = router(1);
    let mut api_down = all_healthy(3);
    api_down[2].healthy = false;
    assert_eq!(route(&mut router, &FakeRequest::get("/api"), &api_down), 0);
    let mut stable_down = all_healthy(3);
    stable_down[0].healthy = false;
    stable_down[2].healthy = false;
    let decision = router.choose(&FakeRequest::get("/api"), &stable_down, &first_attempt());
    assert_eq!(decision, lbx_guest::no_opinion());
}

#[test]
fn bad_rules_are_refused_with_their_position() {
    let err = HeaderRouter::init(r#"{"rules":[{"group":{"a":"b"}}]}"#).unwrap_err();
    assert!(
        err.starts_with("plugin.config.rules[0]: needs exactly one of"),
        "{err}"
    );
    let err = HeaderRouter::init(r#"{"rules":[{"percent":150,"group":{"a":"b"}}]}"#).unwrap_err();
    assert!(err.contains("percent 150"), "{err}");
    let err = HeaderRouter::init(r#"{"rules":[{"path_prefix":"/","group":{}}]}"#).unwrap_err();
    assert!(err.contains("group is empty"), "{err}");
}

/// The backend and the rewritten target (if any) of a first attempt at `req`.
fn route_and_target(router: &mut HeaderRouter, req: &FakeRequest) -> (usize, Option<String>) {
    let decision = router.choose(req, &all_healthy(3), &first_attempt());
    let pick = expect_pick(&decision);
    (pick.backend as usize, pick.rewrite.clone())
}

#[test]
fn a_stripping_path_rule_hands_the_backend_the_path_without_its_prefix() {
    let mut router = router_with(STRIP_AND_COOKIES, 1);
    let cases = [
        ("/api/users?x=1", 2, "/users?x=1"),
        ("/api/users", 2, "/users"),
        ("/api", 2, "/"),
        ("/api?x=1", 2, "/?x=1"),
        // The prefix ends with `/`: what remains gets one back.
        ("/web/home", 0, "/home"),
        ("/web/", 0, "/"),
    ];
    for (target, backend, stripped) in cases {
        let (chosen, rewrite) = route_and_target(&mut router, &FakeRequest::get(target));
        assert_eq!(
            (chosen, rewrite.as_deref()),
            (backend, Some(stripped)),
            "{target}"
        );
    }
}

#[test]
fn a_path_rule_without_strip_prefix_leaves_the_path_alone() {
    let mut router = router_with(STRIP_AND_COOKIES, 1);
    let (chosen, rewrite) = route_and_target(&mut router, &FakeRequest::get("/static/a.css"));
    assert_eq!((chosen, rewrite), (0, None));
    let mut plain = self::router(1);
    let (chosen, rewrite) = route_and_target(&mut plain, &FakeRequest::get("/api/users"));
    assert_eq!((chosen, rewrite), (2, None));
}

#[test]
fn a_request_that_falls_back_to_the_default_group_keeps_its_path() {
    let mut router = router_with(STRIP_AND_COOKIES, 1);
    let mut api_down = all_healthy(3);
    api_down[2].healthy = false;
    let decision = router.choose(&FakeRequest::get("/api/users"), &api_down, &first_attempt());
    assert_eq!(expect_pick(&decision).backend, 0);
    assert_eq!(expect_pick(&decision).rewrite, None);
}

#[test]
fn cookie_rules_route_by_cookie_value_or_presence() {
    let mut router = router_with(STRIP_AND_COOKIES, 1);
    let all = all_healthy(3);
    let beta = FakeRequest::get("/").cookie("beta", "yes");
    assert_eq!(route(&mut router, &beta, &all), 1);
    let not_beta = FakeRequest::get("/").cookie("beta", "no");
    assert_eq!(route(&mut router, &not_beta, &all), 0);
    let tester = FakeRequest::get("/")
        .cookie("session", "s")
        .cookie("Tester", "");
    assert_eq!(route(&mut router, &tester, &all), 1);
    // Cookie names are case-sensitive, and a header of the same name is not a cookie.
    let other_case = FakeRequest::get("/")
        .cookie("tester", "1")
        .header("Tester", "1");
    assert_eq!(route(&mut router, &other_case, &all), 0);
}

#[test]
fn options_of_another_kind_of_rule_are_refused_with_their_position() {
    let refused = |rule: &str| HeaderRouter::init(&format!(r#"{{"rules":[{rule}]}}"#)).unwrap_err();
    let err = refused(r#"{"path_prefix":"/a","equals":"1","group":{"a":"b"}}"#);
    assert_eq!(
        err,
        "plugin.config.rules[0]: equals goes with header or cookie"
    );
    let err = refused(r#"{"cookie":"c","strip_prefix":true,"group":{"a":"b"}}"#);
    assert_eq!(
        err,
        "plugin.config.rules[0]: strip_prefix goes with path_prefix"
    );
    let err = refused(r#"{"cookie":"c","header":"h","group":{"a":"b"}}"#);
    assert!(
        err.starts_with("plugin.config.rules[0]: needs exactly one of"),
        "{err}"
    );
    let err = refused(r#"{"cookie":1,"group":{"a":"b"}}"#);
    assert!(
        err.starts_with("plugin.config.rules[0].cookie: invalid type"),
        "{err}"
    );
}

#[test]
fn stripping_keeps_an_empty_query_and_an_exact_match_becomes_the_root() {
    assert_eq!(strip("/api", "/api", Some("")), "/?");
    assert_eq!(strip("/api/", "/api", None), "/");
    assert_eq!(strip("/apis/x", "/api", None), "/s/x");
}
