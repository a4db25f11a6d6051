//! The router's behaviour through the SDK's native test kit (`cargo test -p llm_router`): the
//! host's key-value store is the test kit's, private to each test, and shared by the routers
//! one test creates, as lbx's store is by a plugin's instances and versions.

use std::time::Duration;

use lbx_guest::testkit::{
    FakeRequest, advance_clock, all_healthy, answered, attempt_order, deliver, expect_pick,
    labeled, loads, outcome_of, picked, retry,
};
use lbx_guest::{BackendInfo, Backends, Decision, Outcome, Router};
use serde_json::json;

use crate::LlmRouter;

const VLLM: [&str; 2] = ["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"];

fn ids(n: usize) -> Vec<BackendInfo> {
    (0..n).map(|i| labeled(&format!("gpu-{i}"), &[])).collect()
}

fn router(config: &str, backends: &[BackendInfo]) -> LlmRouter {
    new_router(config, backends)
}

fn new_router(config: &str, backends: &[BackendInfo]) -> LlmRouter {
    let mut router = LlmRouter::init(config).expect("config accepted");
    router.backends_changed(backends);
    router
}

/// A chat completion request for `model` with these `(role, content)` messages.
fn chat(model: &str, messages: &[(&str, &str)]) -> FakeRequest {
    let messages: Vec<_> = messages
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let body = json!({"model": model, "messages": messages, "stream": true});
    FakeRequest::post("/v1/chat/completions").body(body.to_string())
}

/// A system prompt several blocks long, different for each `n`.
fn system(n: u32) -> String {
    format!("You are assistant number {n}. ").repeat(12)
}

/// The first turn of conversation `n`, and its second turn.
fn turns(n: u32) -> (FakeRequest, FakeRequest) {
    let question =
        format!("Conversation {n}: tell me about the history of load balancing, please.");
    let first = chat("m", &[("system", &system(n)), ("user", &question)]);
    let second = chat(
        "m",
        &[
            ("system", &system(n)),
            ("user", &question),
            (
                "assistant",
                "Round robin came first, then least connections, and much later, prefix-aware routing for LLMs.",
            ),
            ("user", "And what came after that?"),
        ],
    );
    (first, second)
}

fn choose(router: &mut LlmRouter, req: &FakeRequest, backends: &Backends) -> Decision {
    router.choose(req, backends, &lbx_guest::testkit::first_attempt())
}

fn pick(router: &mut LlmRouter, req: &FakeRequest, backends: &Backends) -> usize {
    picked(&choose(router, req, backends)).expect("a pick")
}

// ---- model filter ---------------------------------------------------------------------------

fn model_pool() -> Vec<BackendInfo> {
    vec![
        labeled("a", &[("model", "llama-3-8b")]),
        labeled("b", &[("model", "llama-3-8b,mistral-7b")]),
        labeled("c", &[("model", "mistral-7b")]),
    ]
}

#[test]
fn a_model_goes_only_to_the_backends_serving_it_and_its_fallbacks_too() {
    let mut router = router("{}", &model_pool());
    let backends = all_healthy(3);
    for _ in 0..20 {
        let llama = choose(
            &mut router,
            &chat("llama-3-8b", &[("user", "hi")]),
            &backends,
        );
        let order = attempt_order(&llama);
        assert!(order.iter().all(|&i| i == 0 || i == 1), "{order:?}");
        let mistral = choose(
            &mut router,
            &chat("mistral-7b", &[("user", "hi")]),
            &backends,
        );
        let order = attempt_order(&mistral);
        assert!(order.iter().all(|&i| i == 1 || i == 2), "{order:?}");
    }
}

#[test]
fn a_model_no_backend_serves_is_rejected_with_the_configured_status() {
    let backends = all_healthy(3);
    let req = chat("gpt-4", &[("user", "hi")]);
    let mut default = router("{}", &model_pool());
    assert_eq!(
        choose(&mut default, &req, &backends),
        lbx_guest::reject(404)
    );
    let mut configured = router(r#"{"unknown_model_status": 400}"#, &model_pool());
    assert_eq!(
        choose(&mut configured, &req, &backends),
        lbx_guest::reject(400)
    );
}

#[test]
fn backends_without_a_model_label_serve_any_model() {
    let mut backends_info = model_pool();
    backends_info.push(labeled("any", &[]));
    let mut router = router("{}", &backends_info);
    let req = chat("gpt-4", &[("user", "hi")]);
    assert_eq!(pick(&mut router, &req, &all_healthy(4)), 3);
}

#[test]
fn a_model_whose_backends_are_all_down_is_refused_rather_than_sent_to_another_model() {
    let mut router = router("{}", &model_pool());
    let mut backends = all_healthy(3);
    backends[2].healthy = false;
    backends[1].healthy = false;
    let req = chat("mistral-7b", &[("user", "hi")]);
    assert_eq!(choose(&mut router, &req, &backends), lbx_guest::reject(503));
}

#[test]
fn a_retry_goes_to_another_backend_of_the_same_model() {
    let mut router = router("{}", &model_pool());
    let req = chat("llama-3-8b", &[("user", "hi")]);
    let decision = router.choose(&req, &all_healthy(3), &retry(&[0]));
    assert_eq!(attempt_order(&decision), [1]);
}

// ---- prefix affinity ------------------------------------------------------------------------

#[test]
fn the_next_turn_of_a_conversation_goes_back_to_the_backend_that_has_its_prefix() {
    let mut router = router("{}", &ids(4));
    let (first, second) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(4));
    // Home is now a little busier than the others: the cached prefix still wins.
    let mut in_flight = [0; 4];
    in_flight[home] = 3;
    for _ in 0..5 {
        assert_eq!(pick(&mut router, &second, &loads(&in_flight)), home);
        assert_eq!(pick(&mut router, &first, &loads(&in_flight)), home);
    }
    // Another conversation has no reason to go there.
    let (other, _) = turns(2);
    assert_ne!(pick(&mut router, &other, &loads(&in_flight)), home);
}

#[test]
fn affinity_gives_way_when_its_backend_is_much_busier() {
    let mut router = router("{}", &ids(2));
    let (first, second) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(2));
    let mut in_flight = [0; 2];
    in_flight[home] = 40;
    assert_ne!(pick(&mut router, &second, &loads(&in_flight)), home);
}

#[test]
fn the_index_is_shared_by_instances_and_survives_a_new_version_of_the_plugin() {
    let (first, second) = turns(1);
    let mut old = router("{}", &ids(4));
    let home = pick(&mut old, &first, &all_healthy(4));
    drop(old);
    // A new instance (another worker, or the version a hot swap loads) knows the prefix.
    let mut new = router("{}", &ids(4));
    let mut in_flight = [1; 4];
    in_flight[home] = 3;
    assert_eq!(pick(&mut new, &second, &loads(&in_flight)), home);
}

#[test]
fn affinity_follows_the_backend_id_when_the_backend_list_is_reordered() {
    let (first, second) = turns(1);
    let mut router = router("{}", &ids(3));
    let home = pick(&mut router, &first, &all_healthy(3));
    let mut reordered = ids(3);
    reordered.reverse();
    router.backends_changed(&reordered);
    let mut in_flight = [0; 3];
    in_flight[2 - home] = 2;
    assert_eq!(pick(&mut router, &second, &loads(&in_flight)), 2 - home);
}

#[test]
fn a_prefix_is_forgotten_after_capacity_other_prompts() {
    let config = r#"{"prefix": {"capacity": 16}}"#;
    let mut router = router(config, &ids(2));
    let (first, second) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(2));
    let mut in_flight = [0; 2];
    in_flight[home] = 1;
    assert_eq!(
        pick(&mut router, &second, &loads(&in_flight)),
        home,
        "remembered"
    );
    for n in 2..20 {
        pick(&mut router, &turns(n).0, &all_healthy(2));
    }
    assert_ne!(
        pick(&mut router, &second, &loads(&in_flight)),
        home,
        "forgotten"
    );
}

#[test]
fn a_body_cut_at_the_prefix_limit_still_finds_its_conversation() {
    let mut router = router("{}", &ids(3));
    let (first, _) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(3));
    // The next turn, cut in the middle of its last message as lbx's body_prefix would.
    let (_, second) = turns(1);
    let whole = lbx_guest::Request::body_prefix(&second).unwrap();
    let cut = FakeRequest::post("/v1/chat/completions").body(&whole[..whole.len() - 40]);
    let mut in_flight = [0; 3];
    in_flight[home] = 2;
    assert_eq!(pick(&mut router, &cut, &loads(&in_flight)), home);
}

#[test]
fn escaped_and_raw_bodies_of_the_same_conversation_share_its_prefix() {
    let mut router = router("{}", &ids(3));
    let text =
        "Résumé of the 中文 conversation, with quotes \"inside\" and a newline\n. ".repeat(4);
    let raw = chat("m", &[("user", &text)]);
    let home = pick(&mut router, &raw, &all_healthy(3));
    let escaped: String = json!({"model": "m", "messages": [{"role": "user", "content": text}]})
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\u{:04x}", c as u32)
            }
        })
        .collect();
    let escaped = FakeRequest::post("/v1/chat/completions").body(escaped);
    let mut in_flight = [0; 3];
    in_flight[home] = 2;
    assert_eq!(pick(&mut router, &escaped, &loads(&in_flight)), home);
}

#[test]
fn garbage_bodies_and_other_paths_are_routed_by_load_never_refused() {
    let mut router = router("{}", &model_pool());
    let backends = loads(&[4, 0, 2]);
    for body in [
        &b"not json at all"[..],
        b"{",
        b"\xff\xfe\x00",
        b"[]",
        br#"{"model": 7}"#,
        b"",
    ] {
        let req = FakeRequest::post("/v1/chat/completions").body(body);
        assert_eq!(pick(&mut router, &req, &backends), 1, "{body:?}");
    }
    // Only the configured paths are read: an unknown model elsewhere is not refused.
    let other = FakeRequest::post("/v1/embeddings").body(r#"{"model":"gpt-4"}"#);
    assert_eq!(pick(&mut router, &other, &backends), 1);
    assert_eq!(
        pick(&mut router, &FakeRequest::get("/v1/models"), &backends),
        1
    );
}

// ---- signals and saturation -----------------------------------------------------------------

#[test]
fn the_scraped_queue_and_kv_cache_are_found_by_name_in_any_order() {
    let mut router = router("{}", &ids(3));
    let req = chat("m", &[("user", "hi")]);
    let reversed = [VLLM[1], VLLM[0]];
    let backends = all_healthy(3)
        .with_signals(&reversed)
        .scraped(0, 100.0, &[0.1, 3.0])
        .scraped(1, 100.0, &[0.7, 0.0])
        .scraped(2, 100.0, &[0.1, 0.0]);
    // 2 is idle; 1 has 70% of its KV cache in use (−2 × 0.7); 0 has 3 waiting (−4 × 3).
    assert_eq!(
        attempt_order(&choose(&mut router, &req, &backends)),
        [2, 1, 0]
    );
}

#[test]
fn a_saturated_backend_is_avoided_even_with_the_prefix() {
    let mut router = router("{}", &ids(2));
    let (first, second) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(2));
    let mut waiting = [0.0; 2];
    waiting[home] = 5.0;
    let backends = all_healthy(2)
        .with_signals(&VLLM[..1])
        .scraped(0, 50.0, &[waiting[0]])
        .scraped(1, 50.0, &[waiting[1]]);
    assert_ne!(pick(&mut router, &second, &backends), home);
}

#[test]
fn a_conversation_stays_with_a_busy_replica_until_requests_wait_there() {
    let mut router = router("{}", &ids(2));
    let (first, second) = turns(1);
    let home = pick(&mut router, &first, &all_healthy(2));
    let scraped = |in_flight: [u32; 2], waiting: [f64; 2]| {
        loads(&in_flight)
            .with_signals(&VLLM[..1])
            .scraped(0, 10.0, &[waiting[0]])
            .scraped(1, 10.0, &[waiting[1]])
    };
    let mut in_flight = [0; 2];
    // Four running at home, none waiting: half the prompt's blocks held there (the index sees
    // the first turn's 4 of the second's 9) are worth more than a free replica.
    in_flight[home] = 4;
    assert_eq!(
        pick(&mut router, &second, &scraped(in_flight, [0.0; 2])),
        home
    );
    // One waiting there: a place in a queue costs more than recomputing the prefix.
    let mut waiting = [0.0; 2];
    waiting[home] = 1.0;
    assert_ne!(
        pick(&mut router, &second, &scraped(in_flight, waiting)),
        home
    );
}

#[test]
fn requests_sent_since_the_scrape_count_toward_saturation() {
    let mut router = router(r#"{"weights": {"queue": 0}}"#, &ids(2));
    let req = chat("m", &[("user", "hi")]);
    // Same scrape throughout: backend 0 had 3 waiting, backend 1 a fuller KV cache.
    let scraped = |in_flight: &[u32]| {
        loads(in_flight)
            .with_signals(&VLLM)
            .scraped(0, 10.0, &[3.0, 0.0])
            .scraped(1, 10.0, &[4.0, 0.1])
    };
    for _ in 0..2 {
        assert_eq!(pick(&mut router, &req, &scraped(&[0, 0])), 0);
    }
    // Two more in flight at backend 0 since the scrape: 5 waiting now, saturated.
    assert_eq!(pick(&mut router, &req, &scraped(&[2, 0])), 1);
}

#[test]
fn when_every_backend_is_saturated_the_least_loaded_is_picked() {
    let mut router = router("{}", &ids(3));
    let backends = loads(&[0, 0, 0])
        .with_signals(&VLLM)
        .scraped(0, 10.0, &[9.0, 0.2])
        .scraped(1, 10.0, &[6.0, 0.2])
        .scraped(2, 10.0, &[2.0, 0.95]);
    let decision = choose(&mut router, &chat("m", &[("user", "hi")]), &backends);
    assert_eq!(attempt_order(&decision), [2, 1, 0]);
}

#[test]
fn with_shedding_a_request_finding_every_backend_saturated_is_refused() {
    let mut router = router(r#"{"saturation": {"shed": true}}"#, &ids(2));
    let req = chat("m", &[("user", "hi")]);
    let saturated = all_healthy(2)
        .with_signals(&VLLM)
        .scraped(0, 10.0, &[5.0, 0.1])
        .scraped(1, 10.0, &[0.0, 0.85]);
    assert_eq!(
        choose(&mut router, &req, &saturated),
        lbx_guest::reject(429).downstream_header("retry-after", "1")
    );
    // One with room is enough.
    let room = all_healthy(2)
        .with_signals(&VLLM)
        .scraped(0, 10.0, &[5.0, 0.1])
        .scraped(1, 10.0, &[0.0, 0.5]);
    assert_eq!(pick(&mut router, &req, &room), 1);
    let mut custom = new_router(
        r#"{"saturation": {"shed": true, "shed_status": 503, "retry_after": 0}}"#,
        &ids(2),
    );
    assert_eq!(
        choose(&mut custom, &req, &saturated),
        lbx_guest::reject(503),
        "no retry-after when it is 0"
    );
}

#[test]
fn stale_scrapes_are_ignored() {
    let mut router = router("{}", &ids(2));
    let req = chat("m", &[("user", "hi")]);
    let backends = all_healthy(2)
        .with_signals(&VLLM[..1])
        .scraped(0, 60_000.0, &[50.0])
        .scraped(1, 10.0, &[1.0]);
    assert_eq!(pick(&mut router, &req, &backends), 0);
}

// ---- ranking, fallbacks, feedback -----------------------------------------------------------

#[test]
fn without_signals_in_flight_counts_decide_and_fallbacks_follow_the_score() {
    let mut router = router("{}", &ids(4));
    let req = chat("m", &[("user", "hi")]);
    let decision = choose(&mut router, &req, &loads(&[3, 0, 5, 1]));
    assert_eq!(
        attempt_order(&decision),
        [1, 3, 0],
        "two fallbacks by default"
    );
    let mut one = new_router(r#"{"fallbacks": 1}"#, &ids(4));
    assert_eq!(
        attempt_order(&choose(&mut one, &req, &loads(&[3, 0, 5, 1]))),
        [1, 3]
    );
    let mut none = new_router(r#"{"fallbacks": 0}"#, &ids(4));
    assert!(
        expect_pick(&choose(&mut none, &req, &loads(&[3, 0, 5, 1])))
            .fallbacks
            .is_empty()
    );
}

#[test]
fn idle_backends_take_turns_with_new_conversations() {
    let mut router = router("{}", &ids(3));
    let picks: Vec<usize> = (10..16)
        .map(|n| pick(&mut router, &turns(n).0, &all_healthy(3)))
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
}

/// Serves `n` requests, each answered after `ttfb_us(backend)`, 10 ms apart.
fn serve(router: &mut LlmRouter, backends: &Backends, n: usize, ttfb_us: impl Fn(usize) -> u64) {
    let req = chat("m", &[("user", "hi")]);
    for _ in 0..n {
        let decision = choose(router, &req, backends);
        let backend = picked(&decision).unwrap();
        advance_clock(Duration::from_millis(10));
        assert!(deliver(
            router,
            &outcome_of(&decision, 200, ttfb_us(backend))
        ));
    }
}

#[test]
fn feedback_moves_traffic_off_a_backend_slow_to_first_token() {
    let mut router = router("{}", &ids(2));
    let req = chat("m", &[("user", "hi")]);
    // Backend 0 answers 4x slower; both are equally loaded by queue.
    serve(&mut router, &all_healthy(2), 20, |b| {
        if b == 0 { 800_000 } else { 200_000 }
    });
    for _ in 0..10 {
        assert_eq!(pick(&mut router, &req, &loads(&[0, 1])), 1);
    }
    // Not forever: a minute later backend 0 gets another chance.
    advance_clock(Duration::from_secs(60));
    assert_eq!(pick(&mut router, &req, &loads(&[0, 1])), 0);
}

#[test]
fn feedback_reads_the_first_token_of_a_stream_not_its_head() {
    let mut router = router("{}", &ids(2));
    let req = chat("m", &[("user", "hi")]);
    // Both send the head at once; backend 0's first token comes 4x later.
    for _ in 0..20 {
        let decision = choose(&mut router, &req, &all_healthy(2));
        let backend = picked(&decision).unwrap();
        advance_clock(Duration::from_millis(10));
        let first_token_us = if backend == 0 { 800_000 } else { 200_000 };
        assert!(deliver(
            &mut router,
            &Outcome {
                first_byte_us: Some(first_token_us),
                ..outcome_of(&decision, 200, 1_000)
            }
        ));
    }
    for _ in 0..10 {
        assert_eq!(pick(&mut router, &req, &loads(&[0, 1])), 1);
    }
}

#[test]
fn errors_and_outcomes_of_another_backend_set_teach_nothing() {
    let mut router = router("{}", &ids(2));
    let req = chat("m", &[("user", "hi")]);
    let decision = choose(&mut router, &req, &all_healthy(2));
    let slow = outcome_of(&decision, 200, 900_000);
    // A 5xx answers fast and says nothing of speed; lbx's fallback (tag 0) is not ours.
    deliver(
        &mut router,
        &Outcome {
            status: Some(503),
            ..slow
        },
    );
    deliver(
        &mut router,
        &answered(picked(&decision).unwrap(), 200, 900_000),
    );
    router.backends_changed(&ids(3)[1..]);
    deliver(&mut router, &slow);
    let picks: Vec<usize> = (0..4)
        .map(|_| pick(&mut router, &req, &all_healthy(2)))
        .collect();
    let zeros = picks.iter().filter(|&&p| p == 0).count();
    assert_eq!(
        zeros, 2,
        "no penalty learned: idle backends take turns: {picks:?}"
    );
}

#[test]
fn with_no_configuration_and_no_body_it_still_routes() {
    let mut router = router("", &ids(3));
    assert!(router.wants_outcomes());
    assert_eq!(
        pick(&mut router, &FakeRequest::get("/"), &loads(&[1, 1, 0])),
        2
    );
    assert!(!router_without_ttft().wants_outcomes());
    assert!(LlmRouter::init(r#"{"weights": {"prefx": 1}}"#).is_err());
}

fn router_without_ttft() -> LlmRouter {
    router(r#"{"weights": {"ttft": 0}}"#, &ids(1))
}
