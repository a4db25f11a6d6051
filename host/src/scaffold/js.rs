//! The JavaScript project: `router.js` on a copy of the `@lbx/router` SDK (in `lbx-router/`,
//! linked as a `file:` dependency, with the contract in `wit/`), a least-in-flight router to
//! start from, its `node --test` tests on the SDK's test kit, the build entry `plugin.js`,
//! `build.sh` with the same `build.mjs` as lbx's JavaScript example (bundle, then QuickJS
//! through componentize-qjs, then `lbx plugin component --lang quickjs`), and a README. Its
//! toolchain is pinned by `package.json` and `package-lock.json` (kept in `js_template/`, made
//! by `npm install --package-lock-only` there) and installed by `npm ci`.

use super::{ProjectFile, contract, sdk_files};

/// The package name the template's `package.json` and `package-lock.json` carry, replaced by
/// the project's name (a plugin name is a valid npm name).
const TEMPLATE_NAME: &str = "\"name\": \"lbx-js-plugin\"";

/// Every file of a JavaScript project named `name`.
pub fn files(name: &str) -> Vec<ProjectFile> {
    let named = |text: &str| text.replace(TEMPLATE_NAME, &format!("\"name\": \"{name}\""));
    let mut files = vec![
        ("router.js".to_string(), ROUTER_JS.replace("{name}", name)),
        ("router.test.js".into(), ROUTER_TEST_JS.into()),
        ("plugin.js".into(), PLUGIN_JS.into()),
        ("build.sh".into(), BUILD_SH.replace("{name}", name)),
        ("build.mjs".into(), sdk_files::JS_BUILD.into()),
        ("package.json".into(), named(PACKAGE_JSON)),
        ("package-lock.json".into(), named(PACKAGE_LOCK)),
        ("README.md".into(), README.replace("{name}", name)),
        (".gitignore".into(), "/*.wasm\nnode_modules/\n".into()),
        contract(),
    ];
    for (path, contents) in sdk_files::JS_SDK {
        files.push((format!("lbx-router/{path}"), contents.to_string()));
    }
    files
}

const PACKAGE_JSON: &str = include_str!("js_template/package.json");
const PACKAGE_LOCK: &str = include_str!("js_template/package-lock.json");

const ROUTER_JS: &str = r#"//! {name}: an lbx routing plugin. As created, it sends each request to the healthy backend
//! with the fewest requests in flight, and a retry to one that has not failed the request yet;
//! with no healthy backend it has no opinion and lbx's own choice decides. Change `choose`.
//!
//! Test: npm ci && node --test. Build: bash build.sh. Check: lbx check {name}.wasm.

import { ConfigError, noOpinion, pick, Router } from "@lbx/router";

/** The plugin's state lives on this object, one per plugin instance. */
export class Plugin extends Router {
  init(config) {
    // `[plugin.config]` from lbx.toml, parsed; throw a ConfigError to refuse it.
    if (Object.keys(config).length > 0) throw new ConfigError("this plugin takes no configuration");
  }

  choose(_request, backends, retry) {
    const best = backends.leastInFlight(backends.candidates(retry));
    return best === undefined ? noOpinion() : pick(best);
  }
}
"#;

const ROUTER_TEST_JS: &str = r#"//! The plugin's logic on the SDK's native test kit: node --test (no Wasm build).

import assert from "node:assert/strict";
import { test } from "node:test";

import * as t from "@lbx/router/testkit";

import { Plugin } from "./router.js";

test("the least loaded backend is picked", () => {
  const plugin = new t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b"), t.labeled("c")]);
  assert.equal(t.picked(plugin.choose(t.get("/"), t.loads([5, 2, 9]))), 1);
});

test("a down backend is never picked", () => {
  const plugin = new t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b")]);
  const stats = [t.backend({ healthy: false }), t.backend({ inFlight: 7 })];
  assert.equal(t.picked(plugin.choose(t.get("/"), stats)), 1);
});

test("a retry goes to a backend that has not failed it", () => {
  const plugin = new t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b")]);
  assert.equal(t.picked(plugin.choose(t.get("/"), t.loads([0, 3]), t.retry([0]))), 1);
});

test("a config is refused, since none is taken", () => {
  assert.notEqual(t.refusal(Plugin, { weights: [1, 2] }), undefined);
});
"#;

const PLUGIN_JS: &str = r#"//! The Wasm build's entry (build.sh bundles it): hands the router class to the SDK's glue,
//! which exports the contract's `router` interface. Tests import router.js instead.

import { bind } from "@lbx/router/component";

import { Plugin } from "./router.js";

export const router = bind(Plugin);
"#;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Build {name}.wasm, the component lbx loads: router.js and the SDK bundled, then QuickJS
# (componentize-qjs, the toolchain package-lock.json pins, installed by `npm ci`), then
# `lbx plugin component --lang quickjs`, which makes QuickJS's component drop the request it
# borrows before `choose` returns (componentize-qjs 0.4.5 drops it after, which lbx refuses).
#
# Run: bash build.sh   (needs Node.js 20.19+, npm, and lbx on PATH or in $LBX)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
for tool in node npm; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found: install Node.js 20.19 or later" >&2; exit 1; }
done
lbx="${LBX:-lbx}"
command -v "$lbx" >/dev/null 2>&1 || { echo "lbx not found: put it on PATH or set LBX=/path/to/lbx" >&2; exit 1; }
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
node build.mjs plugin.js wit "$work/quickjs.wasm" --engine qjs >/dev/null
"$lbx" plugin component --lang quickjs "$work/quickjs.wasm" -o {name}.wasm
echo "built {name}.wasm ($(wc -c <{name}.wasm) bytes)"
"#;

const README: &str = r#"# {name}

An lbx routing plugin in JavaScript, created by `lbx plugin new --lang js {name}`.

```sh
npm ci && node --test   # the logic, in plain node, on the SDK's test kit (router.test.js)
bash build.sh           # {name}.wasm (QuickJS; needs Node.js 20.19+, npm, and lbx)
lbx check {name}.wasm   # loads it as lbx would: its decisions, their µs, its memory
```

Then run it: `lbx run --plugin {name}.wasm --backend http://127.0.0.1:9001 --backend …`, or set
`[plugin] path` in lbx.toml; replacing the file swaps it in without a restart.

`router.js` is the plugin and `plugin.js` its build entry. `lbx-router/` is a copy of lbx's
JavaScript SDK and `wit/router.wit` the contract it speaks (`lbx:router@0.2.0`); the guide to
both is docs/plugins.md in lbx's repository. The engine is QuickJS (componentize-qjs): `build.sh`
calls `lbx` (on PATH, or set `LBX=/path/to/lbx`) for its last step, which makes the component
drop the request it borrows before a decision returns.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    /// `npm ci` refuses a lock that disagrees with package.json, so a new project would not
    /// install: the template's lock must list its package.json's dependencies, the SDK copy at
    /// its current version, and the same toolchain as the example lbx measures.
    #[test]
    fn the_template_lock_matches_its_package_json_the_sdk_and_the_example() {
        let package = json(PACKAGE_JSON);
        let lock = json(PACKAGE_LOCK);
        let packages = &lock["packages"];
        for key in ["dependencies", "devDependencies"] {
            assert_eq!(packages[""][key], package[key], "{key}");
        }
        let sdk = json(include_str!("../../../sdk/js/package.json"));
        assert_eq!(packages["lbx-router"]["version"], sdk["version"]);
        let example = json(include_str!(
            "../../../examples/js/header_router/package-lock.json"
        ));
        for tool in [
            "node_modules/componentize-qjs",
            "node_modules/rolldown",
            "node_modules/@bytecodealliance/jco",
        ] {
            assert_eq!(
                packages[tool]["version"], example["packages"][tool]["version"],
                "{tool}"
            );
        }
    }

    #[test]
    fn the_project_is_named_in_its_package_files() {
        let files = files("edge");
        let text = |path: &str| {
            &files
                .iter()
                .find(|(p, _)| p == path)
                .unwrap_or_else(|| panic!("no {path}"))
                .1
        };
        assert_eq!(json(text("package.json"))["name"], "edge");
        assert_eq!(json(text("package-lock.json"))["name"], "edge");
        assert_eq!(
            json(text("package-lock.json"))["packages"][""]["name"],
            "edge"
        );
        assert!(text("build.sh").contains("edge.wasm"));
    }
}
