//! Backend signals (issue 17): lbx scrapes the Prometheus series `[signals]` names from every
//! backend's `/metrics`, off the request path, and shows them per backend in
//! `/admin/backends` and on `/metrics`. A scrape that fails — garbage, 10 MiB, no answer — is
//! counted and explained, the backend's last good values are kept and only grow older, and the
//! backend keeps serving: scraping is not health checking. No `[signals] metrics`, no scrape.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    LbxProcess, MetricsAnswer, MetricsBackend, TempDir, TestProxy, admin_backend, admin_get,
    admin_post, admin_send, eventually, get, metric,
};

/// Long enough for a slow debug build on a busy machine; every wait ends as soon as it can.
const LIMIT: Duration = Duration::from_secs(10);

const WAITING: &str = "vllm:num_requests_waiting";
const LLAMA: &str = "vllm:num_requests_waiting{model_name=\"llama\"}";
const QWEN_ENGINE_0: &str = "vllm:num_requests_waiting{ model_name=\"qwen\", engine=\"0\" }";
const KV: &str = "vllm:kv_cache_usage_perc";
const ABSENT: &str = "vllm:lora_requests_info";

/// `[signals]` over the signals above, scraped every 100 ms.
fn signals_section(interval: &str) -> String {
    let metrics: Vec<String> = [WAITING, LLAMA, QWEN_ENGINE_0, KV, ABSENT]
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    format!(
        "[signals]\ninterval = {interval:?}\nmetrics = [{}]\n",
        metrics.join(", ")
    )
}

/// What a vLLM server with two engines serving two models exposes (abridged).
fn vllm(llama: [u32; 2], qwen: [u32; 2], kv: f64) -> MetricsAnswer {
    MetricsAnswer::Text(format!(
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"llama\"}} {}.0\n\
         vllm:num_requests_waiting{{engine=\"1\",model_name=\"llama\"}} {}.0\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"qwen\"}} {}.0\n\
         vllm:num_requests_waiting{{engine=\"1\",model_name=\"qwen\"}} {}.0\n\
         # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"llama\"}} {kv}\n\
         # TYPE vllm:e2e_request_latency_seconds histogram\n\
         vllm:e2e_request_latency_seconds_bucket{{le=\"+Inf\",model_name=\"llama\"}} 12.0\n",
        llama[0], llama[1], qwen[0], qwen[1]
    ))
}

/// The `signals` object of backend `id` once `ready` holds for it.
async fn signals_when(
    admin: std::net::SocketAddr,
    id: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let signals = || async {
        admin_backend(admin, id)
            .await
            .map(|b| b["signals"].clone())
            .unwrap_or_default()
    };
    let found = eventually(LIMIT, || async {
        let signals = signals().await;
        ready(&signals).then_some(signals)
    })
    .await;
    match found {
        Some(signals) => signals,
        None => panic!("{what}; last seen: {}", signals().await),
    }
}

/// The series line of a signal value on lbx's `/metrics`.
fn value_series(backend: &str, signal: &str) -> String {
    let escaped = signal.replace('\\', "\\\\").replace('"', "\\\"");
    format!("lbx_backend_signal_value{{backend=\"{backend}\",signal=\"{escaped}\"}}")
}

async fn lbx_metrics(proxy: &TestProxy) -> String {
    let (status, text) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_signals_appear_per_backend_and_follow_the_backends_numbers() {
    let backend = MetricsBackend::start("a", vllm([3, 4], [10, 1], 0.25)).await;
    let proxy = TestProxy::in_front_of(backend.url(), &signals_section("100ms")).await;
    let id = backend.id();

    let signals = signals_when(proxy.admin, &id, "a first scrape", |s| {
        s["scrapes_ok"].as_u64() >= Some(1)
    })
    .await;
    let values = &signals["values"];
    assert_eq!(
        values[WAITING], 18.0,
        "series of one metric add up: {signals}"
    );
    assert_eq!(values[LLAMA], 7.0, "a label matcher selects: {signals}");
    assert_eq!(
        values[QWEN_ENGINE_0], 10.0,
        "two matchers select one: {signals}"
    );
    assert_eq!(values[KV], 0.25, "{signals}");
    assert!(
        values[ABSENT].is_null(),
        "absent is missing, not 0: {signals}"
    );
    assert_eq!(signals["scrapes_failed"], 0, "{signals}");
    assert!(signals["last_error"].is_null(), "{signals}");
    let age = signals["age_ms"].as_f64().expect("an age once scraped");
    assert!((0.0..LIMIT.as_millis() as f64).contains(&age), "{signals}");

    let text = lbx_metrics(&proxy).await;
    assert_eq!(metric(&text, &value_series(&id, WAITING)), 18.0);
    assert_eq!(metric(&text, &value_series(&id, LLAMA)), 7.0);
    assert_eq!(metric(&text, &value_series(&id, KV)), 0.25);
    assert!(!text.contains(&format!("signal=\"{ABSENT}\"")), "{text}");
    let ok = format!("lbx_backend_signal_scrapes_total{{backend=\"{id}\",result=\"ok\"}}");
    assert!(metric(&text, &ok) >= 1.0);
    let age = format!("lbx_backend_signal_age_seconds{{backend=\"{id}\"}}");
    assert!(metric(&text, &age) >= 0.0);

    // The backend's numbers change; the next scrapes carry them.
    backend.set_metrics(vllm([0, 1], [2, 0], 0.5));
    let signals = signals_when(proxy.admin, &id, "the new numbers", |s| {
        s["values"][WAITING] == 3.0
    })
    .await;
    assert_eq!(signals["values"][LLAMA], 1.0, "{signals}");
    assert_eq!(signals["values"][QWEN_ENGINE_0], 2.0, "{signals}");
    assert_eq!(signals["values"][KV], 0.5, "{signals}");

    // Scrapes stay off the request path; requests are served as ever.
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    assert!(backend.metrics_requests() >= 2);
    assert_eq!(backend.requests(), 1, "scrapes only ever GET /metrics");
}

/// Start a backend with good numbers, wait for them, make its `/metrics` fail as `failure`:
/// the failure is counted and explained, the good values are kept and grow older, and the
/// backend stays in rotation.
async fn a_failing_scrape_leaves_the_backend_serving(
    failure: MetricsAnswer,
    interval: &str,
    says: &str,
) {
    let backend = MetricsBackend::start("a", vllm([3, 4], [10, 1], 0.25)).await;
    let proxy = TestProxy::in_front_of(backend.url(), &signals_section(interval)).await;
    let id = backend.id();
    signals_when(proxy.admin, &id, "a first good scrape", |s| {
        s["values"][WAITING] == 18.0
    })
    .await;

    backend.set_metrics(failure);
    let failed = signals_when(proxy.admin, &id, "a failed scrape", |s| {
        s["scrapes_failed"].as_u64() >= Some(1)
    })
    .await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(says),
        "last_error should say {says:?}: {failed}"
    );
    assert_eq!(
        failed["values"][WAITING], 18.0,
        "kept, not zeroed: {failed}"
    );
    assert_eq!(failed["values"][KV], 0.25, "{failed}");

    // Stale: the age grows past several intervals while the failures go on.
    let interval_ms = humantime::parse_duration(interval).unwrap().as_millis() as f64;
    let first_age = failed["age_ms"].as_f64().unwrap();
    let stale = signals_when(proxy.admin, &id, "the values growing stale", |s| {
        s["age_ms"].as_f64().is_some_and(|age| {
            age > first_age && age > 3.0 * interval_ms && s["scrapes_failed"].as_u64() >= Some(2)
        })
    })
    .await;
    assert_eq!(stale["values"][WAITING], 18.0, "{stale}");

    // Not ejected, not down: requests still go to it.
    let described = admin_backend(proxy.admin, &id).await.unwrap();
    assert_eq!(described["state"], "up", "{described}");
    assert_eq!(described["usable"], true, "{described}");
    for _ in 0..3 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    }

    let text = lbx_metrics(&proxy).await;
    let failed = format!("lbx_backend_signal_scrapes_total{{backend=\"{id}\",result=\"error\"}}");
    assert!(metric(&text, &failed) >= 2.0, "{text}");
    assert_eq!(metric(&text, &value_series(&id, WAITING)), 18.0);
    let age = format!("lbx_backend_signal_age_seconds{{backend=\"{id}\"}}");
    assert!(metric(&text, &age) * 1000.0 > 3.0 * interval_ms, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answering_garbage_fail_the_scrape_not_the_backend() {
    a_failing_scrape_leaves_the_backend_serving(
        MetricsAnswer::Garbage,
        "100ms",
        "not Prometheus text format: line 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answering_10_mib_are_cut_off_at_max_bytes() {
    // A whole second per scrape, so that even a slow build reads the first MiB in time and the
    // failure is the size, not the clock.
    a_failing_scrape_leaves_the_backend_serving(
        MetricsAnswer::Huge(10 * 1024 * 1024),
        "1s",
        "larger than max_bytes (1048576 bytes)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_that_never_answer_time_out_and_the_backend_serves_on() {
    a_failing_scrape_leaves_the_backend_serving(
        MetricsAnswer::Silence,
        "100ms",
        "no complete answer within 100 ms",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signals_nothing_is_scraped() {
    let backend = MetricsBackend::start("a", vllm([3, 4], [10, 1], 0.25)).await;
    // No [signals] at all, and [signals] settings without metrics: both scrape nothing.
    let plain = TestProxy::in_front_of(backend.url(), "").await;
    let no_metrics =
        TestProxy::in_front_of(backend.url(), "[signals]\ninterval = \"20ms\"\n").await;
    for proxy in [&plain, &no_metrics] {
        let (status, _, _) = get(&proxy.url("/")).await;
        assert_eq!(status, 200);
    }
    // Many intervals' worth of quiet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backend.metrics_requests(), 0, "nobody asked for /metrics");
    for proxy in [&plain, &no_metrics] {
        let described = admin_backend(proxy.admin, &backend.id()).await.unwrap();
        assert!(described.get("signals").is_none(), "{described}");
        assert!(!lbx_metrics(proxy).await.contains("lbx_backend_signal"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_added_at_runtime_are_scraped_and_h2c_backends_over_http2() {
    let first = MetricsBackend::start("a", vllm([1, 0], [0, 0], 0.1)).await;
    // The test backend speaks HTTP/2 with prior knowledge too: the scrape goes over the
    // backend's own transport.
    let h2c = MetricsBackend::start("b", vllm([0, 5], [0, 0], 0.9)).await;
    let proxy = TestProxy::in_front_of(first.url(), &signals_section("100ms")).await;
    signals_when(proxy.admin, &first.id(), "the configured backend", |s| {
        s["values"][WAITING] == 1.0
    })
    .await;

    let body = format!("{{\"url\": \"h2c://{}\", \"id\": \"added\"}}", h2c.addr);
    let (status, answer) = admin_send(
        "POST",
        &proxy.admin_url("/admin/backends"),
        Some(&body),
        None,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let added = signals_when(proxy.admin, "added", "the added backend", |s| {
        s["values"][LLAMA] == 5.0
    })
    .await;
    assert_eq!(added["values"][KV], 0.9, "{added}");
    assert!(h2c.metrics_requests() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_changes_the_signals_and_can_turn_them_off() {
    let backend = MetricsBackend::start("a", vllm([3, 4], [10, 1], 0.25)).await;
    let dir = TempDir::new("signals-reload");
    let file = dir.join("lbx.toml");
    let write = |signals: &str| {
        let toml = format!(
            "[reload]\nwatch = false\n[[backend]]\nurl = {:?}\n{signals}",
            backend.url()
        );
        std::fs::write(&file, toml).unwrap();
    };
    write(&format!(
        "[signals]\ninterval = \"100ms\"\nmetrics = [{WAITING:?}]\n"
    ));
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let id = backend.id();
    signals_when(lbx.admin, &id, "the first signal", |s| {
        s["values"][WAITING] == 18.0
    })
    .await;

    let generation = || async {
        let (_, listed) = admin_get(&format!("http://{}/admin/backends", lbx.admin)).await;
        serde_json::from_str::<Value>(&listed).unwrap()["generation"]
            .as_u64()
            .unwrap()
    };
    let before = generation().await;
    write(&format!(
        "[signals]\ninterval = \"100ms\"\nmetrics = [{KV:?}, {LLAMA:?}]\n"
    ));
    let (status, answer) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("signals: 2 scraped from /metrics"),
        "{answer}"
    );
    // Plugins learn the new names with the backend set: a new generation tells them.
    assert!(generation().await > before);
    let changed = signals_when(lbx.admin, &id, "the new signals", |s| {
        s["values"][KV] == 0.25 && s["values"][LLAMA] == 7.0
    })
    .await;
    assert!(changed["values"].get(WAITING).is_none(), "{changed}");

    write("");
    let (status, answer) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{answer}");
    let described = admin_backend(lbx.admin, &id).await.unwrap();
    assert!(described.get("signals").is_none(), "{described}");
    // A scrape under way may still land; after it, none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scraped = backend.metrics_requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backend.metrics_requests(), scraped, "scraping stopped");
    drop(lbx);
}
