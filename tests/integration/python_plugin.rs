//! The Python header router (examples/python/header_router), built with componentize-py and
//! loaded by lbx, routes real requests as its rules say.

use std::process::Command;

use crate::support::{TempDir, TestBackend, TestProxy, admin_get, get, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_header_router_routes_by_path_and_header() {
    let dir = TempDir::new("python");
    let wasm = dir.join("header_router.wasm");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let build = Command::new("bash")
        .arg(format!("{root}/examples/python/header_router/build.sh"))
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "building the Python plugin failed (scripts/setup.sh installs componentize-py):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

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
    let proxy = TestProxy::start(&toml).await;

    assert_eq!(get(&proxy.url("/api/users")).await.2, "api");
    let request = http::Request::get(proxy.url("/"))
        .header("x-canary", "1")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    let (_, _, body) = crate::support::send(&crate::support::http1_client(), request).await;
    assert_eq!(body, "canary");
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
        "the Python plugin made every decision:\n{text}"
    );
}
