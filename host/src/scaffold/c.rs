//! The C project: `router.c` on a copy of the C SDK's headers (in `sdk/`, with the contract in
//! `wit/`), a least-in-flight router to start from, its native tests on the SDK's test kit
//! (`test.sh`: the host's C compiler under AddressSanitizer), `build.sh` (clang for
//! wasm32-wasi, then `lbx plugin bindings` and `lbx plugin component`, so nothing beyond lbx
//! and the C toolchain is installed) and a README.

use super::{ProjectFile, contract, sdk_files};

/// Every file of a C project named `name`.
pub fn files(name: &str) -> Vec<ProjectFile> {
    let mut files = vec![
        ("router.c".to_string(), ROUTER_C.replace("{name}", name)),
        ("test_router.c".into(), TEST_ROUTER_C.into()),
        (
            "build.sh".into(),
            BUILD_SH
                .replace("{name}", name)
                .replace("{NEED_LBX}", NEED_LBX),
        ),
        ("test.sh".into(), TEST_SH.replace("{NEED_LBX}", NEED_LBX)),
        ("README.md".into(), README.replace("{name}", name)),
        (".gitignore".into(), "/*.wasm\n".into()),
        contract(),
    ];
    for (path, contents) in sdk_files::C_SDK {
        files.push((format!("sdk/{path}"), contents.to_string()));
    }
    files
}

const ROUTER_C: &str = r#"/* {name}: an lbx routing plugin. As created, it sends each request to the healthy backend
 * with the fewest requests in flight, and a retry to one that has not failed the request yet;
 * with no healthy backend it has no opinion and lbx's own choice decides. Change `choose`.
 *
 * Test: bash test.sh. Build: bash build.sh. Check: lbx check {name}.wasm.
 */
#include <ctype.h>

#include "lbx_router.h"

/* `[plugin.config]` from lbx.toml, as JSON; this plugin takes none (`{}`, or nothing). Return
 * NULL to accept it, or a message saying why it is refused. */
static const char *init(lbx_str config, unsigned *features) {
    (void)features; /* no outcomes asked for */
    size_t seen = 0;
    char text[2];
    for (size_t i = 0; i < config.len; i++) {
        if (isspace((unsigned char)config.ptr[i])) continue;
        if (seen == sizeof text) return "this plugin takes no configuration";
        text[seen++] = config.ptr[i];
    }
    if (seen == 0 || (seen == 2 && text[0] == '{' && text[1] == '}')) return NULL;
    return "this plugin takes no configuration";
}

/* The backends' identities changed (index i in `choose` is backends->ptr[i]). */
static void backends_changed(const lbx_backend_list *backends) { (void)backends; }

static lbx_decision choose(lbx_request req, const lbx_backends *backends, const lbx_retry *retry) {
    (void)req;
    size_t best = lbx_least_in_flight(backends, retry, NULL, NULL);
    return best == LBX_NONE ? lbx_no_opinion() : lbx_pick(best);
}

/* The exports lbx calls; the SDK frees every argument after these functions return. */
LBX_EXPORT_ROUTER(init, backends_changed, choose, NULL)
"#;

const TEST_ROUTER_C: &str = r#"/* The plugin's logic on the SDK's native test kit: bash test.sh (no Wasm build). */
#include "lbx_router_testkit.h"

static void the_least_loaded_backend_is_picked(void) {
    LBX_EXPECT(lbx_test_init("{}") == NULL);
    lbx_test_backends("name=a", "name=b", "name=c", NULL);
    lbx_test_request req = lbx_test_get("/");
    lbx_test_backend loads[3] = {lbx_test_up(5), lbx_test_up(2), lbx_test_up(9)};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, loads, 3)), 1);
}

static void a_down_backend_is_never_picked(void) {
    LBX_EXPECT(lbx_test_init("{}") == NULL);
    lbx_test_backends("name=a", "name=b", NULL);
    lbx_test_request req = lbx_test_get("/");
    lbx_test_backend stats[2] = {lbx_test_down(), lbx_test_up(7)};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose(&req, stats, 2)), 1);
}

static void a_retry_goes_to_a_backend_that_has_not_failed_it(void) {
    LBX_EXPECT(lbx_test_init("{}") == NULL);
    lbx_test_backends("name=a", "name=b", NULL);
    lbx_test_request req = lbx_test_get("/");
    lbx_test_backend loads[2] = {lbx_test_up(0), lbx_test_up(3)};
    const uint32_t tried[1] = {0};
    LBX_EXPECT_EQ(lbx_test_picked(lbx_test_choose_retry(&req, loads, 2, tried, 1)), 1);
}

static void a_config_is_refused_since_none_is_taken(void) {
    LBX_EXPECT(lbx_test_init("{\"weights\": [1, 2]}") != NULL);
}

int main(void) {
    LBX_RUN(the_least_loaded_backend_is_picked);
    LBX_RUN(a_down_backend_is_never_picked);
    LBX_RUN(a_retry_goes_to_a_backend_that_has_not_failed_it);
    LBX_RUN(a_config_is_refused_since_none_is_taken);
    return lbx_test_finish();
}
"#;

/// The checks both scripts make: the tool named with what provides it, never a silent skip.
const NEED_LBX: &str = r#"lbx="${LBX:-lbx}"
command -v "$lbx" >/dev/null 2>&1 || { echo "lbx not found: put it on PATH or set LBX=/path/to/lbx" >&2; exit 1; }"#;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Build {name}.wasm, the component lbx loads: router.c compiled by clang for wasm32-wasi as a
# reactor (a library whose exports lbx calls many times), linked with the contract's C bindings
# (`lbx plugin bindings`), then wrapped with the WASI adapter (`lbx plugin component`).
#
# Run: bash build.sh   (needs lbx, clang, wasm-ld and wasi-libc; on Debian:
#      apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
{NEED_LBX}
fail() { echo "$1: on Debian, apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2; exit 1; }
command -v clang >/dev/null 2>&1 || fail "clang not found"
command -v wasm-ld >/dev/null 2>&1 || fail "wasm-ld not found (package lld)"
[ -f "$(clang --target=wasm32-wasi -print-file-name=libc.a)" ] || fail "wasi-libc not found for clang --target=wasm32-wasi"
[ -f "$(clang --target=wasm32-wasi -print-libgcc-file-name)" ] || fail "compiler-rt builtins for wasm32 not found"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$lbx" plugin bindings --wit "$here/wit" "$work"
# -O2 and no debug info: the decision path is small, and lbx compiles what it is given.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
	-I "$here/sdk" -I "$work" "$here/router.c" "$work/plugin.c" "$work/plugin_component_type.o" \
	-Wl,--strip-debug -o "$work/core.wasm"
"$lbx" plugin component --lang c "$work/core.wasm" -o "$here/{name}.wasm"
echo "built {name}.wasm ($(wc -c <"$here/{name}.wasm") bytes)"
"#;

const TEST_SH: &str = r#"#!/usr/bin/env bash
# The plugin's tests (test_router.c) with router.c, compiled by the host's C compiler ($CC, else
# cc) against the SDK's test kit under AddressSanitizer: a leak or a bad free fails the run as
# surely as a wrong pick. No Wasm is built.
#
# Run: bash test.sh   (needs lbx, for the contract's C header, and a C compiler)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
{NEED_LBX}
cc="${CC:-cc}"
command -v "$cc" >/dev/null 2>&1 || { echo "no C compiler ($cc): set CC or install one" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$lbx" plugin bindings --wit "$here/wit" "$work"
"$cc" -std=c11 -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-function \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	-I "$here/sdk" -I "$work" "$here/router.c" "$here/test_router.c" -o "$work/test" -lm
ASAN_OPTIONS=detect_leaks=1 "$work/test"
"#;

const README: &str = r#"# {name}

An lbx routing plugin in C, created by `lbx plugin new --lang c {name}`.

```sh
bash test.sh            # the logic, natively under AddressSanitizer, on the SDK's test kit
bash build.sh           # {name}.wasm (clang for wasm32-wasi, then lbx wraps it)
lbx check {name}.wasm   # loads it as lbx would: its decisions, their µs, its memory
```

Both scripts call `lbx` (on PATH, or set `LBX=/path/to/lbx`) for the contract's C bindings and
for wrapping clang's module into a component. The build needs clang, wasm-ld and wasi-libc: on
Debian, `apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32`.

Then run it: `lbx run --plugin {name}.wasm --backend http://127.0.0.1:9001 --backend …`, or set
`[plugin] path` in lbx.toml; replacing the file swaps it in without a restart.

`router.c` is the plugin. `sdk/` is a copy of lbx's C SDK (`lbx_router.h`; `lbx_json.h` reads
a JSON configuration; `lbx_router_testkit.h` is the test kit) and `wit/router.wit` the contract
it speaks (`lbx:router@0.2.0`). Who frees what: every argument lbx passes is freed by the SDK
after your function returns; a string you ask for (`lbx_request_header`, …) you free with
`lbx_string_free`. The guide is docs/plugins.md in lbx's repository.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_scripts_name_a_missing_lbx() {
        for (path, text) in files("edge") {
            if path.ends_with(".sh") {
                assert!(text.contains("lbx not found"), "{path}");
                assert!(!text.contains("{NEED_LBX}"), "{path}");
            }
        }
    }
}
