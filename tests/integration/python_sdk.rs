//! The Python plugin SDK (sdk/python/lbx_router) and the Python examples (header_router,
//! llm_router) pass their own pytest tests on the SDK's native test kit, and that kit really
//! fails a wrong plugin: a deliberately failing test makes pytest exit non-zero naming the
//! assertion.
//!
//! pytest is installed by scripts/setup.sh (pinned, like componentize-py); a missing pytest is a
//! failure naming it, never a silent skip. No Wasm is built here: the examples' Wasm builds are
//! tested by `other_languages`.
//!
//! Run: `cargo test -p lbx --test integration python_sdk`

use std::path::Path;
use std::process::{Command, Output};

use crate::support::TempDir;
use crate::support::output_text as text;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `python3 -m pytest -q <args>` in `dir`, the SDK importable, leaving no cache or bytecode
/// behind in the repository.
fn pytest(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", format!("{ROOT}/sdk/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named pytest"),
        "pytest is needed for the Python SDK's tests: run scripts/setup.sh (it installs pytest)"
    );
    output
}

#[test]
fn the_python_sdk_and_example_tests_pass_under_pytest() {
    let run = pytest(
        Path::new(ROOT),
        &["sdk/python/tests", "examples/python/header_router"],
    );
    let report = text(&run);
    assert!(run.status.success(), "pytest failed:\n{report}");
    assert!(
        report.contains(" passed") && !report.contains("failed") && !report.contains("skipped"),
        "{report}"
    );
}

/// A run of its own: each example has a `test_app.py` (and an `app` module), and pytest refuses
/// two test modules of one name in one run.
#[test]
fn the_python_llm_router_tests_pass_under_pytest() {
    let run = pytest(Path::new(ROOT), &["examples/python/llm_router"]);
    let report = text(&run);
    assert!(run.status.success(), "pytest failed:\n{report}");
    assert!(
        report.contains(" passed") && !report.contains("failed") && !report.contains("skipped"),
        "{report}"
    );
}

#[test]
fn a_failing_assertion_makes_the_python_test_kit_fail() {
    let dir = TempDir::new("python-sdk");
    std::fs::write(
        dir.join("test_wrong.py"),
        "import lbx_router\n\
         from lbx_router import testkit as t\n\
         \n\
         class First(lbx_router.Router):\n\
         \x20   def choose(self, request, backends, retry):\n\
         \x20       return lbx_router.pick(backends.candidates(retry)[0])\n\
         \n\
         def test_the_down_backend_is_picked():\n\
         \x20   plugin = t.Plugin(First, {}, [t.labeled('a'), t.labeled('b')])\n\
         \x20   picked = t.picked(plugin.choose(t.get('/'), [t.backend(False), t.backend()]))\n\
         \x20   assert picked == 0\n",
    )
    .unwrap();
    let run = pytest(&dir.path, &["test_wrong.py"]);
    let report = text(&run);
    // pytest's exit code 1 means "tests ran and some failed" (not a collection or usage error).
    assert_eq!(run.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAILED test_wrong.py::test_the_down_backend_is_picked")
            && report.contains("assert 1 == 0"),
        "{report}"
    );
}
