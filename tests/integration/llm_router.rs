//! The `llm_router` plugin through lbx (issue 18): OpenAI-style requests over real sockets to
//! plain test backends, the plugin reading each body's model and prompt from the prefix lbx
//! reads ahead. The model filter sends a request only where its model is served (404 when
//! nowhere); a conversation goes back to the backend that has its prefix, also after the
//! plugin is hot-swapped (the index lives in lbx's key-value store); a body that is not JSON is
//! still routed; with shedding on, a pool whose scraped queues are all full answers 429 with
//! `retry-after`; a conversation leaves its replica only when every slot there is taken (the
//! router learns the slots from scraped queues); and a replica that dies before its first byte
//! is replaced by the router's ranked fallback.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::support::llm_replica::{self, LlmReplica, post_streamed};
use crate::support::{
    MetricsAnswer, MetricsBackend, RawBackend, TempDir, TestBackend, TestProxy, admin_get,
    admin_post, eventually, http1_client, metric, plugins, replace_atomically, send,
    with_custom_section,
};

/// `[plugin]` with a 16 KiB body prefix, plus `extra`, then one backend per `(url, model
/// label)` with the `id` `b<i>`.
fn llm_config(plugin: &str, backends: &[(String, Option<&str>)], extra: &str) -> String {
    let mut toml = format!(
        "[plugin]\npath = {plugin:?}\nbody_prefix = \"16KiB\"\ndeadline = \"1s\"\n{extra}\n"
    );
    for (i, (url, model)) in backends.iter().enumerate() {
        toml.push_str(&format!("[[backend]]\nurl = {url:?}\nid = \"b{i}\"\n"));
        if let Some(model) = model {
            toml.push_str(&format!("labels = {{ model = {model:?} }}\n"));
        }
    }
    toml
}

/// POSTs `body` to `path`; returns the status and the answering backend's name.
pub(crate) async fn post(proxy: &TestProxy, path: &str, body: impl Into<Bytes>) -> (u16, String) {
    let request = http::Request::post(proxy.url(path))
        .header("content-type", "application/json")
        .body(Full::new(body.into()).boxed())
        .unwrap();
    let (status, _, text) = send(&http1_client(), request).await;
    (status.as_u16(), text)
}

/// A chat completion for `model`: conversation `n`'s system prompt and question, plus
/// `followups` more turns. The Python LLM router's test sends the same requests.
pub(crate) fn chat(model: &str, n: u32, followups: usize) -> String {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": format!("You help customer {n}. ").repeat(20)}),
        serde_json::json!({"role": "user", "content": format!("Question {n}: where is my parcel? ").repeat(4)}),
    ];
    for turn in 0..followups {
        messages
            .push(serde_json::json!({"role": "assistant", "content": format!("Answer {turn}.")}));
        messages.push(serde_json::json!({"role": "user", "content": format!("Follow-up {turn}?")}));
    }
    serde_json::json!({"messages": messages, "model": model, "stream": true}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_goes_to_a_backend_serving_it_and_an_unknown_model_is_answered_404() {
    let llama = [
        TestBackend::named("llama-1").await,
        TestBackend::named("llama-2").await,
    ];
    let mistral = TestBackend::named("mistral").await;
    let backends = [
        (llama[0].url(), Some("llama-3-8b")),
        (llama[1].url(), Some("llama-3-8b, llama-3-8b-instruct")),
        (mistral.url(), Some("mistral-7b")),
    ];
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, "")).await;
    for n in 0..6 {
        let (status, name) = post(&proxy, "/v1/chat/completions", chat("mistral-7b", n, 0)).await;
        assert_eq!((status, name.as_str()), (200, "mistral"));
        let (status, name) = post(&proxy, "/v1/chat/completions", chat("llama-3-8b", n, 0)).await;
        assert_eq!(status, 200);
        assert!(name.starts_with("llama-"), "llama-3-8b went to {name}");
        let (_, name) = post(
            &proxy,
            "/v1/chat/completions",
            chat("llama-3-8b-instruct", n, 0),
        )
        .await;
        assert_eq!(name, "llama-2");
    }
    let completion = r#"{"model": "llama-3-8b", "prompt": "Once upon a time"}"#;
    let (status, name) = post(&proxy, "/v1/completions", completion).await;
    assert_eq!(status, 200);
    assert!(name.starts_with("llama-"), "{name}");
    let (status, _) = post(&proxy, "/v1/chat/completions", chat("gpt-4o", 0, 0)).await;
    assert_eq!(status, 404);
    assert_eq!(
        mistral.requests(),
        6,
        "nothing else reached the mistral backend"
    );
}

/// Sends conversations `order` (each with `followups` more turns), one after the other;
/// returns where each went, by conversation number.
async fn conversations(proxy: &TestProxy, order: &[u32], followups: usize) -> Vec<(u32, String)> {
    let mut answered = Vec::new();
    for &n in order {
        let (status, name) = post(proxy, "/v1/chat/completions", chat("m", n, followups)).await;
        assert_eq!(status, 200);
        answered.push((n, name));
    }
    answered.sort();
    answered
}

/// Prefix affinity alone: the TTFT term off, because these backends answer in microseconds and
/// which of them is faster is scheduling noise on a busy machine, which can outweigh a prefix.
const AFFINITY_ONLY: &str = "[plugin.config]\nweights = { ttft = 0 }";

/// Ten conversations, and the same in another order (so that a rotation cannot look sticky).
const FORWARD: [u32; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const SHUFFLED: [u32; 10] = [7, 2, 9, 4, 0, 5, 8, 1, 6, 3];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_conversation_goes_back_to_the_backend_that_has_its_prefix() {
    let pool = [
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    ];
    let backends: Vec<_> = pool.iter().map(|b| (b.url(), None)).collect();
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, AFFINITY_ONLY)).await;
    let first = conversations(&proxy, &FORWARD, 0).await;
    let distinct: std::collections::HashSet<_> = first.iter().map(|(_, name)| name).collect();
    assert!(
        distinct.len() > 1,
        "new conversations spread over idle backends: {first:?}"
    );
    let again = conversations(&proxy, &SHUFFLED, 0).await;
    assert_eq!(again, first, "the same conversations again");
    let next_turns = conversations(&proxy, &SHUFFLED[..7], 2).await;
    let expected: Vec<_> = first
        .iter()
        .filter(|(n, _)| SHUFFLED[..7].contains(n))
        .cloned()
        .collect();
    assert_eq!(next_turns, expected, "their next turns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_affinity_survives_a_hot_swap_of_the_plugin() {
    let pool = [
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    ];
    let dir = TempDir::new("llm-swap");
    let plugin = dir.join("llm_router.wasm");
    let version_1 = std::fs::read(plugins::LLM_ROUTER).unwrap();
    std::fs::write(&plugin, &version_1).unwrap();
    let backends: Vec<_> = pool.iter().map(|b| (b.url(), None)).collect();
    let proxy = TestProxy::start(&llm_config(
        plugin.to_str().unwrap(),
        &backends,
        &format!("{AFFINITY_ONLY}\n[reload]\nwatch = false"),
    ))
    .await;
    let before = conversations(&proxy, &FORWARD, 0).await;

    replace_atomically(&plugin, &with_custom_section(&version_1, "2"));
    let (status, body) = admin_post(&proxy.admin_url("/admin/plugin/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"applied\""), "{body}");

    // The new version starts with fresh instances: what they know came through the kv store.
    assert_eq!(conversations(&proxy, &SHUFFLED, 1).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_or_names_no_model_is_still_routed() {
    let llama = TestBackend::named("llama").await;
    let any = TestBackend::named("any").await;
    let backends = [(llama.url(), Some("llama-3-8b")), (any.url(), None)];
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, "")).await;
    let bodies: [Bytes; 5] = [
        Bytes::from_static(b"this is not JSON"),
        Bytes::from_static(b"\xff\xfe\x00{\"model\""),
        Bytes::from_static(br#"{"messages": [{"role": "user", "content": "no model"}]}"#),
        Bytes::from_static(br#"{"model": ["not", "a", "string"]}"#),
        Bytes::from(format!(
            "{{\"messages\":[{{\"content\":\"{}",
            "x".repeat(40_000)
        )),
    ];
    for body in bodies {
        let (status, name) = post(&proxy, "/v1/chat/completions", body.clone()).await;
        assert_eq!(status, 200, "{body:?}");
        assert!(name == "llama" || name == "any", "{name}");
    }
}

/// What a vLLM replica with `waiting` queued requests exposes.
fn vllm(waiting: u32) -> MetricsAnswer {
    MetricsAnswer::Text(format!(
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name=\"m\"}} {waiting}\n\
         # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{model_name=\"m\"}} 0.25\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shedding_a_pool_whose_scraped_queues_are_all_full_answers_429() {
    let replicas = [
        MetricsBackend::start("r0", vllm(9)).await,
        MetricsBackend::start("r1", vllm(7)).await,
    ];
    let backends: Vec<_> = replicas.iter().map(|b| (b.url(), None)).collect();
    let extra = "[plugin.config]\nsaturation = { shed = true }\n\
                 [signals]\ninterval = \"50ms\"\n\
                 metrics = [\"vllm:kv_cache_usage_perc\", \"vllm:num_requests_waiting\"]";
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, extra)).await;
    let limit = Duration::from_secs(10);
    let shed = eventually(limit, || async {
        let (status, _) = post(&proxy, "/v1/chat/completions", chat("m", 0, 0)).await;
        (status == 429).then_some(())
    })
    .await;
    assert!(
        shed.is_some(),
        "never shed with every queue over the threshold"
    );
    // (Requests before the first scrape were routed: missing signals saturate nothing.)
    let served = replicas[0].requests() + replicas[1].requests();
    for _ in 0..3 {
        let request = http::Request::post(proxy.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(chat("m", 1, 0))).boxed())
            .unwrap();
        let (status, headers, _) = send(&http1_client(), request).await;
        assert_eq!(status, 429);
        assert_eq!(
            headers["retry-after"], "1",
            "the shed client is told when to come back"
        );
    }
    assert_eq!(
        replicas[0].requests() + replicas[1].requests(),
        served,
        "a shed request reaches no backend"
    );

    // One replica drains: requests go there.
    replicas[1].set_metrics(vllm(0));
    let routed = eventually(limit, || async {
        let (status, name) = post(&proxy, "/v1/chat/completions", chat("m", 0, 0)).await;
        (status == 200).then_some(name)
    })
    .await;
    assert_eq!(routed.as_deref(), Some("r1"));
}

/// What a vLLM replica with `running` and `waiting` requests exposes.
fn vllm_running(running: u32, waiting: u32) -> MetricsAnswer {
    MetricsAnswer::Text(format!(
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"m\"}} {running}\n\
         # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name=\"m\"}} {waiting}\n"
    ))
}

/// Waits until lbx's last scrape of backend `index` shows `running` running requests.
async fn scraped_running(proxy: &TestProxy, index: usize, running: f64) {
    let seen = eventually(Duration::from_secs(10), || async {
        let (_, body) = admin_get(&proxy.admin_url("/admin/backends")).await;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let value =
            json["backends"][index]["signals"]["values"]["vllm:num_requests_running"].as_f64()?;
        (value == running).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "lbx never scraped {running} running from backend {index}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_leaves_its_replica_when_every_slot_there_is_taken_and_not_before() {
    let replicas = [
        MetricsBackend::start("r0", vllm_running(0, 0)).await,
        MetricsBackend::start("r1", vllm_running(0, 0)).await,
    ];
    let backends: Vec<_> = replicas.iter().map(|b| (b.url(), None)).collect();
    // No TTFT term: these backends answer in microseconds, and which is faster is noise.
    let extra = "[plugin.config]\nweights = { ttft = 0 }\n\
                 [signals]\ninterval = \"20ms\"\n\
                 metrics = [\"vllm:num_requests_waiting\", \"vllm:num_requests_running\"]";
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, extra)).await;
    scraped_running(&proxy, 0, 0.0).await;
    let homes = conversations(&proxy, &FORWARD, 0).await;
    let at_r0: Vec<u32> = homes
        .iter()
        .filter(|(_, name)| name == "r0")
        .map(|(n, _)| *n)
        .collect();
    assert!(
        at_r0.len() >= 2,
        "idle backends share new conversations: {homes:?}"
    );

    // r0 keeps a queue over several scrapes: it runs all it can, 8. (The router learns from
    // the scrapes it sees when it decides, so other conversations keep it deciding.)
    replicas[0].set_metrics(vllm_running(8, 2));
    scraped_running(&proxy, 0, 8.0).await;
    for n in 100..106 {
        post(&proxy, "/v1/chat/completions", chat("m", n, 0)).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // Queue drained, every slot busy: the next turn of a conversation held there would wait.
    replicas[0].set_metrics(vllm_running(8, 0));
    scraped_running(&proxy, 0, 8.0).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (_, full) = post(&proxy, "/v1/chat/completions", chat("m", at_r0[0], 1)).await;
    assert_eq!(full, "r1", "a turn sent to a replica with no free slot");

    // One slot free: the prefix is worth staying for.
    replicas[0].set_metrics(vllm_running(7, 0));
    scraped_running(&proxy, 0, 7.0).await;
    let (_, free) = post(&proxy, "/v1/chat/completions", chat("m", at_r0[1], 1)).await;
    assert_eq!(
        free, "r0",
        "a turn sent away from its prefix though a slot was free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_before_its_first_byte_is_replaced_by_the_routers_next_choice() {
    // b0 takes the request and dies before answering a byte; b1 is a simulated vLLM replica.
    let dying = RawBackend::start(|mut conn| async move {
        let _ = conn.read_request().await;
    })
    .await;
    let live = LlmReplica::start("live", |settings| settings.speedup = 50.0).await;
    let backends = [(dying.url(), None), (format!("http://{}", live.addr), None)];
    let extra = "[retry]\nmax_attempts = 2\nnon_idempotent = true";
    let proxy = TestProxy::start(&llm_config(plugins::LLM_ROUTER, &backends, extra)).await;

    let client = http1_client();
    for n in 0..6 {
        let question = format!("Question {n}: where is my parcel?");
        let streamed = post_streamed(
            &client,
            &proxy.url("/v1/chat/completions"),
            &llm_replica::chat("You help customers.", &question, 8),
        )
        .await;
        assert_eq!(streamed.status, 200, "request {n}");
        assert_eq!(streamed.headers["x-llm-replica"], "live", "request {n}");
        assert_eq!(streamed.events.last().map(String::as_str), Some("[DONE]"));
    }
    assert!(
        !dying.requests().is_empty(),
        "the router sent some requests to b0 first"
    );
    let metrics = crate::support::get(&proxy.admin_url("/metrics")).await.2;
    assert!(
        metric(&metrics, "lbx_decisions_total{by=\"plugin_alternate\"}") >= 1.0,
        "the retry took the router's ranked fallback without asking it again: {metrics}"
    );
}
