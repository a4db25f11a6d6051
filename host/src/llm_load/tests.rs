//! The workload's promises (same seed, same traffic; turn k a prefix of turn k+1; Poisson
//! arrivals at the asked rate; lengths from the profile), the request body, the settings'
//! checks, the percentile maths, the event-stream decoder and the chunk reader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::chunk::{Chunk, Usage, interpret};
use super::driver::Run;
use super::exchange::{ErrorKind, Outcome, Verdict};
use super::report::percentile;
use super::sse::EventDecoder;
use super::workload::{Arrivals, Role};
use super::*;

fn settings(seed: u64) -> Settings {
    Settings {
        rate: 50.0,
        duration: Duration::from_secs(20),
        seed,
        conversations: 8,
        ..Settings::default()
    }
}

fn plan(settings: &Settings) -> Vec<PlannedRequest> {
    Workload::new(settings).unwrap().collect()
}

#[test]
fn the_same_seed_plans_the_same_requests_at_the_same_offsets() {
    let first = plan(&settings(7));
    assert!(first.len() > 500, "{} requests", first.len());
    assert_eq!(first, plan(&settings(7)));
    let other = plan(&settings(8));
    assert_ne!(first[0].offset, other[0].offset);
    assert_ne!(first[0].messages, other[0].messages);
}

#[test]
fn arrivals_do_not_move_when_the_conversation_settings_change() {
    let offsets = |s: &Settings| plan(s).iter().map(|r| r.offset).collect::<Vec<_>>();
    let more = Settings {
        conversations: 50,
        system_prompts: 1,
        profile: Profile {
            turns: Spread::fixed(2),
            ..Profile::default()
        },
        ..settings(7)
    };
    assert_eq!(offsets(&settings(7)), offsets(&more));
}

#[test]
fn each_turn_is_the_previous_prompt_then_its_answer_then_a_new_user_message() {
    let mut last: BTreeMap<u64, PlannedRequest> = BTreeMap::new();
    let mut follow_ups = 0;
    for request in plan(&settings(3)) {
        if let Some(previous) = last.get(&request.conversation) {
            follow_ups += 1;
            assert_eq!(request.turn, previous.turn + 1);
            let n = previous.messages.len();
            assert_eq!(request.messages[..n], previous.messages[..]);
            assert_eq!(request.messages.len(), n + 2);
            assert_eq!(request.messages[n].role, Role::Assistant);
            assert_eq!(
                text::token_count(&request.messages[n].content),
                u64::from(previous.max_tokens),
                "the answer is as long as the turn before asked for"
            );
            assert_eq!(request.messages[n + 1].role, Role::User);
            assert!(request.prompt_text().starts_with(&previous.prompt_text()));
            assert!(request.offset > previous.offset);
        } else {
            assert_eq!(request.turn, 1, "a conversation's first request is turn 1");
            assert_eq!(request.messages.len(), 2);
        }
        last.insert(request.conversation, request);
    }
    assert!(follow_ups > 200, "only {follow_ups} later turns");
}

#[test]
fn conversations_start_from_a_few_shared_system_prompts() {
    let s = Settings {
        system_prompts: 3,
        ..settings(5)
    };
    let requests = plan(&s);
    let systems: BTreeSet<&str> = requests
        .iter()
        .map(|r| {
            assert_eq!(r.messages[0].role, Role::System);
            &*r.messages[0].content
        })
        .collect();
    assert_eq!(systems.len(), 3);
    for system in systems {
        assert_eq!(text::token_count(system), 1000);
    }
    let conversations: BTreeSet<u64> = requests.iter().map(|r| r.conversation).collect();
    assert!(
        conversations.len() > 20,
        "{} conversations",
        conversations.len()
    );
}

#[test]
fn arrivals_come_at_the_asked_rate_with_exponential_gaps() {
    for (seed, rate) in [(1, 50.0), (2, 5.0), (3, 400.0)] {
        let duration = 100_000.0 / rate;
        let offsets: Vec<f64> = Arrivals::new(seed, rate, Duration::from_secs_f64(duration))
            .map(|d| d.as_secs_f64())
            .collect();
        let measured = offsets.len() as f64 / duration;
        // 100,000 expected arrivals: the standard deviation of the count is 0.3%.
        assert!(
            (measured / rate - 1.0).abs() < 0.015,
            "seed {seed}: {measured}/s for {rate}/s"
        );
        // A Poisson process's gaps are exponential: standard deviation = mean.
        let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.03, "seed {seed}: cv {cv}");
        assert!(offsets.iter().all(|&t| t < duration));
    }
}

#[test]
fn lengths_follow_the_profile() {
    let requests = plan(&Settings {
        duration: Duration::from_secs(200),
        ..settings(11)
    });
    let max_tokens: Vec<f64> = requests.iter().map(|r| f64::from(r.max_tokens)).collect();
    let mean = max_tokens.iter().sum::<f64>() / max_tokens.len() as f64;
    assert!((mean - 300.0).abs() < 15.0, "mean max_tokens {mean}");
    assert!(max_tokens.iter().all(|&t| (10.0..=1000.0).contains(&t)));
    let users: Vec<f64> = requests
        .iter()
        .map(|r| text::token_count(&r.messages.last().unwrap().content) as f64)
        .collect();
    let mean = users.iter().sum::<f64>() / users.len() as f64;
    assert!((mean - 50.0).abs() < 5.0, "mean user message {mean}");
    assert!(requests.iter().all(|r| r.turn <= 15));
}

#[test]
fn a_conversation_ends_before_its_prompt_passes_the_limit() {
    let requests = plan(&Settings {
        max_prompt_tokens: 2000,
        ..settings(9)
    });
    assert!(requests.iter().any(|r| r.turn > 1));
    for r in requests.iter().filter(|r| r.turn > 1) {
        assert!(r.prompt_tokens() <= 2000, "{} tokens", r.prompt_tokens());
    }
}

#[test]
fn text_is_four_bytes_per_token_of_plain_letters() {
    let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(1);
    let words = text::words(&mut rng, 250);
    assert_eq!(words.len(), 1000);
    assert_eq!(text::token_count(&words), 250);
    assert!(words.bytes().all(|b| b.is_ascii_lowercase() || b == b' '));
    assert_eq!(words.split_whitespace().count(), 250);
}

#[test]
fn the_chat_body_streams_with_usage_and_puts_the_model_first() {
    let request = plan(&settings(1)).remove(0);
    let body = body::render(Api::Chat, "m1", &request);
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.starts_with(r#"{"model":"m1","messages":[{"role":"system","content":""#));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["stream"], true);
    assert_eq!(json["stream_options"]["include_usage"], true);
    assert_eq!(json["max_tokens"], request.max_tokens);
    assert_eq!(json["messages"][1]["role"], "user");
    assert_eq!(
        json["messages"][1]["content"],
        &*request.messages[1].content
    );

    let body = body::render(Api::Completions, "m1", &request);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["prompt"], request.prompt_text());
    assert_eq!(json["stream"], true);
}

#[test]
fn bad_settings_are_refused_naming_every_problem() {
    let bad = Settings {
        url: "https://example.com".into(),
        rate: 0.0,
        conversations: 0,
        duration: Duration::ZERO,
        ..Settings::default()
    };
    let error = bad.endpoint().unwrap_err().to_string();
    for expected in [
        "url: \"https://example.com\": only http:// is supported",
        "rate: 0 is not a positive number",
        "conversations: must be at least 1",
        "duration: must be longer than zero",
    ] {
        assert!(error.contains(expected), "{expected:?} missing in: {error}");
    }
    let no_scheme = Settings {
        url: "127.0.0.1:8080".into(),
        ..Settings::default()
    };
    assert!(
        no_scheme
            .endpoint()
            .unwrap_err()
            .to_string()
            .contains("has no scheme: write http://127.0.0.1:8080")
    );
    assert!(Workload::new(&bad).is_err());
}

#[test]
fn the_endpoint_is_the_base_url_and_the_api_path() {
    let at = |url: &str, api| {
        Settings {
            url: url.into(),
            api,
            ..Settings::default()
        }
        .endpoint()
        .unwrap()
        .to_string()
    };
    assert_eq!(
        at("http://127.0.0.1:8080", Api::Chat),
        "http://127.0.0.1:8080/v1/chat/completions"
    );
    assert_eq!(
        at("http://h:1/llm/", Api::Completions),
        "http://h:1/llm/v1/completions"
    );
    assert_eq!("completions".parse::<Api>(), Ok(Api::Completions));
    assert!("gpt".parse::<Api>().unwrap_err().contains("not an API"));
}

#[test]
fn percentiles_are_nearest_rank() {
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&values, 50.0), Some(50.0));
    assert_eq!(percentile(&values, 90.0), Some(90.0));
    assert_eq!(percentile(&values, 99.0), Some(99.0));
    assert_eq!(percentile(&values, 100.0), Some(100.0));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&[1.0, 2.0], 50.0), Some(1.0));
    assert_eq!(percentile(&[1.0, 2.0], 51.0), Some(2.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), Some(1.0));
    assert_eq!(percentile(&[], 50.0), None);

    let mut unsorted = vec![30.0, 10.0, 20.0, 40.0];
    let summary = Summary::of(&mut unsorted).unwrap();
    assert_eq!((summary.p50, summary.p99, summary.mean), (20.0, 40.0, 25.0));
    assert_eq!(Summary::of(&mut []), None);
}

/// Every event `stream` holds, fed to the decoder in pieces cut at `cuts`.
fn decode(stream: &[u8], cuts: &[usize]) -> (Vec<String>, Option<String>) {
    let mut decoder = EventDecoder::default();
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([&stream.len()]) {
        decoder.feed(&stream[from..cut], |e| events.push(e.to_string()));
        from = cut;
    }
    let last = decoder.finish();
    (events, last)
}

#[test]
fn events_split_anywhere_across_reads_decode_the_same() {
    let stream = b"data: {\"a\":1}\n\n: a comment\n\nevent: x\r\ndata: {\"b\":\r\ndata:2}\r\n\r\ndata: [DONE]\n\n";
    let expected = vec![
        "{\"a\":1}".to_string(),
        "{\"b\":\n2}".to_string(),
        "[DONE]".to_string(),
    ];
    assert_eq!(decode(stream, &[]), (expected.clone(), None));
    for cut in 0..=stream.len() {
        assert_eq!(
            decode(stream, &[cut]),
            (expected.clone(), None),
            "cut at {cut}"
        );
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(decode(stream, &every_byte), (expected, None));
}

#[test]
fn an_event_the_server_did_not_close_is_returned_at_the_end() {
    assert_eq!(
        decode(b"data: one\n\ndata: [DONE]", &[3]),
        (vec!["one".to_string()], Some("[DONE]".to_string()))
    );
    assert_eq!(
        decode(b"data: two\n", &[]),
        (vec![], Some("two".to_string()))
    );
    assert_eq!(decode(b": only a comment\n", &[]), (vec![], None));
}

#[test]
fn chunks_say_whether_they_carry_text_and_what_usage_the_server_counted() {
    assert_eq!(interpret("[DONE]"), Ok(Chunk::Done));
    let text = |data| match interpret(data) {
        Ok(Chunk::Data { content, .. }) => content,
        other => panic!("{data}: {other:?}"),
    };
    assert!(text(
        r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#
    ));
    assert!(text(r#"{"choices":[{"index":0,"text":"lo"}]}"#));
    assert!(text(
        r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#
    ));
    assert!(!text(
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
    ));
    assert!(!text(r#"{"choices":[],"usage":null}"#));

    let usage = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":300,
        "total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024}}}"#;
    assert_eq!(
        interpret(usage),
        Ok(Chunk::Data {
            content: false,
            usage: Some(Usage {
                prompt_tokens: Some(1200),
                completion_tokens: Some(300),
                cached_tokens: Some(1024),
            })
        })
    );
    let no_details = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
    assert!(matches!(
        interpret(no_details),
        Ok(Chunk::Data {
            usage: Some(Usage {
                cached_tokens: None,
                ..
            }),
            ..
        })
    ));
    assert_eq!(
        interpret(r#"{"error":{"message":"out of memory","code":500}}"#),
        Ok(Chunk::Error("out of memory".into()))
    );
    assert!(interpret("not json").unwrap_err().contains("not JSON"));
}

fn outcome(verdict: Verdict, ttft_ms: u64, cached: Option<u64>) -> Outcome {
    Outcome {
        verdict,
        ttft: Some(Duration::from_millis(ttft_ms)),
        e2e: Duration::from_millis(ttft_ms * 2),
        output_tokens: 100,
        prompt_tokens: 1000,
        cached_tokens: cached,
        send_lag: Duration::from_micros(ttft_ms),
    }
}

#[test]
fn the_report_counts_outcomes_and_the_cache_hit_rate() {
    let run = Run {
        outcomes: vec![
            outcome(Verdict::Ok, 100, Some(800)),
            outcome(Verdict::Ok, 300, Some(0)),
            outcome(Verdict::Ok, 200, None),
            outcome(Verdict::Shed, 1, None),
            outcome(Verdict::Error(ErrorKind::Status(500)), 1, None),
            outcome(Verdict::Error(ErrorKind::Timeout), 1, None),
            outcome(Verdict::Error(ErrorKind::Status(500)), 1, None),
        ],
        scheduled: 9,
        dropped: 2,
        elapsed: Duration::from_secs(10),
    };
    let report = Report::new(&Settings::default(), "http://x/v1/chat/completions", &run);
    assert_eq!(
        (
            report.scheduled,
            report.sent,
            report.ok,
            report.shed,
            report.errors,
            report.dropped
        ),
        (9, 7, 3, 1, 3, 2)
    );
    assert_eq!(report.errors_by_kind["status_500"], 2);
    assert_eq!(report.errors_by_kind["timeout"], 1);
    let ttft = report.ttft_ms.unwrap();
    assert_eq!((ttft.p50, ttft.p99, ttft.mean), (200.0, 300.0, 200.0));
    assert_eq!(report.e2e_ms.unwrap().p50, 400.0);
    assert_eq!(report.output_tokens, 300);
    assert_eq!(report.output_tokens_per_s, 30.0);
    assert_eq!(report.prompt_tokens, 3000);
    // Only the two requests that reported cached tokens count toward the rate.
    assert_eq!(report.cached_prompt_tokens, Some(800));
    assert_eq!(report.cache_hit_rate, Some(0.4));
    assert_eq!(report.max_send_lag_ms, 0.3);

    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "url",
        "api",
        "model",
        "rate",
        "duration_s",
        "seed",
        "scheduled",
        "sent",
        "ok",
        "shed",
        "errors",
        "dropped",
        "errors_by_kind",
        "ttft_ms",
        "e2e_ms",
        "output_tokens",
        "output_tokens_per_s",
        "prompt_tokens",
        "cached_prompt_tokens",
        "cache_hit_rate",
        "elapsed_s",
        "max_send_lag_ms",
    ] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    let table = report.to_string();
    assert!(table.contains("shed (429) 1"), "{table}");
    assert!(table.contains("hit rate 40.0%"), "{table}");
}

#[test]
fn a_run_where_nothing_succeeded_reports_nulls() {
    let run = Run {
        outcomes: vec![outcome(Verdict::Error(ErrorKind::Connect), 1, None)],
        scheduled: 1,
        dropped: 0,
        elapsed: Duration::from_secs(1),
    };
    let json = serde_json::to_value(Report::new(&Settings::default(), "u", &run)).unwrap();
    assert!(json["ttft_ms"].is_null());
    assert!(json["cached_prompt_tokens"].is_null());
    assert!(json["cache_hit_rate"].is_null());
    assert_eq!(json["errors_by_kind"]["connect"], 1);
}
