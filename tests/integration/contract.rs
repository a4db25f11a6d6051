//! The plugin contract over real sockets: plugins built for `lbx:router@0.1.0` keep routing
//! unchanged beside 0.2 ones, and every piece 0.2 adds — ranked fallbacks, retry statuses,
//! path rewrite, the body prefix, outcome feedback, backend signals and the clock — does what
//! `wit/router.wit` promises, including when the plugin's answer is bad.

use std::process::{Command, Stdio};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::support::{
    LBX_BIN, MetricsAnswer, MetricsBackend, RawBackend, RawClient, RefusingPort, TempDir,
    TestBackend, TestProxy, config_for_urls, eventually, get_with, http1_client, metric, plugins,
    send, tally,
};

/// `lbx check PLUGIN`'s stdout with `plugin_config` as `[plugin.config]`, asserting it
/// succeeded.
fn check(plugin: &str, plugin_config: &str) -> String {
    let dir = TempDir::new("contract-check");
    let config = dir.join("lbx.toml");
    // A debug build sharing two cores with the suite can be preempted past 5 ms.
    std::fs::write(
        &config,
        format!(
            "[plugin]\npath = \"unused.wasm\"\ndeadline = \"1s\"\n\
             [plugin.config]\n{plugin_config}\n"
        ),
    )
    .unwrap();
    let output = Command::new(LBX_BIN)
        .args(["check", plugin, "--config", config.to_str().unwrap()])
        .args(["--iterations", "50"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn lbx_check_names_the_contract_a_plugin_speaks() {
    let old = check(plugins::V0_1_LEAST_CONN, "");
    assert!(old.contains("  contract lbx:router@0.1.0\n"), "{old}");
    let new = check(plugins::LEAST_CONN, "");
    assert!(new.contains("  contract lbx:router@0.2.0\n"), "{new}");
    // A 0.1 plugin that reads the path and headers through the 0.1 imports.
    let rules = "default = { pool = \"web\" }\n\
                 rules = [{ path_prefix = \"/api\", group = { pool = \"api\" } }]";
    let old = check(plugins::V0_1_HEADER_ROUTER, rules);
    assert!(old.contains("  contract lbx:router@0.1.0\n"), "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_built_for_0_1_route_unchanged() {
    let backends = [TestBackend::named("a").await, TestBackend::named("b").await];
    let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();

    // least_conn: the two backends share the requests. (Not exactly 5 and 5: on a loaded
    // machine a request can arrive before the previous one's in-flight count is released.)
    let proxy = TestProxy::start(&config_for_urls(Some(plugins::V0_1_LEAST_CONN), &urls, "")).await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        let (status, _, body) = get_with(&proxy, "/", &[]).await;
        assert_eq!(status, 200);
        answers.push(body);
    }
    let shares = tally(answers);
    assert!(
        shares.get("a") >= Some(&3) && shares.get("b") >= Some(&3),
        "{shares:?}"
    );
    let text = crate::support::get(&proxy.admin_url("/metrics")).await.2;
    assert_eq!(
        metric(&text, "lbx_decisions_total{by=\"plugin\"}"),
        10.0,
        "{text}"
    );
    drop(proxy);

    // sticky_cookie: sets its cookie downstream and keeps the client on one backend.
    let proxy = TestProxy::start(&config_for_urls(
        Some(plugins::V0_1_STICKY_COOKIE),
        &urls,
        "[plugin.config]\nsecret = \"test\"\n",
    ))
    .await;
    let (status, headers, first) = get_with(&proxy, "/", &[]).await;
    assert_eq!(status, 200);
    let cookie = headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    for _ in 0..5 {
        let (_, _, body) = get_with(&proxy, "/", &[("cookie", &cookie)]).await;
        assert_eq!(body, first);
    }
}

/// `[plugin.config]` of test_router for a proxy over `urls`, plus `[plugin]` settings and
/// other tables in `extra` (see `config_for_urls`).
fn test_router(urls: &[String], plugin_settings: &str, router: &str, tables: &str) -> String {
    config_for_urls(
        Some(plugins::TEST_ROUTER),
        urls,
        &format!("{plugin_settings}[plugin.config]\n{router}\n{tables}"),
    )
}

/// `lbx_<name>` from the proxy's `/metrics`.
async fn scrape(proxy: &TestProxy, series: &str) -> f64 {
    let text = crate::support::get(&proxy.admin_url("/metrics")).await.2;
    metric(&text, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_takes_the_plugins_next_alternate_without_asking_it_again() {
    let refusing = RefusingPort::reserve();
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let urls = [refusing.url(), b.url(), c.url()];
    let toml = test_router(
        &urls,
        "",
        "backend = 0\nfallbacks = [2, 1]\ntag = 7\noutcomes = \"record\"",
        "[retry]\nmax_attempts = 3\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let (status, _, body) = get_with(&proxy, "/", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "c"),
        "backend 0 refused; 2 is next"
    );
    assert_eq!(b.requests(), 0);
    assert_eq!(
        scrape(&proxy, "lbx_decisions_total{by=\"plugin\"}").await,
        1.0
    );
    assert_eq!(
        scrape(&proxy, "lbx_decisions_total{by=\"plugin_alternate\"}").await,
        1.0,
        "the retry went to the alternate without a second call"
    );
    // The plugin heard both attempts, tagged: the refusal (the backend's fault, no status)
    // and the answer from backend 2.
    let heard = eventually(Duration::from_secs(5), || async {
        let (_, headers, _) = get_with(&proxy, "/", &[]).await;
        let count: u32 = headers
            .get("x-test-outcomes")?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        (count >= 2).then_some(count)
    })
    .await;
    assert!(heard.is_some(), "two outcomes heard");
    let (_, headers, _) = get_with(&proxy, "/", &[]).await;
    let last = headers["x-test-last-outcome"].to_str().unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["tag"], 7, "{last}");
    assert!(
        (last["backend"] == 0 && last["fault"] == "backend" && last["status"].is_null())
            || (last["backend"] == 2 && last["fault"].is_null() && last["status"] == 200),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_or_duplicate_fallbacks_are_a_decision_error_and_the_fallback_serves() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let urls = [a.url(), b.url()];
    for fallbacks in ["[9]", "[1, 1]", "[0]"] {
        let toml = test_router(
            &urls,
            "",
            &format!("backend = 0\nfallbacks = {fallbacks}"),
            "",
        );
        let proxy = TestProxy::start(&toml).await;
        let (status, _, _) = get_with(&proxy, "/", &[]).await;
        assert_eq!(status, 200, "fallbacks {fallbacks}");
        assert_eq!(
            scrape(&proxy, "lbx_plugin_failures_total{kind=\"invalid_answer\"}").await,
            1.0,
            "fallbacks {fallbacks}"
        );
        assert_eq!(
            scrape(&proxy, "lbx_decisions_total{by=\"fallback_after_error\"}").await,
            1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_the_pick_names_is_retried_elsewhere_within_the_replay_rules() {
    let busy =
        RawBackend::answering(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
            .await;
    let b = TestBackend::named("b").await;
    let urls = [busy.url(), b.url()];
    let toml = test_router(
        &urls,
        "",
        "backend = 0\nfallbacks = [1]\nretry_on = [503]",
        "",
    );
    let proxy = TestProxy::start(&toml).await;
    let (status, _, body) = get_with(&proxy, "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "b"));
    assert_eq!(busy.requests().len(), 1);
    // The backend's 503 is still its response in its figures.
    assert_eq!(
        scrape(
            &proxy,
            &format!(
                "lbx_backend_responses_total{{backend=\"{}\",class=\"5xx\"}}",
                busy.addr
            )
        )
        .await,
        1.0
    );

    // A POST may not be replayed (the operator did not allow it): the 503 goes to the client.
    let post = Request::post(proxy.url("/"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")).boxed())
        .unwrap();
    let (status, _, body) = send(&http1_client(), post).await;
    assert_eq!((status.as_u16(), body.as_str()), (503, "busy"));

    // Without retry_on the 503 is the answer.
    let toml = test_router(&urls, "", "backend = 0\nfallbacks = [1]", "");
    let proxy = TestProxy::start(&toml).await;
    let (status, _, _) = get_with(&proxy, "/", &[]).await;
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_replaces_the_upstream_target_and_a_crlf_one_is_refused() {
    let backend = RawBackend::recording().await;
    let urls = [backend.url()];
    let proxy = TestProxy::start(&test_router(&urls, "", "rewrite = \"/v2/x?y=1\"", "")).await;
    let (status, _, _) = get_with(&proxy, "/v1/x?z=2", &[("x-keep", "1")]).await;
    assert_eq!(status, 200);
    let seen = backend.only_request();
    assert_eq!(seen.request_line(), "GET /v2/x?y=1 HTTP/1.1");
    assert_eq!(seen.values("x-keep"), ["1"]);
    drop(proxy);

    let proxy = TestProxy::start(&test_router(
        &urls,
        "",
        "rewrite = \"/a\\r\\nx-evil: 1\"",
        "",
    ))
    .await;
    let (status, _, _) = get_with(&proxy, "/orig", &[]).await;
    assert_eq!(status, 200, "the fallback answers");
    let requests = backend.requests();
    let last = requests.last().unwrap();
    assert_eq!(last.request_line(), "GET /orig HTTP/1.1");
    assert!(last.values("x-evil").is_empty(), "{}", last.head);
    assert_eq!(
        scrape(&proxy, "lbx_plugin_failures_total{kind=\"invalid_answer\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_sees_the_body_prefix_and_the_backend_still_gets_every_byte() {
    let backend = RawBackend::recording().await;
    let urls = [backend.url()];
    let proxy = TestProxy::start(&test_router(
        &urls,
        "body_prefix = 16\n",
        "report = true",
        "",
    ))
    .await;
    let body: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let json = r#"{"model":"llama-3","prompt":"hi"}"#;
    let requests = [
        format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{body}"
        ),
        "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
            .to_string(),
        format!(
            "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
             Connection: close\r\n\r\n{json}",
            json.len()
        ),
        "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    ];
    for request in &requests {
        let answer = RawClient::exchange(proxy.addr, request).await;
        assert!(answer.contains("200 OK"), "{answer}");
    }
    let seen = backend.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].values("x-test-body-prefix-len"), ["16"]);
    assert_eq!(
        seen[0].body,
        body.as_bytes(),
        "the whole body, byte for byte"
    );
    assert_eq!(
        seen[1].values("x-test-body-prefix-len"),
        ["3"],
        "shorter: given whole"
    );
    assert_eq!(seen[1].body, b"abc");
    assert_eq!(seen[2].values("x-test-body-prefix-len"), ["16"]);
    assert_eq!(seen[2].body, json.as_bytes());
    assert_eq!(
        seen[3].values("x-test-body-prefix-len"),
        ["0"],
        "no body: empty"
    );
    drop(proxy);

    // Off by default: lbx reads nothing ahead and the plugin is told so.
    let proxy = TestProxy::start(&test_router(&urls, "", "report = true", "")).await;
    let answer = RawClient::exchange(proxy.addr, &requests[0]).await;
    assert!(answer.contains("200 OK"), "{answer}");
    let last = backend.requests().pop().unwrap();
    assert_eq!(last.values("x-test-body-prefix-len"), ["none"]);
    assert_eq!(last.body, body.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_reads_a_json_model_from_the_prefix_over_http2() {
    let backend = RawBackend::recording().await;
    let urls = [backend.url()];
    let proxy = TestProxy::start(&test_router(
        &urls,
        "body_prefix = \"1KiB\"\n",
        "report = true",
        "",
    ))
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let json = r#"{"model":"llama-3","messages":[{"role":"user","content":"hi"}]}"#;
    let request = Request::post(proxy.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(json.as_bytes())).boxed())
        .unwrap();
    let (status, _, _) = send(&client, request).await;
    assert_eq!(status, 200);
    let seen = backend.only_request();
    assert_eq!(seen.values("x-test-body-model"), ["llama-3"]);
    assert_eq!(
        seen.values("x-test-body-prefix-len"),
        [json.len().to_string()]
    );
    assert_eq!(seen.body, json.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_moves_forward_for_the_plugin() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::start(&test_router(&[backend.url()], "", "report = true", "")).await;
    for _ in 0..2 {
        let (status, _, _) = get_with(&proxy, "/", &[]).await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now: Vec<u64> = backend
        .requests()
        .iter()
        .map(|r| r.values("x-test-now-us")[0].parse().unwrap())
        .collect();
    assert!(now[1] >= now[0] + 20_000, "{now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_on_outcome_counts_against_the_breaker_and_requests_still_succeed() {
    let a = TestBackend::named("a").await;
    // Each request is a good decision then a trapping outcome: the breaker counts consecutive
    // failed calls, so with a threshold of 1 the first trap disables the plugin.
    let toml = test_router(
        &[a.url()],
        "disable_after_failures = 1\ndisabled_for = \"1m\"\n",
        "outcomes = \"panic\"",
        "",
    );
    let proxy = TestProxy::start(&toml).await;
    for _ in 0..4 {
        let (status, _, _) = get_with(&proxy, "/", &[]).await;
        assert_eq!(status, 200);
    }
    let disabled = eventually(Duration::from_secs(5), || async {
        (scrape(&proxy, "lbx_plugin_disabled_total").await >= 1.0).then_some(())
    })
    .await;
    assert!(disabled.is_some(), "a trap in on-outcome trips the breaker");
    assert!(scrape(&proxy, "lbx_plugin_failures_total{kind=\"trap\"}").await >= 1.0);
    let (status, _, _) = get_with(&proxy, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(
        scrape(
            &proxy,
            "lbx_decisions_total{by=\"fallback_plugin_disabled\"}"
        )
        .await
            >= 1.0,
        "the fallback routes while the plugin is disabled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_sees_each_backends_scraped_signals_by_name_with_their_age() {
    let vllm = MetricsBackend::start(
        "vllm",
        MetricsAnswer::Text(
            "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.25\n\
             vllm:num_requests_waiting 3\n"
                .into(),
        ),
    )
    .await;
    // Answers `ok` to everything, /metrics included: its scrapes fail, its signals are missing.
    let raw = RawBackend::recording().await;
    let urls = [vllm.url(), raw.url()];
    let toml = test_router(
        &urls,
        "",
        "backend = 1\nreport = true",
        "[signals]\ninterval = \"100ms\"\n\
         metrics = [\"vllm:num_requests_waiting\", \"vllm:kv_cache_usage_perc\"]\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let seen = eventually(Duration::from_secs(10), || async {
        let (status, _, _) = get_with(&proxy, "/route", &[]).await;
        assert_eq!(status, 200);
        let request = raw
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.request_line().starts_with("GET /route "))?;
        let report: Value = serde_json::from_str(&request.values("x-test-signals")[0]).ok()?;
        report["backends"][0]["values"][0]
            .is_number()
            .then_some(report)
    })
    .await
    .expect("the plugin saw backend 0's scraped values");
    assert_eq!(
        seen["names"],
        serde_json::json!(["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"])
    );
    assert_eq!(
        seen["backends"][0]["values"],
        serde_json::json!([3.0, 0.25]),
        "{seen}"
    );
    let age = seen["backends"][0]["age_ms"].as_f64().unwrap();
    assert!((0.0..10_000.0).contains(&age), "{seen}");
    // Missing is not zero: the backend whose scrapes fail has no age and no values.
    assert!(seen["backends"][1]["age_ms"].is_null(), "{seen}");
    assert_eq!(
        seen["backends"][1]["values"],
        serde_json::json!([null, null])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_answers_with_its_status_and_the_fields_the_plugin_adds() {
    let backend = TestBackend::named("a").await;
    let toml = test_router(
        &[backend.url()],
        "",
        "reject = 429\nreject_headers = [[\"retry-after\", \"2\"], [\"x-shed-reason\", \"queue full\"]]",
        "",
    );
    let proxy = TestProxy::start(&toml).await;
    let (status, headers, body) = get_with(&proxy, "/v1/chat/completions", &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["x-shed-reason"], "queue full");
    assert!(
        headers.contains_key("x-request-id"),
        "lbx's own fields stay"
    );
    assert_eq!(backend.requests(), 0, "a rejection contacts no backend");

    // On the wire: the fields as the plugin named them, once each, beside one framing of lbx's.
    let answer = RawClient::exchange(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: lbx.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 429 Too Many Requests", "{answer}");
    for field in ["retry-after: 2", "x-shed-reason: queue full"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.eq_ignore_ascii_case(field))
                .count(),
            1,
            "{field}: {answer}"
        );
    }
    let lengths: Vec<&&str> = lines
        .iter()
        .filter(|l| l.to_ascii_lowercase().starts_with("content-length:"))
        .collect();
    assert_eq!(lengths.len(), 1, "{answer}");
    assert_eq!(
        lengths[0][15..].trim().parse::<usize>().unwrap(),
        body.len(),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_that_adds_a_framing_field_or_a_bad_status_is_a_decision_error() {
    let backend = TestBackend::named("a").await;
    for (reject, headers) in [
        ("429", "[[\"content-length\", \"0\"]]"),
        ("429", "[[\"transfer-encoding\", \"chunked\"]]"),
        ("429", "[[\"retry-after\", \"2\\r\\nx-evil: 1\"]]"),
        ("200", "[]"),
    ] {
        let toml = test_router(
            &[backend.url()],
            "",
            &format!("reject = {reject}\nreject_headers = {headers}"),
            "",
        );
        let proxy = TestProxy::start(&toml).await;
        let (status, headers_seen, _) = get_with(&proxy, "/", &[]).await;
        assert_eq!(status, 200, "the fallback serves: {headers}");
        assert!(!headers_seen.contains_key("x-evil"));
        assert_eq!(
            scrape(&proxy, "lbx_plugin_failures_total{kind=\"invalid_answer\"}").await,
            1.0,
            "{reject} {headers}"
        );
    }
}
