//! A C plugin on the SDK (sdk/c) keeps its linear memory flat over a million decisions: the
//! SDK's exports free the arguments the generated glue hands over (the stats list, a retry's
//! tried list) and the strings the plugin asks for (path, headers, cookies). Without those frees
//! every decision leaks ~80 bytes and the instance traps at its 64 MiB cap before the millionth.
//! A Go plugin on sdk/go settles too: its arguments land in one reused arena and its garbage is
//! collected, so once its collector has found its pace (~8.5 MiB of linear memory, reached
//! within the first million or two decisions and then flat through 15 million in `lbx check`)
//! a million more decisions add no more than a collector's slack; a leak of even a few bytes a
//! decision would add megabytes.
//!
//! Each header router is built by its own build.sh (clang, lld and wasi-libc, or Go, from
//! scripts/setup.sh: a missing tool fails the build, naming it) and called in-process, as lbx
//! calls it, over requests that exercise every rule: path, header, cookie, the default group,
//! and retries.
//!
//! Run: `cargo test -p lbx --test integration plugin_memory`

use std::sync::Arc;
use std::time::Duration;

use lbx::config::{BackendConfig, BackendSpec};
use lbx::plugin::{
    Decision, KvStore, Limits, LoadOptions, LoadedPlugin, PluginEngine, RequestMeta, RetryContext,
};
use lbx::upstream::{PoolSettings, Upstreams};

use crate::support::{TempDir, build_example};

const MEMORY_CAP: usize = 64 << 20;

/// stable, canary, and the api pool (stable too), as in `other_languages`.
fn three_backends() -> Upstreams {
    let labels: [&[(&str, &str)]; 3] = [
        &[("version", "stable")],
        &[("version", "canary")],
        &[("pool", "api"), ("version", "stable")],
    ];
    let specs: Vec<BackendSpec> = labels
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            let config = BackendConfig {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..BackendConfig::at(format!("http://127.0.0.1:{}", 9001 + i))
            };
            BackendSpec::resolve(&config, &Default::default(), "backend").unwrap()
        })
        .collect();
    Upstreams::new(&specs, PoolSettings::never_connecting()).unwrap()
}

/// One request per rule, each with a few headers the plugin does or does not read.
fn requests() -> Vec<(RequestMeta, usize)> {
    let client = "127.0.0.1:40000".parse().unwrap();
    let build = |path: &str, headers: &[(&str, &str)], expected| {
        let mut builder = http::Request::get(path).header("user-agent", "memory-test");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        (
            RequestMeta::from_http(&builder.body(()).unwrap(), client),
            expected,
        )
    };
    vec![
        build("/api/users", &[], 2),
        build("/", &[("x-canary", "1")], 1),
        build("/home", &[("cookie", "theme=dark; beta=yes")], 1),
        build("/home", &[("x-canary", "0"), ("cookie", "beta=no")], 0),
    ]
}

/// `count` decisions cycling through `requests`, every fifth one a retry; each must be the
/// rule's pick (a retry of the api pool's request falls back to the stable backend 0).
fn decide(
    plugin: &LoadedPlugin,
    set: &lbx::upstream::BackendSet,
    requests: &mut [(RequestMeta, usize)],
    count: usize,
) {
    let retry = RetryContext {
        attempt: 1,
        tried: vec![2],
    };
    for n in 0..count {
        let (meta, expected) = &mut requests[n % 4];
        let retrying = n % 5 == 4;
        let decision = plugin
            .choose(meta, set, None, retrying.then_some(&retry))
            .unwrap_or_else(|e| panic!("decision {n} failed: {e}"));
        let Decision::Pick(pick) = decision else {
            panic!("decision {n} is not a pick: {decision:?}");
        };
        let expected = if retrying && *expected == 2 {
            0
        } else {
            *expected
        };
        assert_eq!(pick.backend as usize, expected, "decision {n}");
    }
}

/// Build the header router with `script`, make `warm_up` decisions, then a million more: the
/// instance's linear memory must grow by no more than `slack` bytes over the million, and every
/// decision must be right.
fn memory_stays_flat(script: &str, warm_up: usize, slack: usize) {
    let dir = TempDir::new("plugin-memory");
    let wasm = dir.join("header_router.wasm");
    build_example(script, &wasm);

    let upstreams = three_backends();
    let set = upstreams.snapshot();
    let engine = PluginEngine::new(Duration::from_secs(1)).unwrap();
    let options = LoadOptions {
        config_json: r#"{"default": {"version": "stable"}, "rules": [
            {"path_prefix": "/api", "group": {"pool": "api"}},
            {"header": "x-canary", "equals": "1", "group": {"version": "canary"}},
            {"cookie": "beta", "equals": "yes", "group": {"version": "canary"}}]}"#
            .into(),
        limits: Limits {
            deadline: Duration::from_secs(1),
            memory_bytes: MEMORY_CAP,
        },
        // One instance, so every decision runs on the instance whose memory is measured.
        max_idle: 1,
        kv: Arc::new(KvStore::new(1 << 20)),
        body_prefix: 0,
        inherit_stdio: false,
    };
    let plugin = LoadedPlugin::load_file(&engine, &wasm, options, &set).unwrap();
    let mut requests = requests();

    // Warm up: the allocator settles on the pages a decision needs.
    decide(&plugin, &set, &mut requests, warm_up);
    let warm = plugin.idle_memory_bytes();
    decide(&plugin, &set, &mut requests, 1_000_000);
    let after = plugin.idle_memory_bytes();

    assert!(warm > 0, "no instance was measured");
    assert!(
        after <= warm + slack,
        "linear memory grew from {warm} bytes after {warm_up} decisions to {after} after a \
         million more (allowed: {slack} bytes)"
    );
    let (decided, failed) = plugin.counts();
    assert!(
        decided >= 1_000_000 && failed == 0,
        "{decided} decided, {failed} failed"
    );
}

#[test]
fn a_c_plugin_keeps_its_memory_flat_over_a_million_decisions() {
    memory_stays_flat("examples/c/header_router/build.sh", 10_000, 0);
}

/// Go's collector lets the heap grow past what is live before it runs, and linear memory never
/// shrinks: after a million decisions to find its pace, a million more may add at most 1 MiB
/// (the ~80 bytes a decision makes, kept, would add 80).
#[test]
fn a_go_plugin_keeps_its_memory_flat_over_a_million_decisions() {
    memory_stays_flat("examples/go/header_router/build.sh", 1_000_000, 1 << 20);
}
