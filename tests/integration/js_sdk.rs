//! The JavaScript plugin SDK (sdk/js, `@lbx/router`) and the JavaScript header router pass their
//! own `node --test` tests on the SDK's native test kit, and that kit really fails a wrong
//! plugin: a deliberately failing assertion makes `node --test` exit non-zero naming it.
//!
//! Node.js is installed by scripts/setup.sh; a missing `node` is a failure naming it, never a
//! silent skip. No Wasm is built here (the example's Wasm build is tested by `other_languages`),
//! and nothing is installed: the SDK has no dependencies, and the example's tests run from a
//! copy whose `node_modules/@lbx/router` links to sdk/js. (The example's own node_modules holds
//! the build toolchain, which `other_languages` may be reinstalling with `npm ci` at the same
//! moment.)
//!
//! Run: `cargo test -p lbx --test integration js_sdk`

use std::path::Path;
use std::process::{Command, Output};

use crate::support::TempDir;
use crate::support::output_text as text;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `node --test` in `dir` (every `*.test.js` under it, node_modules excluded).
fn node_test(dir: &Path) -> Output {
    let run = Command::new("node").arg("--test").current_dir(dir).output();
    match run {
        Ok(output) => output,
        Err(error) => panic!(
            "`node` is needed for the JavaScript SDK's tests: run scripts/setup.sh (it installs \
             Debian's nodejs): {error}"
        ),
    }
}

/// A directory where `import ... from "@lbx/router"` finds sdk/js, as an npm install would.
fn with_sdk(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    let scope = dir.join("node_modules/@lbx");
    std::fs::create_dir_all(&scope).unwrap();
    let sdk = Path::new(ROOT).join("sdk/js").canonicalize().unwrap();
    std::os::unix::fs::symlink(sdk, scope.join("router")).unwrap();
    dir
}

/// The summary counts of a `node --test` report: (tests, pass, fail, skipped, todo).
fn counts(report: &str) -> [u32; 5] {
    let count = |name: &str| {
        report
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {name} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {name}` line:\n{report}"))
    };
    ["tests", "pass", "fail", "skipped", "todo"].map(count)
}

#[test]
fn the_js_sdk_tests_pass_under_node_test() {
    let run = node_test(&Path::new(ROOT).join("sdk/js"));
    let report = text(&run);
    assert!(run.status.success(), "node --test failed:\n{report}");
    let [tests, pass, fail, skipped, todo] = counts(&report);
    assert!(
        tests >= 20 && pass == tests && fail + skipped + todo == 0,
        "{report}"
    );
}

#[test]
fn the_js_header_router_tests_pass_under_node_test() {
    let dir = with_sdk("js-example");
    let example = Path::new(ROOT).join("examples/js/header_router");
    for file in ["package.json", "app.js", "app.test.js"] {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    let run = node_test(&dir.path);
    let report = text(&run);
    assert!(run.status.success(), "node --test failed:\n{report}");
    let [tests, pass, fail, skipped, todo] = counts(&report);
    assert!(
        tests >= 9 && pass == tests && fail + skipped + todo == 0,
        "{report}"
    );
    assert!(
        report.contains("ok 1 - a path under /api goes to the api pool"),
        "{report}"
    );
}

#[test]
fn a_failing_assertion_makes_the_js_test_kit_fail() {
    let dir = with_sdk("js-sdk");
    std::fs::write(dir.join("package.json"), r#"{ "type": "module" }"#).unwrap();
    std::fs::write(
        dir.join("wrong.test.js"),
        r#"import assert from "node:assert/strict";
import { test } from "node:test";
import { pick, Router } from "@lbx/router";
import * as t from "@lbx/router/testkit";

class First extends Router {
  choose(_request, backends, retry) {
    return pick(backends.candidates(retry)[0]);
  }
}

test("the down backend is picked", () => {
  const plugin = new t.Plugin(First, {}, [t.labeled("a"), t.labeled("b")]);
  const picked = t.picked(plugin.choose(t.get("/"), [t.backend({ healthy: false }), t.backend()]));
  assert.equal(picked, 0);
});
"#,
    )
    .unwrap();
    let run = node_test(&dir.path);
    let report = text(&run);
    // node --test exits 1 when a test failed (the kit ran the router, which picked backend 1).
    assert_eq!(run.status.code(), Some(1), "{report}");
    assert!(
        report.contains("not ok 1 - the down backend is picked") && report.contains("1 !== 0"),
        "{report}"
    );
    assert_eq!(counts(&report)[2], 1, "{report}");
}
