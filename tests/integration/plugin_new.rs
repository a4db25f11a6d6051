//! `lbx plugin new`: a project created for each language passes its own tests, fails them when
//! its logic is broken (the test kit is really wired), builds into a component, and that
//! component passes `lbx check` and routes real requests through lbx.
//!
//! Run: `cargo test -p lbx --test integration plugin_new`

use std::path::Path;
use std::process::{Command, Output};

use crate::support::output_text as text;
use crate::support::{
    LBX_BIN, TempDir, TestBackend, TestProxy, admin_get, config_for_urls, get, metric,
};

fn run(dir: &Path, program: &str, args: &[&str], target: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        // The project's own build, apart from lbx's (and gone with the test's directory).
        .env("CARGO_TARGET_DIR", target)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"))
}

/// `lbx plugin new --lang LANG NAME` in `dir`; the project's directory.
fn create(dir: &Path, lang: &str, name: &str) -> std::path::PathBuf {
    let made = Command::new(LBX_BIN)
        .args(["plugin", "new", "--lang", lang, name, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    dir.join(name)
}

/// The built plugin passes `lbx check` (naming `language`; with the project's own config when
/// it ships one), and lbx serves through it: every request answered by one of the two
/// backends, every decision the plugin's.
async fn check_and_route(wasm: &Path, language: &str, config: Option<&Path>) {
    let mut check = Command::new(LBX_BIN);
    check.args(["check", wasm.to_str().unwrap(), "--iterations", "100"]);
    if let Some(config) = config {
        check.arg("--config").arg(config);
    }
    let check = check.output().unwrap();
    let report = text(&check);
    assert!(check.status.success(), "{report}");
    assert!(
        report.contains(&format!("  language {language} (")),
        "{report}"
    );

    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let toml = config_for_urls(Some(wasm.to_str().unwrap()), &[a.url(), b.url()], "");
    let proxy = TestProxy::start(&toml).await;
    for _ in 0..6 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert!(
            status == 200 && (body == "a" || body == "b"),
            "{status} {body}"
        );
    }
    assert_eq!(a.requests() + b.requests(), 6);
    let (_, metrics) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "lbx_decisions_total{by=\"plugin\"}"),
        6.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-python");
    let project = create(&dir.path, "python", "edge");
    let target = dir.join("target");
    let tests = run(
        &project,
        "python3",
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        &target,
    );
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("4 passed"), "{}", text(&tests));

    // The kit is wired: a plugin that always picks backend 0 fails its tests.
    let app = project.join("app.py");
    let original = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        original.replace(
            "best = backends.least_in_flight(backends.candidates(retry))",
            "best = 0",
        ),
    )
    .unwrap();
    let broken = run(
        &project,
        "python3",
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        &target,
    );
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    std::fs::write(&app, original).unwrap();

    let built = run(&project, "bash", &["build.sh"], &target);
    assert!(built.status.success(), "{}", text(&built));
    check_and_route(&project.join("edge.wasm"), "Python", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_javascript_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-js");
    let project = create(&dir.path, "js", "edge");
    let target = dir.join("target");
    // What the README says first: install the pinned toolchain and the SDK copy, then test.
    let installed = run(
        &project,
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        &target,
    );
    assert!(installed.status.success(), "{}", text(&installed));
    let tests = run(&project, "node", &["--test"], &target);
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("# pass 4"), "{}", text(&tests));

    // The kit is wired: a plugin that always picks backend 0 fails its tests.
    let router = project.join("router.js");
    let original = std::fs::read_to_string(&router).unwrap();
    std::fs::write(
        &router,
        original.replace(
            "const best = backends.leastInFlight(backends.candidates(retry));",
            "const best = 0;",
        ),
    )
    .unwrap();
    let broken = run(&project, "node", &["--test"], &target);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    std::fs::write(&router, original).unwrap();

    let built = run(&project, "bash", &["build.sh"], &target);
    assert!(built.status.success(), "{}", text(&built));
    // As its README says: with the project's lbx.toml, whose deadline outlasts the engine's
    // collection pauses.
    let config = project.join("lbx.toml");
    check_and_route(&project.join("edge.wasm"), "JavaScript", Some(&config)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-rust");
    let project = create(&dir.path, "rust", "edge");
    let target = dir.join("target");
    let tests = run(&project, "cargo", &["test", "--quiet"], &target);
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("4 passed"), "{}", text(&tests));

    let lib = project.join("src/lib.rs");
    let original = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        original.replace(
            "Some(index) => lbx_guest::pick(index),",
            "Some(_) => lbx_guest::pick(0),",
        ),
    )
    .unwrap();
    let broken = run(&project, "cargo", &["test", "--quiet"], &target);
    assert!(!broken.status.success(), "{}", text(&broken));
    std::fs::write(&lib, original).unwrap();

    let built = run(&project, "bash", &["build.sh"], &target);
    assert!(built.status.success(), "{}", text(&built));
    check_and_route(&project.join("edge.wasm"), "Rust", None).await;
}

#[test]
fn an_unknown_language_or_a_bad_name_is_refused_naming_it() {
    let dir = TempDir::new("plugin-new-refused");
    let refused = |args: &[&str]| {
        let output = Command::new(LBX_BIN)
            .args(["plugin", "new"])
            .args(args)
            .arg("--dir")
            .arg(&dir.path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        text(&output)
    };
    assert!(refused(&["--lang", "cobol", "x"]).contains("no project template for \"cobol\""));
    assert!(refused(&["--lang", "rust", "Edge-1"]).contains("plugin name \"Edge-1\""));
    create(&dir.path, "rust", "twice");
    assert!(refused(&["--lang", "rust", "twice"]).contains("already exists"));
}
