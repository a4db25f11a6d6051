//! Unit tests of the test router's modes, run natively with `cargo test -p test_router`.

use lbx_guest::testkit::{
    FakeRequest, all_healthy, answered, attempt_order, deliver, downstream_header, expect_pick,
    failed, first_attempt, loads, picked, rejected, retry, upstream_header,
};
use lbx_guest::{Decision, Fault, Outcome, Router, kv};
use serde_json::Value;

use crate::{Mode, TestRouter};

fn choose(router: &mut TestRouter, req: &FakeRequest) -> Decision {
    router.choose(req, &all_healthy(3), &first_attempt())
}

#[test]
fn count_mode_counts_in_the_store_and_reports_it() {
    kv::clear();
    let mut router = TestRouter::init("{\"mode\":\"count\"}").unwrap();
    let req = FakeRequest::get("/");
    for expected in 1..=3 {
        let decision = router.choose(&req, &all_healthy(2), &first_attempt());
        assert_eq!(picked(&decision), Some(0));
        let expected = expected.to_string();
        assert_eq!(
            downstream_header(&decision, "x-request-number"),
            Some(expected.as_str())
        );
    }
}

#[test]
fn config_is_read_and_unknown_modes_and_keys_are_refused() {
    let router = TestRouter::init("{\"fail_first\":4,\"mode\":\"loop\"}").unwrap();
    assert_eq!((router.mode, router.settings.fail_first), (Mode::Loop, 4));
    assert_eq!(
        TestRouter::init("{\"mode\":\"fly\"}").unwrap_err(),
        "unknown mode \"fly\""
    );
    assert_eq!(
        TestRouter::init("{\"outcomes\":\"hear\"}").unwrap_err(),
        "unknown outcomes \"hear\""
    );
    assert!(TestRouter::init("{\"fallback\":[1]}").is_err());
}

#[test]
fn picks_carry_the_configured_options_exactly_as_given() {
    let config = r#"{"backend":7,"fallbacks":[2,0,2,9],"retry_on":[503,429],"rewrite":"/a\r\nx: y","tag":42}"#;
    let mut router = TestRouter::init(config).unwrap();
    let decision = choose(&mut router, &FakeRequest::get("/"));
    assert_eq!(attempt_order(&decision), [7, 2, 0, 2, 9]);
    let pick = expect_pick(&decision);
    assert_eq!(pick.retry_on, [503, 429]);
    assert_eq!(pick.rewrite.as_deref(), Some("/a\r\nx: y"));
    assert_eq!(pick.tag, 42);
}

#[test]
fn without_options_a_pick_is_the_first_candidate_and_nothing_more() {
    let mut router = TestRouter::init("{}").unwrap();
    let decision = router.choose(&FakeRequest::get("/"), &all_healthy(3), &retry(&[0]));
    let pick = expect_pick(&decision);
    assert_eq!(attempt_order(&decision), [1]);
    assert_eq!(
        (pick.retry_on.len(), pick.rewrite.as_ref(), pick.tag),
        (0, None, 0)
    );
    assert!(!router.wants_outcomes());
}

#[test]
fn the_trial_request_gets_a_plain_pick() {
    let config = r#"{"fallbacks":[5],"tag":1,"report":true,"fail_first":3,"mode":"count"}"#;
    let mut router = TestRouter::init(config).unwrap();
    let trial = FakeRequest::get("/").authority("lbx-trial.invalid");
    assert_eq!(choose(&mut router, &trial), lbx_guest::pick(0));
}

#[test]
fn no_opinion_mode_leaves_the_choice_to_lbx() {
    let mut router = TestRouter::init(r#"{"mode":"no_opinion"}"#).unwrap();
    assert_eq!(
        choose(&mut router, &FakeRequest::get("/")),
        lbx_guest::no_opinion()
    );
}

#[test]
fn recorded_outcomes_are_stored_logged_and_shown_on_later_picks() {
    kv::clear();
    let mut router = TestRouter::init(r#"{"outcomes":"record","tag":7}"#).unwrap();
    let first = choose(&mut router, &FakeRequest::get("/"));
    assert_eq!(downstream_header(&first, "x-test-outcomes"), Some("0"));
    assert_eq!(downstream_header(&first, "x-test-last-outcome"), None);

    let outcome = Outcome {
        tag: 7,
        bytes_down: 12,
        first_byte_us: Some(850),
        total_us: 900,
        ..answered(0, 200, 800)
    };
    assert!(deliver(&mut router, &outcome));
    assert!(deliver(
        &mut router,
        &Outcome {
            attempt: 1,
            ..failed(2, Fault::Backend)
        }
    ));
    let line = String::from_utf8(kv::get("outcome/1").unwrap()).unwrap();
    assert_eq!(
        line,
        r#"{"test_router":"outcome","n":1,"backend":0,"status":200,"fault":null,"ttfb_us":800,"first_byte_us":850,"total_us":900,"bytes_up":0,"bytes_down":12,"attempt":0,"tag":7}"#
    );
    let second = String::from_utf8(kv::get("outcome/2").unwrap()).unwrap();
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(
        (second["fault"].as_str(), second["status"].is_null()),
        (Some("backend"), true)
    );

    let later = choose(&mut router, &FakeRequest::get("/"));
    assert_eq!(downstream_header(&later, "x-test-outcomes"), Some("2"));
    let last = downstream_header(&later, "x-test-last-outcome").unwrap();
    assert_eq!(serde_json::from_str::<Value>(last).unwrap(), second);
}

#[test]
#[should_panic(expected = "panicking on purpose in on-outcome")]
fn outcomes_panic_asks_for_outcomes_and_panics_on_one() {
    let mut router = TestRouter::init(r#"{"outcomes":"panic"}"#).unwrap();
    deliver(&mut router, &answered(0, 200, 1));
}

#[test]
fn report_tells_the_backend_what_the_plugin_heard() {
    let mut router = TestRouter::init(r#"{"report":true}"#).unwrap();
    let backends =
        loads(&[0, 0])
            .with_signals(&["queue", "kv"])
            .scraped(1, 250.0, &[3.0, f64::NAN]);
    let req = FakeRequest::post("/v1/chat").body(br#"{"model":"llama","messages":[{"#);
    let decision = router.choose(&req, &backends, &retry(&[1]));
    assert_eq!(
        upstream_header(&decision, "x-test-body-prefix-len"),
        Some("30")
    );
    assert_eq!(
        upstream_header(&decision, "x-test-body-model"),
        Some("llama")
    );
    assert_eq!(upstream_header(&decision, "x-test-attempt"), Some("1"));
    assert_eq!(upstream_header(&decision, "x-test-tried"), Some("1"));
    assert_eq!(upstream_header(&decision, "x-test-now-us"), Some("0"));
    let signals: Value =
        serde_json::from_str(upstream_header(&decision, "x-test-signals").unwrap()).unwrap();
    assert_eq!(
        signals,
        serde_json::json!({
            "names": ["queue", "kv"],
            "backends": [
                {"age_ms": null, "values": [null, null]},
                {"age_ms": 250.0, "values": [3.0, null]},
            ],
        })
    );

    let plain = router.choose(&FakeRequest::get("/"), &all_healthy(1), &first_attempt());
    assert_eq!(
        upstream_header(&plain, "x-test-body-prefix-len"),
        Some("none")
    );
    assert_eq!(upstream_header(&plain, "x-test-body-model"), None);
    assert_eq!(
        upstream_header(&plain, "x-test-signals"),
        Some(r#"{"backends":[{"age_ms":null,"values":[]}],"names":[]}"#)
    );
}

#[test]
fn reject_answers_with_the_status_and_headers_configured() {
    kv::clear();
    let mut router =
        TestRouter::init(r#"{"reject":429,"reject_headers":[["retry-after","2"]]}"#).unwrap();
    let decision = choose(&mut router, &FakeRequest::get("/"));
    assert_eq!(rejected(&decision), Some(429));
    assert_eq!(downstream_header(&decision, "retry-after"), Some("2"));
}
