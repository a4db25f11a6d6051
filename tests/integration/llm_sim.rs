//! The simulated vLLM replica (`lbx backend --llm`, `lbx::llm_sim`) over real sockets: its
//! OpenAI API streamed as Server-Sent Events to hyper's HTTP/1.1 and HTTP/2 clients and to
//! PyPI's official `openai` SDK, the behaviour its model promises (a cached prefix answers
//! sooner, a full batch makes requests wait), vLLM's metrics, and lbx scraping them as backend
//! signals. Times are compared with each other with wide margins, never with a bound.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::support::llm_replica::{
    LlmReplica, Streamed, cached_tokens, chat, post_json, post_streamed,
};
use crate::support::{
    LBX_BIN, LbxProcess, TempDir, admin_backend, admin_get, eventually, free_port, get,
    http1_client, metric, run_lbx_to_exit, run_peer,
};

/// Long enough for a slow debug build on a busy machine; every wait ends as soon as it can.
const LIMIT: Duration = Duration::from_secs(10);

const MODEL: &str = lbx::llm_sim::Profile::DEFAULT_MODEL;

/// `count` words (one token each), drawn from `seed`: different seeds share no block.
fn words(seed: &str, count: u32) -> String {
    lbx::llm_load::text::labelled_words(seed, count)
}

/// The series of `name` with vLLM's labels for the default model.
fn series(name: &str) -> String {
    format!("{name}{{engine=\"0\",model_name=\"{MODEL}\"}}")
}

async fn replica_metrics(replica: &LlmReplica) -> String {
    let (status, text) = admin_get(&replica.url("/metrics")).await;
    assert_eq!(status, 200);
    text
}

fn h2c_client() -> Client<HttpConnector, BoxBody<Bytes, Infallible>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// The content chunks of a chat stream: (content, finish_reason).
fn contents(streamed: &Streamed) -> Vec<(String, Value)> {
    streamed
        .chunks()
        .iter()
        .filter_map(|c| {
            let choice = c["choices"].get(0)?;
            let content = choice["delta"]["content"].as_str()?;
            (!content.is_empty()).then(|| (content.to_string(), choice["finish_reason"].clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_is_server_sent_events_over_http1_and_h2c() {
    let replica = LlmReplica::start("r1", |s| s.speedup = 10.0).await;
    let url = replica.url("/v1/chat/completions");
    let request = chat("You are terse.", "Name three colours.", 8);

    for (client, version) in [
        (http1_client(), http::Version::HTTP_11),
        (h2c_client(), http::Version::HTTP_2),
    ] {
        let streamed = post_streamed(&client, &url, &request).await;
        assert_eq!(streamed.status, 200);
        assert_eq!(streamed.version, version);
        assert_eq!(
            streamed.headers["content-type"],
            "text/event-stream; charset=utf-8"
        );
        assert_eq!(streamed.headers["x-llm-replica"], "r1");
        assert_eq!(streamed.events.last().map(String::as_str), Some("[DONE]"));

        let chunks = streamed.chunks();
        let id = chunks[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-"), "{id}");
        for chunk in &chunks {
            assert_eq!(chunk["id"], id, "one id for the whole stream");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], MODEL);
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let tokens = contents(&streamed);
        assert_eq!(
            tokens.len(),
            8,
            "one event per token: {:?}",
            streamed.events
        );
        let finishes: Vec<&Value> = tokens.iter().map(|(_, f)| f).collect();
        assert!(finishes[..7].iter().all(|f| f.is_null()), "{finishes:?}");
        assert_eq!(finishes[7], "length");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(chunks.last().unwrap()["choices"], json!([]));
        assert_eq!(usage["completion_tokens"], 8);
        let prompt_tokens = usage["prompt_tokens"].as_u64().unwrap();
        assert!(prompt_tokens > 10, "{usage}");
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(prompt_tokens + 8),
            "{usage}"
        );
    }

    // The same conversation, not streamed: the same reply, its prompt now partly cached.
    let mut whole = request.clone();
    whole["stream"] = json!(false);
    let (status, headers, body) = post_json(&url, &whole.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-llm-replica"], "r1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let streamed = post_streamed(&http1_client(), &url, &request).await;
    assert_eq!(body["choices"][0]["message"]["content"], streamed.text());
    assert!(body["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() > Some(0));

    // Text completions stream their text, without a role chunk.
    let completion = json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 3,
                            "stream": true});
    let streamed = post_streamed(
        &http1_client(),
        &replica.url("/v1/completions"),
        &completion,
    )
    .await;
    let chunks = streamed.chunks();
    assert_eq!(chunks.len(), 3, "{:?}", streamed.events);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(
        streamed.text().split(' ').count(),
        4,
        "{:?}",
        streamed.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_streams_from_the_replica() {
    let replica = LlmReplica::start("sdk", |s| s.speedup = 10.0).await;
    let out = run_peer(
        "openai_client.py",
        vec![replica.url("/v1"), MODEL.to_string()],
    )
    .await;
    let seen: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    let stream = &seen["stream"];
    assert_eq!(stream["roles"], json!(["assistant"]), "{stream}");
    assert_eq!(stream["contents"].as_array().unwrap().len(), 24, "{stream}");
    let finishes = stream["finishes"].as_array().unwrap();
    assert_eq!(finishes.last().unwrap(), "length", "{stream}");
    assert_eq!(stream["usage"]["completion_tokens"], 24, "{stream}");
    assert_eq!(stream["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let whole = &seen["whole"];
    let streamed_text: String = stream["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        whole["chat"], streamed_text,
        "the same prompt, the same reply"
    );
    assert_eq!(whole["chat_finish"], "length");
    assert!(
        whole["chat_usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() >= Some(16),
        "the second time the conversation's prefix is cached: {whole}"
    );
    assert_eq!(whole["text_usage"]["completion_tokens"], 5);

    let errors = &seen["errors"];
    assert_eq!(errors["missing"]["status"], 404, "{errors}");
    assert!(
        errors["missing"].to_string().contains("does not exist"),
        "{errors}"
    );
    assert_eq!(errors["models"], json!([MODEL]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_prefix_makes_the_first_token_come_sooner() {
    // At the profile's own speed: prefilling 6 000 tokens takes ~110 ms, a cached one ~6 ms.
    let replica = LlmReplica::start("r1", |_| {}).await;
    let url = replica.url("/v1/chat/completions");
    let client = http1_client();
    let (a, b) = (words("alpha", 6000), words("bravo", 6000));

    let uncached_a = post_streamed(&client, &url, &chat(&a, "first question", 2)).await;
    let cached_a = post_streamed(&client, &url, &chat(&a, "another question", 2)).await;
    let uncached_b = post_streamed(&client, &url, &chat(&b, "first question", 2)).await;

    assert_eq!(cached_tokens(&uncached_a), 0);
    assert_eq!(cached_tokens(&uncached_b), 0);
    assert!(
        cached_tokens(&cached_a) >= 6000,
        "{:?}",
        cached_a.chunks().last()
    );
    let uncached = uncached_a.first_byte.min(uncached_b.first_byte);
    assert!(
        cached_a.first_byte.as_secs_f64() < 0.5 * uncached.as_secs_f64(),
        "cached prefix: first token after {:?}; uncached: {:?} and {:?}",
        cached_a.first_byte,
        uncached_a.first_byte,
        uncached_b.first_byte
    );

    let text = replica_metrics(&replica).await;
    assert!(metric(&text, &series("vllm:prefix_cache_hits_total")) >= 6000.0);
    assert!(
        metric(&text, &series("vllm:prefix_cache_queries_total"))
            > metric(&text, &series("vllm:prefix_cache_hits_total"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_makes_requests_wait_and_the_metrics_show_it() {
    let replica = LlmReplica::start("r1", |s| {
        s.speedup = 4.0;
        s.profile.max_running = 2;
    })
    .await;
    let url = replica.url("/v1/chat/completions");
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let url = url.clone();
            let body = chat(&words(&format!("q{i}"), 50), "go on", 100);
            tokio::spawn(async move { post_streamed(&http1_client(), &url, &body).await })
        })
        .collect();

    let waiting = eventually(LIMIT, || async {
        let text = replica_metrics(&replica).await;
        let running = metric(&text, &series("vllm:num_requests_running"));
        let waiting = metric(&text, &series("vllm:num_requests_waiting"));
        let kv = metric(&text, &series("vllm:kv_cache_usage_perc"));
        (running == 2.0 && waiting >= 1.0 && kv > 0.0).then_some(waiting)
    })
    .await;
    assert!(waiting.is_some(), "never saw a full batch with a queue");

    let mut done = Vec::new();
    for request in requests {
        let streamed = request.await.unwrap();
        assert_eq!(contents(&streamed).len(), 100);
        done.push(streamed);
    }
    // Two at a time: the last two started only after two pairs had finished all their tokens.
    done.sort_by_key(|s| s.first_byte);
    assert!(
        done[0].first_byte < done[0].total / 2,
        "tokens are streamed as they are generated, not held: first byte {:?}, end {:?}",
        done[0].first_byte,
        done[0].total
    );
    let first_pair_done = done[0].total.min(done[1].total);
    assert!(
        done[4].first_byte > first_pair_done,
        "a queued request's first token ({:?}) came before a running one finished ({:?})",
        done[4].first_byte,
        first_pair_done
    );

    let text = replica_metrics(&replica).await;
    assert_eq!(metric(&text, &series("vllm:num_requests_running")), 0.0);
    assert_eq!(metric(&text, &series("vllm:num_requests_waiting")), 0.0);
    assert_eq!(metric(&text, &series("vllm:kv_cache_usage_perc")), 0.0);
    assert_eq!(
        metric(&text, &series("vllm:generation_tokens_total")),
        600.0
    );
    assert_eq!(
        metric(&text, &series("vllm:time_to_first_token_seconds_count")),
        6.0
    );
    let success = format!(
        "vllm:request_success_total{{engine=\"0\",finished_reason=\"length\",model_name=\"{MODEL}\"}}"
    );
    assert_eq!(metric(&text, &success), 6.0);
    let queued = metric(&text, &series("vllm:request_queue_time_seconds_sum"));
    assert!(queued > 0.0, "{queued}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbx_run_scrapes_the_replicas_vllm_metrics_as_signals() {
    let replica = LlmReplica::start("r1", |s| {
        s.speedup = 2.0;
        s.profile.max_running = 1;
    })
    .await;
    let dir = TempDir::new("llm-sim");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        format!(
            "[[backend]]\nurl = \"{}\"\nid = \"replica\"\n\n[signals]\ninterval = \"100ms\"\n\
             metrics = [\"vllm:num_requests_waiting\", \"vllm:num_requests_running\", \
             \"vllm:kv_cache_usage_perc\", \"vllm:prefix_cache_hits_total\"]\n",
            replica.url("")
        ),
    )
    .unwrap();
    let lbx = LbxProcess::run(&["--config", config.to_str().unwrap()]);
    let url = format!("http://{}/v1/chat/completions", lbx.addr);
    let system = words("shared", 400);
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            let body = chat(&system, &format!("question {i}"), 150);
            tokio::spawn(async move { post_streamed(&http1_client(), &url, &body).await })
        })
        .collect();

    let signals = || async {
        admin_backend(lbx.admin, "replica")
            .await
            .map(|b| b["signals"]["values"].clone())
            .unwrap_or_default()
    };
    let busy = eventually(LIMIT, || async {
        let values = signals().await;
        let waiting = values["vllm:num_requests_waiting"].as_f64()?;
        let running = values["vllm:num_requests_running"].as_f64()?;
        let kv = values["vllm:kv_cache_usage_perc"].as_f64()?;
        (waiting >= 1.0 && running == 1.0 && kv > 0.0).then_some(values)
    })
    .await;
    assert!(
        busy.is_some(),
        "lbx never showed the queue; last seen: {}",
        signals().await
    );

    for request in requests {
        let streamed = request.await.unwrap();
        assert_eq!(streamed.status, 200);
        assert_eq!(streamed.headers["x-llm-replica"], "r1", "relayed by lbx");
        assert_eq!(streamed.events.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(contents(&streamed).len(), 150);
    }
    let idle = eventually(LIMIT, || async {
        let values = signals().await;
        let hits = values["vllm:prefix_cache_hits_total"].as_f64()?;
        (values["vllm:num_requests_waiting"] == 0.0 && hits >= 3.0 * 384.0).then_some(values)
    })
    .await;
    assert!(
        idle.is_some(),
        "the shared system prompt should hit the cache three times; last seen: {}",
        signals().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_answered_as_vllm_answers_them() {
    let replica = LlmReplica::start("r1", |s| {
        s.models = vec!["llama".into(), "llama-alias".into()];
        s.profile.max_model_len = 64;
        s.speedup = 10.0;
    })
    .await;
    let chat_url = replica.url("/v1/chat/completions");

    let (status, _, body) = post_json(
        &chat_url,
        r#"{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"message": "The model `gpt-9` does not exist.",
                         "type": "NotFoundError", "param": "model", "code": 404}})
    );

    for (body, says) in [
        ("{\"messages\": ", "the body is not JSON"),
        (
            r#"{"messages": [{"role": "user", "content": 7}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}"#,
            "max_tokens",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}"#,
            "maximum context length is 64 tokens",
        ),
    ] {
        let (status, _, answer) = post_json(&chat_url, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "BadRequestError");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }

    let alias = r#"{"model": "llama-alias", "prompt": "hi", "max_tokens": 2}"#;
    let (status, _, body) = post_json(&replica.url("/v1/completions"), alias).await;
    assert_eq!((status, &body["model"]), (200, &json!("llama-alias")));

    let (status, _, body) = get(&replica.url("/v1/models")).await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["llama", "llama-alias"]);
    assert_eq!(models["data"][0]["max_model_len"], 64);

    let (status, headers, _) = get(&chat_url).await;
    assert_eq!(
        (status.as_u16(), &headers["x-llm-replica"]),
        (405, &"r1".parse().unwrap())
    );
    assert_eq!(get(&replica.url("/nope")).await.0, 404);
    assert_eq!(get(&replica.url("/health")).await.0, 200);
    // The metrics are labelled with the first served name.
    let text = replica_metrics(&replica).await;
    assert!(text.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 0.0"));
}

/// `lbx backend --llm` as its own process; killed when dropped.
struct ReplicaProcess(std::process::Child);

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbx_backend_llm_serves_from_the_command_line_and_names_a_bad_flag() {
    let (ok, stderr) = run_lbx_to_exit(&[
        "backend",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "x",
        "--llm",
        "--speedup",
        "0",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--speedup must be a positive number, got 0"),
        "{stderr}"
    );
    let (ok, stderr) = run_lbx_to_exit(&[
        "backend",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "x",
        "--max-running",
        "3",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--llm"),
        "simulator flags need --llm: {stderr}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let _process = ReplicaProcess(
        std::process::Command::new(LBX_BIN)
            .args([
                "backend",
                "--llm",
                "--listen",
                &addr,
                "--name",
                "proc",
                "--model",
                "m",
                "--speedup",
                "10",
                "--max-running",
                "4",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start lbx backend --llm"),
    );
    let listening = eventually(LIMIT, || async {
        tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())
    })
    .await;
    assert!(listening.is_some(), "lbx backend --llm did not listen");
    let url = format!("http://{addr}/v1/completions");
    let (status, headers, body) = post_json(
        &url,
        r#"{"model": "m", "prompt": "hello", "max_tokens": 4}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-llm-replica"], "proc");
    assert_eq!(body["usage"]["completion_tokens"], 4);
}
