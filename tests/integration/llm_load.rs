//! `lbx llm-load` over real sockets, against small OpenAI-compatible servers written here: the
//! time to first token and the end-to-end time are measured from the stream as it arrives (a
//! server that waits 300 ms before its first token shows a TTFT of at least that), the usage
//! chunk's token counts and cached tokens are read, requests are sent open loop over keep-alive
//! connections, 429 counts as shed and other failures as errors, the same seed sends the same
//! requests, and `--json` prints one JSON object.

use std::time::Duration;

use lbx::llm_load::{Report, Settings};
use serde_json::Value;

use crate::support::{LBX_BIN, RawBackend, run_tool};

/// Before the first token (after a role-only chunk, which carries no text).
const FIRST_TOKEN: Duration = Duration::from_millis(300);
/// Between tokens.
const GAP: Duration = Duration::from_millis(100);
const TOKENS: u64 = 3;
/// What the usage chunk reports.
const PROMPT_TOKENS: u64 = 1200;
const CACHED_TOKENS: u64 = 1000;

/// An OpenAI-style streaming server: the head and a role-only chunk at once, the first token
/// `FIRST_TOKEN` later, the others `GAP` apart, then the usage chunk and `[DONE]`.
async fn streaming_server() -> RawBackend {
    RawBackend::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            if !request.complete {
                return;
            }
            conn.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Transfer-Encoding: chunked\r\n\r\n",
            )
            .await;
            conn.write_chunk("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            )
            .await;
            tokio::time::sleep(FIRST_TOKEN).await;
            for i in 0..TOKENS {
                if i > 0 {
                    tokio::time::sleep(GAP).await;
                }
                conn.write_chunk(&format!(
                        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
                    ),
                )
                .await;
            }
            conn.write_chunk(&format!(
                    "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\
                     \"completion_tokens\":{TOKENS},\"prompt_tokens_details\":\
                     {{\"cached_tokens\":{CACHED_TOKENS}}}}}}}\n\n"
                ),
            )
            .await;
            conn.write_chunk("data: [DONE]\n\n").await;
            conn.write(b"0\r\n\r\n").await;
        }
    })
    .await
}

fn settings(url: String, rate: f64, duration: Duration) -> Settings {
    Settings {
        url,
        rate,
        duration,
        seed: 3,
        timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_end_to_end_are_measured_from_the_stream_as_it_arrives() {
    let server = streaming_server().await;
    let report: Report = lbx::llm_load::run(&settings(server.url(), 10.0, Duration::from_secs(2)))
        .await
        .unwrap();

    assert!(report.scheduled >= 5, "{report}");
    assert_eq!(
        (
            report.sent,
            report.ok,
            report.shed,
            report.errors,
            report.dropped
        ),
        (report.scheduled, report.scheduled, 0, 0, 0),
        "{report}"
    );
    // The role-only chunk came at once; the first token only after FIRST_TOKEN.
    let ttft = report.ttft_ms.unwrap();
    assert!(ttft.p50 >= ms(FIRST_TOKEN), "{report}");
    assert!(ttft.mean >= ms(FIRST_TOKEN), "{report}");
    // The end is `[DONE]`, after the remaining tokens.
    let e2e = report.e2e_ms.unwrap();
    let total = FIRST_TOKEN + GAP * (TOKENS as u32 - 1);
    assert!(e2e.p50 >= ms(total), "{report}");
    assert!(e2e.p50 - ttft.p50 >= ms(GAP), "{report}");
    // Token counts come from the usage chunk.
    assert_eq!(report.output_tokens, TOKENS * report.ok);
    assert_eq!(report.prompt_tokens, PROMPT_TOKENS * report.ok);
    assert_eq!(report.cached_prompt_tokens, Some(CACHED_TOKENS * report.ok));
    let rate = report.cache_hit_rate.unwrap();
    assert!((rate - CACHED_TOKENS as f64 / PROMPT_TOKENS as f64).abs() < 1e-4);

    // What the server saw: streamed chat requests naming their conversation.
    let requests = server.requests();
    assert_eq!(requests.len() as u64, report.sent);
    for request in &requests {
        assert_eq!(request.request_line(), "POST /v1/chat/completions HTTP/1.1");
        let session = request.values("x-session-id");
        assert!(
            session.len() == 1 && session[0].starts_with("conv-"),
            "{session:?}"
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], lbx::llm_load::DEFAULT_MODEL);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body["max_tokens"].as_u64().unwrap() >= 10);
        assert_eq!(body["messages"][0]["role"], "system");
    }
    // Open loop: requests overlapped (each takes half a second), so several connections were
    // open at once; and finished connections were reused (keep-alive).
    assert!(
        server.connections() > 1,
        "{} connections",
        server.connections()
    );
    assert!(
        server.connections() < requests.len(),
        "{} connections for {} requests",
        server.connections(),
        requests.len()
    );
}

/// A server that starts a stream, sends one token, then closes the connection mid-stream.
async fn cut_short_server() -> RawBackend {
    RawBackend::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            conn.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Transfer-Encoding: chunked\r\n\r\n",
            )
            .await;
            conn.write_chunk("data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n")
                .await;
        }
        // Dropping the connection ends the body without its last chunk.
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_counts_as_shed_and_other_failures_as_errors_by_kind() {
    let run = |server: &RawBackend| {
        let settings = settings(server.url(), 10.0, Duration::from_secs(1));
        async move { lbx::llm_load::run(&settings).await.unwrap() }
    };

    let busy = RawBackend::answering(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy",
    )
    .await;
    let report = run(&busy).await;
    assert!(report.sent > 0, "{report}");
    assert_eq!((report.shed, report.ok, report.errors), (report.sent, 0, 0));
    assert!(report.ttft_ms.is_none() && report.e2e_ms.is_none());

    let failing = RawBackend::answering(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
    )
    .await;
    let report = run(&failing).await;
    assert_eq!((report.errors, report.shed), (report.sent, 0), "{report}");
    assert_eq!(report.errors_by_kind["status_500"], report.sent);

    let not_streamed = RawBackend::answering(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    let report = run(&not_streamed).await;
    assert_eq!(report.errors_by_kind["not_event_stream"], report.sent);

    let cut = cut_short_server().await;
    let report = run(&cut).await;
    assert_eq!(report.ok, 0, "{report}");
    assert_eq!(
        report.errors_by_kind["broken_stream"], report.sent,
        "{report}"
    );
}

/// `lbx llm-load <args>` against `url`; (success, stdout, stderr).
async fn llm_load(url: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args: Vec<String> = [
        "llm-load",
        "--url",
        url,
        "--rate",
        "8",
        "--duration",
        "1s",
        "--seed",
        "11",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    run_tool(LBX_BIN, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbx_llm_load_prints_one_json_object_and_the_same_seed_sends_the_same_requests() {
    let server = streaming_server().await;
    let (ok, stdout, stderr) = llm_load(&server.url(), &["--json"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["seed"], 11);
    assert_eq!(report["rate"], 8.0);
    assert_eq!(
        report["url"],
        format!("{}/v1/chat/completions", server.url())
    );
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0, "{report}");
    assert_eq!(report["ok"], sent);
    assert_eq!(report["shed"], 0);
    assert!(report["ttft_ms"]["p50"].as_f64().unwrap() >= ms(FIRST_TOKEN));
    assert!(report["ttft_ms"]["p99"].as_f64().unwrap() >= ms(FIRST_TOKEN));
    assert!(report["e2e_ms"]["p99"].as_f64().unwrap() >= ms(FIRST_TOKEN + GAP * 2));
    assert_eq!(report["output_tokens"], TOKENS * sent);
    assert!(report["output_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(report["cached_prompt_tokens"], CACHED_TOKENS * sent);
    let first: Vec<Vec<u8>> = bodies(&server);

    // Again, as a table, with the same seed: the server gets the very same requests.
    let (ok, stdout, stderr) = llm_load(&server.url(), &[]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("TTFT ms"), "{stdout}");
    assert!(stdout.contains(&format!("ok {sent}")), "{stdout}");
    let all = bodies(&server);
    assert_eq!(all.len(), first.len() * 2);
    let mut again = all[first.len()..].to_vec();
    let mut first = first;
    first.sort();
    again.sort();
    assert!(first == again, "the same seed sent different requests");
}

/// The bodies the server received, in order.
fn bodies(server: &RawBackend) -> Vec<Vec<u8>> {
    server.requests().into_iter().map(|r| r.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbx_llm_load_refuses_bad_flags_naming_them_and_fails_when_nothing_succeeds() {
    let args = ["llm-load", "--url", "https://127.0.0.1:1", "--rate", "0"];
    let (ok, _, stderr) = run_tool(LBX_BIN, args.map(String::from).to_vec()).await;
    assert!(!ok);
    assert!(stderr.contains("only http:// is supported"), "{stderr}");
    assert!(
        stderr.contains("rate: 0 is not a positive number"),
        "{stderr}"
    );

    let busy =
        RawBackend::answering(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n").await;
    let (ok, stdout, stderr) = llm_load(&busy.url(), &["--json"]).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("no request succeeded"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["shed"], report["sent"]);
}
