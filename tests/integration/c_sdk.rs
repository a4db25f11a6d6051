//! The C plugin SDK (sdk/c) and the C header router pass their native tests on the SDK's test
//! kit, and that kit really fails a wrong plugin: a deliberately wrong expectation makes the
//! run exit non-zero naming the check, and so does a plugin that leaks what it is given.
//!
//! The native tests need a C compiler and cargo (tools/plugin-tools generates the bindings' header);
//! scripts/setup.sh installs clang. A missing tool is a failure naming it, never a silent skip.
//! No Wasm is built here: the example's Wasm build is tested by `other_languages` and
//! `plugin_memory`.
//!
//! Run: `cargo test -p lbx --test integration c_sdk`

use std::process::{Command, Output};

use crate::support::TempDir;
use crate::support::output_text as text;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// examples/c/header_router/test.sh with these test files (its own tests when none).
fn run_tests(files: &[&std::path::Path]) -> Output {
    Command::new("bash")
        .arg(format!("{ROOT}/examples/c/header_router/test.sh"))
        .args(files)
        .output()
        .expect("bash runs")
}

#[test]
fn the_c_header_router_passes_its_native_tests() {
    let run = run_tests(&[]);
    let report = text(&run);
    assert!(run.status.success(), "the C tests failed:\n{report}");
    assert!(report.contains(" checks, 0 failed"), "{report}");
}

#[test]
fn a_wrong_expectation_makes_the_c_test_kit_fail() {
    let dir = TempDir::new("c-sdk");
    let test = dir.join("test_wrong.c");
    // The api pool's request goes to backend 2; expecting 0 must fail, naming the check.
    std::fs::write(
        &test,
        "#include \"lbx_router_testkit.h\"\n\
         static void the_api_goes_to_the_first_backend(void) {\n\
         \x20   LBX_EXPECT(lbx_test_init(\"{\\\"rules\\\": [{\\\"path_prefix\\\": \\\"/api\\\", \\\"group\\\": {\\\"pool\\\": \\\"api\\\"}}]}\") == NULL);\n\
         \x20   lbx_test_backends(\"version=stable\", \"version=canary\", \"pool=api\", NULL);\n\
         \x20   lbx_test_request req = lbx_test_get(\"/api/users\");\n\
         \x20   lbx_test_backend idle[3] = {{true, 0}, {true, 0}, {true, 0}};\n\
         \x20   LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, idle, 3)), 0);\n\
         }\n\
         int main(void) { LBX_RUN(the_api_goes_to_the_first_backend); return lbx_test_finish(); }\n",
    )
    .unwrap();
    let run = run_tests(&[&test]);
    let report = text(&run);
    assert_eq!(run.status.code(), Some(1), "{report}");
    assert!(
        report.contains("the_api_goes_to_the_first_backend")
            && report.contains("is 2, expected 0")
            && report.contains("2 checks, 1 failed"),
        "{report}"
    );
}

#[test]
fn a_leak_in_a_plugin_fails_the_c_test_kit() {
    let dir = TempDir::new("c-sdk-leak");
    let test = dir.join("test_leak.c");
    // Every check passes, but the test drops header copies the SDK handed it without freeing
    // them: AddressSanitizer's leak check must fail the run.
    std::fs::write(
        &test,
        "#include \"lbx_router_testkit.h\"\n\
         static void a_header_copy_is_never_freed(void) {\n\
         \x20   lbx_test_request req = lbx_test_get(\"/\");\n\
         \x20   lbx_test_header(&req, \"x-id\", \"7\");\n\
         \x20   lbx__test_request = &req;\n\
         \x20   lbx_router_types_borrow_request_t handle = {1};\n\
         \x20   for (int i = 0; i < 100; i++) {\n\
         \x20       lbx_string id = lbx_request_header(handle, \"x-id\");\n\
         \x20       LBX_EXPECT(id.present && id.len == 1);\n\
         \x20   }\n\
         \x20   lbx__test_request = NULL;\n\
         }\n\
         int main(void) { LBX_RUN(a_header_copy_is_never_freed); return lbx_test_finish(); }\n",
    )
    .unwrap();
    let run = run_tests(&[&test]);
    let report = text(&run);
    assert!(!run.status.success(), "{report}");
    assert!(
        report.contains("100 checks, 0 failed") && report.contains("LeakSanitizer"),
        "{report}"
    );
}
