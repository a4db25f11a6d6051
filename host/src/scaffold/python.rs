//! The Python project: `app.py` on a copy of the `lbx_router` SDK (in `lbx_router/`, with the
//! contract in `wit/`), a least-in-flight router to start from, its pytest tests on the SDK's
//! test kit, `build.sh` (componentize-py) and a README.

use super::{ProjectFile, contract, sdk_files};

/// Every file of a Python project named `name`.
pub fn files(name: &str) -> Vec<ProjectFile> {
    let mut files = vec![
        ("app.py".to_string(), APP_PY.replace("{name}", name)),
        ("test_app.py".into(), TEST_APP_PY.replace("{name}", name)),
        ("conftest.py".into(), CONFTEST_PY.into()),
        ("build.sh".into(), BUILD_SH.replace("{name}", name)),
        ("README.md".into(), README.replace("{name}", name)),
        (".gitignore".into(), "/*.wasm\n__pycache__/\n".into()),
        contract(),
    ];
    for (path, contents) in sdk_files::PYTHON_SDK {
        files.push((format!("lbx_router/{path}"), contents.to_string()));
    }
    files
}

const APP_PY: &str = r#""""{name}: an lbx routing plugin. As created, it sends each request to the healthy backend
with the fewest requests in flight, and a retry to one that has not failed the request yet;
with no healthy backend it has no opinion and lbx's own choice decides. Change `choose`.

Test: python3 -m pytest -q. Build: bash build.sh. Check: lbx check {name}.wasm.
"""

from __future__ import annotations

from typing import Any

import lbx_router
from lbx_router import Backends, Decision, Request, RetryContext


class Plugin(lbx_router.Router):
    """The plugin's state lives on this object, one per plugin instance."""

    def init(self, config: Any) -> None:
        # `[plugin.config]` from lbx.toml, parsed; raise lbx_router.ConfigError to refuse it.
        if config:
            raise lbx_router.ConfigError("this plugin takes no configuration")

    def choose(self, request: Request, backends: Backends, retry: RetryContext) -> Decision:
        best = backends.least_in_flight(backends.candidates(retry))
        return lbx_router.no_opinion() if best is None else lbx_router.pick(best)


# componentize-py looks for the export class `Router` in this module.
Router = lbx_router.export(Plugin)
"#;

const TEST_APP_PY: &str = r#""""The plugin's logic on the SDK's native test kit: python3 -m pytest -q (no Wasm build)."""

from lbx_router import testkit as t

from app import Plugin


def test_the_least_loaded_backend_is_picked() -> None:
    plugin = t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b"), t.labeled("c")])
    assert t.picked(plugin.choose(t.get("/"), t.loads([5, 2, 9]))) == 1


def test_a_down_backend_is_never_picked() -> None:
    plugin = t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b")])
    assert t.picked(plugin.choose(t.get("/"), [t.backend(False), t.backend(True, 7)])) == 1


def test_a_retry_goes_to_a_backend_that_has_not_failed_it() -> None:
    plugin = t.Plugin(Plugin, {}, [t.labeled("a"), t.labeled("b")])
    assert t.picked(plugin.choose(t.get("/"), t.loads([0, 3]), t.retry([0]))) == 1


def test_a_config_is_refused_since_none_is_taken() -> None:
    assert t.refusal(Plugin, {"weights": [1, 2]}) is not None
"#;

const CONFTEST_PY: &str = r#""""pytest setup: the project's directory (app.py and its copy of lbx_router) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
"#;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Build {name}.wasm, the component lbx loads: CPython, lbx_router and app.py, by componentize-py.
#
# Run: bash build.sh   (needs componentize-py 0.25.1: pip install componentize-py==0.25.1)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
componentize_py() { python3 -c 'import sys; from componentize_py import script; sys.exit(script())' "$@"; }
if ! python3 -c 'import componentize_py' 2>/dev/null; then
	echo "componentize-py not found: pip install componentize-py==0.25.1" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
componentize_py -d "$here/wit" -w plugin bindings . >/dev/null
componentize_py -d "$here/wit" -w plugin componentize app -p . -p "$here" -o "$here/{name}.wasm" >/dev/null
echo "built {name}.wasm ($(wc -c <"$here/{name}.wasm") bytes)"
"#;

const README: &str = r#"# {name}

An lbx routing plugin in Python, created by `lbx plugin new --lang python {name}`.

```sh
python3 -m pytest -q    # the logic, in plain CPython, on the SDK's test kit (test_app.py)
bash build.sh           # {name}.wasm (needs: pip install componentize-py==0.25.1)
lbx check {name}.wasm   # loads it as lbx would: its decisions, their µs, its memory
```

Then run it: `lbx run --plugin {name}.wasm --backend http://127.0.0.1:9001 --backend …`, or set
`[plugin] path` in lbx.toml; replacing the file swaps it in without a restart. A Python plugin
needs ~13 MiB of memory at start (`[plugin] memory_limit_mib`, default 64).

`app.py` is the plugin. `lbx_router/` is a copy of lbx's Python SDK and `wit/router.wit` the
contract it speaks (`lbx:router@0.2.0`); the guide to both is docs/plugins.md in lbx's
repository.
"#;
