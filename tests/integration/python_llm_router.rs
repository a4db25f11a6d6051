//! The Python LLM router (examples/python/llm_router: the Rust llm_router's scoring ported on
//! the Python SDK), built by its build.sh and loaded by lbx, routes OpenAI-style requests over
//! real sockets to plain test backends, once `lbx check` accepts it with a body prefix and
//! signals configured. It reads each body's model and prompt from the prefix lbx reads ahead:
//! a model goes only to a backend serving it, a model no backend serves is answered 404, and
//! the same conversation goes back to the backend that has its prefix. Every decision must be
//! the plugin's (a Python error or a missed deadline would be lbx's fallback).
//!
//! componentize-py is installed by scripts/setup.sh: a missing one is a failure naming it,
//! never a silent skip (as in `other_languages`).
//!
//! Run: `cargo test -p lbx --test integration python_llm_router`

use std::path::Path;

use crate::llm_router::{chat, post};
use crate::support::{
    TempDir, TestBackend, TestProxy, admin_get, build_example, check_names_language, metric,
};

/// `[plugin]` with a 16 KiB body prefix, then one backend per `(url, model label)` with the
/// `id` `b<i>` (as in `llm_router`).
fn llm_config(plugin: &str, backends: &[(String, &str)]) -> String {
    let mut toml =
        format!("[plugin]\npath = {plugin:?}\nbody_prefix = \"16KiB\"\ndeadline = \"1s\"\n");
    for (i, (url, model)) in backends.iter().enumerate() {
        toml.push_str(&format!(
            "[[backend]]\nurl = {url:?}\nid = \"b{i}\"\nlabels = {{ model = {model:?} }}\n"
        ));
    }
    toml
}

/// vLLM's signals, as examples/python/llm_router/README.md configures them.
const SIGNALS: &str = r#"
[signals]
metrics = ["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"]
"#;

/// `lbx check` accepts the plugin with `toml` (its body prefix and signals) and names Python.
fn check(wasm: &Path, toml: &str, dir: &TempDir) {
    let config = dir.join("check.toml");
    std::fs::write(&config, toml).unwrap();
    check_names_language(wasm, Some(&config), "Python");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_llm_router_filters_by_model_and_keeps_a_conversation_on_its_backend() {
    let dir = TempDir::new("python-llm");
    let wasm = dir.join("llm_router.wasm");
    build_example("examples/python/llm_router/build.sh", &wasm);
    let llama = [
        TestBackend::named("llama-1").await,
        TestBackend::named("llama-2").await,
    ];
    let mistral = TestBackend::named("mistral").await;
    let backends = [
        (llama[0].url(), "llama-3-8b"),
        (llama[1].url(), "llama-3-8b"),
        (mistral.url(), "mistral-7b"),
    ];
    let config = llm_config(wasm.to_str().unwrap(), &backends);
    check(&wasm, &format!("{config}{SIGNALS}"), &dir);
    let proxy = TestProxy::start(&config).await;

    let (status, _) = post(&proxy, "/v1/chat/completions", chat("gpt-4o", 0, 0)).await;
    assert_eq!(status, 404, "no backend serves gpt-4o");
    for n in 0..3 {
        let (status, name) = post(&proxy, "/v1/chat/completions", chat("mistral-7b", n, 0)).await;
        assert_eq!((status, name.as_str()), (200, "mistral"));
    }

    // Requests go one at a time, so the backends are idle when each is decided: new
    // conversations tie, and ties take turns (4 decisions in a row reach both llama backends);
    // after that only the prefix index tells the two apart.
    let mut homes = Vec::new();
    for n in 0..4 {
        let (status, home) = post(&proxy, "/v1/chat/completions", chat("llama-3-8b", n, 0)).await;
        assert_eq!(status, 200);
        assert!(home.starts_with("llama-"), "llama-3-8b went to {home}");
        homes.push(home);
    }
    assert!(
        homes.iter().any(|h| h == "llama-1") && homes.iter().any(|h| h == "llama-2"),
        "new conversations spread over the idle backends: {homes:?}"
    );
    for n in [2, 0, 3, 1] {
        let home = &homes[n as usize];
        let (_, again) = post(&proxy, "/v1/chat/completions", chat("llama-3-8b", n, 0)).await;
        assert_eq!(&again, home, "conversation {n} sent again");
        let (_, next_turn) = post(&proxy, "/v1/chat/completions", chat("llama-3-8b", n, 1)).await;
        assert_eq!(&next_turn, home, "conversation {n}'s next turn");
    }
    assert_eq!(
        mistral.requests(),
        3,
        "nothing else reached the mistral backend"
    );

    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&text, "lbx_decisions_total{by=\"plugin\"}"),
        16.0,
        "the plugin made every decision (1 + 3 + 4 × 3 requests):\n{text}"
    );
}
