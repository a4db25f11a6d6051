//! Cost of one routing decision through the Wasm boundary: least_conn over 8 backends for a
//! request carrying 20 headers the plugin does not read. Target: ≤ 1 µs.
//!
//! Contract 0.2 against 0.1: the same least_conn built for `lbx:router@0.1.0` (the checked-in
//! fixture) must cost no less than the 0.2 build. Outcome feedback: `p2c_ewma` (which asks for
//! outcomes) with and without the `on-outcome` call that follows each of its decisions; the
//! difference is what feedback adds per request (target ≤ 0.5 µs).
//!
//! LLM routing: `llm_router` over the same 8 backends for a `POST /v1/chat/completions` whose
//! body prefix is a 4 KiB chat (a 1 KiB system prompt shared by every conversation, then the
//! conversation's own turns). "the same conversation again" finds its whole prompt in the
//! prefix index and writes nothing; "a new conversation each time" matches only the system
//! prompt and records its new blocks (key-value writes and ring evictions included, once the
//! index is full). Target: ≤ 5 µs.
//!
//! The "cold caches" variants write 64 MiB between two decisions, as the rest of a machine does
//! to lbx's memory while it waits for the next request when requests come one at a time: they
//! measure what `decision_us` in an access line shows then (see README, "Access log").
//!
//! Run: `cargo bench -p lbx --bench decision`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lbx::check::CacheEvicter;
use lbx::config::{BackendConfig, BackendSpec};
use lbx::outcome::Outcome;
use lbx::plugin::{
    Breaker, Decider, KvStore, Limits, LoadOptions, LoadedPlugin, PluginEngine, RequestCtx,
    RequestMeta,
};
use lbx::plugin::{DecidedBy, DecisionMetrics};
use lbx::upstream::{PoolSettings, Upstreams};

fn request_with_20_headers() -> RequestMeta {
    let mut builder = http::Request::get("/api/v1/users/42?expand=orders");
    for i in 0..20 {
        builder = builder.header(format!("x-header-{i}"), format!("value-number-{i}"));
    }
    let request = builder.body(()).unwrap();
    RequestMeta::from_http(&request, "127.0.0.1:40000".parse().unwrap())
}

/// A chat completion body of exactly 4 KiB: a system prompt every conversation shares, then
/// conversation `n`'s own messages.
fn chat_body_4kib(n: u64) -> Bytes {
    let system = "You are a careful assistant for an online shop. Answer briefly. ".repeat(16);
    let turn = format!("Conversation {n}: where is my order, and when will it arrive? ");
    let mut body = format!(
        r#"{{"model":"llama-3-8b","stream":true,"messages":[{{"role":"system","content":"{system}"}},{{"role":"user","content":"{}"#,
        turn.repeat(64)
    );
    body.truncate(4096);
    Bytes::from(body)
}

/// A `POST /v1/chat/completions` with `body` as its body prefix.
fn chat_request(body: Bytes) -> RequestCtx {
    let request = http::Request::post("/v1/chat/completions")
        .header("host", "llm.example")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let mut meta = RequestMeta::from_http(&request, "127.0.0.1:40000".parse().unwrap());
    meta.body_prefix = Some(body);
    RequestCtx::new(meta)
}

fn eight_backends() -> Upstreams {
    let configs: Vec<BackendConfig> = (0..8)
        .map(|i| BackendConfig {
            id: Some(format!("backend-{i}")),
            labels: [("pool".to_string(), "web".to_string())].into(),
            ..BackendConfig::at(format!("http://127.0.0.1:{}", 9001 + i))
        })
        .collect();
    let specs: Vec<_> = configs
        .iter()
        .map(|config| BackendSpec::resolve(config, &Default::default(), "backend").unwrap())
        .collect();
    Upstreams::new(&specs, PoolSettings::from_config(&lbx::Config::default())).unwrap()
}

fn decision(c: &mut Criterion) {
    let engine = PluginEngine::new(Duration::from_millis(5)).unwrap();
    let limits = Limits {
        deadline: Duration::from_millis(5),
        memory_bytes: 64 << 20,
    };
    let upstreams = eight_backends();
    let set = upstreams.snapshot();
    let options = LoadOptions {
        config_json: "{}".into(),
        limits,
        max_idle: 1,
        kv: Arc::new(KvStore::new(1 << 20)),
        body_prefix: 0,
        inherit_stdio: false,
    };
    let load = |path: &str| LoadedPlugin::load_file(&engine, path.as_ref(), options.clone(), &set);
    let plugin = load(env!("LBX_PLUGIN_LEAST_CONN")).unwrap();
    let v0_1_plugin = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/contract-0.1/least_conn.wasm"
    ))
    .unwrap();
    let p2c = load(env!("LBX_PLUGIN_P2C_EWMA")).unwrap();
    let breaker = || Breaker::new(5, Duration::from_secs(30));
    // Some load so the plugin has a real minimum to find.
    let _busy: Vec<_> = (0..8)
        .flat_map(|i| (0..(i % 3)).map(move |_| i))
        .map(|i| set.backends[i].stats.start_request())
        .collect();

    let with_plugin = Decider::new(Some(plugin), breaker(), DecisionMetrics::default());
    let mut request = RequestCtx::new(request_with_20_headers());
    c.bench_function("least_conn decision (8 backends, 20 headers)", |b| {
        b.iter(|| black_box(with_plugin.route(&mut request, &set)))
    });

    let v0_1 = Decider::new(Some(v0_1_plugin), breaker(), DecisionMetrics::default());
    c.bench_function("least_conn decision, contract 0.1 build", |b| {
        b.iter(|| black_box(v0_1.route(&mut request, &set)))
    });

    let feedback = Decider::new(Some(p2c), breaker(), DecisionMetrics::default());
    let p2c = feedback.current().expect("installed");
    let outcome = Outcome::answered(0, http::StatusCode::OK, Duration::from_micros(800));
    c.bench_function("p2c_ewma decision", |b| {
        b.iter(|| black_box(feedback.route(&mut request, &set)))
    });
    c.bench_function("p2c_ewma decision + outcome feedback", |b| {
        b.iter(|| {
            let routed = feedback.route(&mut request, &set);
            feedback.hear(&p2c, 3, &outcome, 7);
            black_box(routed)
        })
    });

    let llm = LoadedPlugin::load_file(
        &engine,
        env!("LBX_PLUGIN_LLM_ROUTER").as_ref(),
        LoadOptions {
            body_prefix: 4096,
            ..options.clone()
        },
        &set,
    )
    .unwrap();
    let llm = Decider::new(Some(llm), breaker(), DecisionMetrics::default());
    let mut same = chat_request(chat_body_4kib(0));
    assert_eq!(same.meta.body_prefix.as_ref().map(Bytes::len), Some(4096));
    c.bench_function(
        "llm_router decision, 4 KiB chat, the same conversation again",
        |b| b.iter(|| black_box(llm.route(&mut same, &set))),
    );
    let mut conversation = 0;
    c.bench_function(
        "llm_router decision, 4 KiB chat, a new conversation each time",
        |b| {
            b.iter_batched_ref(
                || {
                    conversation += 1;
                    chat_request(chat_body_4kib(conversation))
                },
                |request| black_box(llm.route(request, &set)),
                BatchSize::SmallInput,
            )
        },
    );
    // Every decision is the plugin's own, but for the rare one cut off by its 5 ms deadline
    // when the machine preempts the benchmark.
    let by = llm.metrics().decided_counts();
    let total: u64 = by.iter().map(|&(_, n)| n).sum();
    let fallbacks: u64 = by
        .iter()
        .filter(|&&(who, _)| who != DecidedBy::Plugin)
        .map(|&(_, n)| n)
        .sum();
    assert!(fallbacks * 10_000 <= total, "llm_router decisions: {by:?}");

    let builtin = Decider::new(None, breaker(), DecisionMetrics::default());
    c.bench_function("built-in least-in-flight (8 backends)", |b| {
        b.iter(|| black_box(builtin.route(&mut request, &set)))
    });

    let mut evicter = CacheEvicter::new(CacheEvicter::DEFAULT_BYTES);
    for (name, decider) in [
        ("least_conn decision, cold caches", &with_plugin),
        ("built-in least-in-flight, cold caches", &builtin),
    ] {
        c.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    evicter.evict();
                    let started = Instant::now();
                    let routed = decider.route(&mut request, &set);
                    total += started.elapsed();
                    black_box(routed);
                }
                total
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = decision
}
criterion_main!(benches);
