//! The SDK sources a new plugin project gets a copy of, embedded in the lbx binary so that
//! `lbx plugin new` works wherever lbx is installed. Generated from the lists of `guest-sdk/src`,
//! `sdk/python/lbx_router`, `sdk/js`, `sdk/c` and `sdk/go`; a unit test checks that no SDK file is missing from them.

/// `wit/router.wit`, the contract the project builds against.
pub const CONTRACT: &str = include_str!("../../../wit/router.wit");

/// `sdk/c/*.h`: the C SDK's headers (its `toolchain.sh` serves only this repository's scripts).
pub const C_SDK: &[(&str, &str)] = &[
    ("lbx_json.h", include_str!("../../../sdk/c/lbx_json.h")),
    ("lbx_router.h", include_str!("../../../sdk/c/lbx_router.h")),
    (
        "lbx_router_testkit.h",
        include_str!("../../../sdk/c/lbx_router_testkit.h"),
    ),
];

/// `sdk/go`: the Go SDK's module, its sources without their tests (path relative to `sdk/go`).
pub const GO_SDK: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../sdk/go/go.mod")),
    (
        "lbxrouter/abi_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/abi_wasip1.go"),
    ),
    (
        "lbxrouter/adapter_memory_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/adapter_memory_wasip1.go"),
    ),
    (
        "lbxrouter/backends.go",
        include_str!("../../../sdk/go/lbxrouter/backends.go"),
    ),
    (
        "lbxrouter/decision.go",
        include_str!("../../../sdk/go/lbxrouter/decision.go"),
    ),
    (
        "lbxrouter/export_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/export_wasip1.go"),
    ),
    (
        "lbxrouter/host_native.go",
        include_str!("../../../sdk/go/lbxrouter/host_native.go"),
    ),
    (
        "lbxrouter/host_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/host_wasip1.go"),
    ),
    (
        "lbxrouter/kv.go",
        include_str!("../../../sdk/go/lbxrouter/kv.go"),
    ),
    (
        "lbxrouter/kv_native.go",
        include_str!("../../../sdk/go/lbxrouter/kv_native.go"),
    ),
    (
        "lbxrouter/kv_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/kv_wasip1.go"),
    ),
    (
        "lbxrouter/log.go",
        include_str!("../../../sdk/go/lbxrouter/log.go"),
    ),
    (
        "lbxrouter/request_wasip1.go",
        include_str!("../../../sdk/go/lbxrouter/request_wasip1.go"),
    ),
    (
        "lbxrouter/router.go",
        include_str!("../../../sdk/go/lbxrouter/router.go"),
    ),
    (
        "lbxrouter/testkit.go",
        include_str!("../../../sdk/go/lbxrouter/testkit.go"),
    ),
];

/// `guest-sdk/src/*` (path relative to `src/`, contents).
pub const RUST_SDK: &[(&str, &str)] = &[
    (
        "backends.rs",
        include_str!("../../../guest-sdk/src/backends.rs"),
    ),
    (
        "bindings.rs",
        include_str!("../../../guest-sdk/src/bindings.rs"),
    ),
    ("body.rs", include_str!("../../../guest-sdk/src/body.rs")),
    (
        "candidates.rs",
        include_str!("../../../guest-sdk/src/candidates.rs"),
    ),
    ("clock.rs", include_str!("../../../guest-sdk/src/clock.rs")),
    (
        "config.rs",
        include_str!("../../../guest-sdk/src/config.rs"),
    ),
    (
        "cookie.rs",
        include_str!("../../../guest-sdk/src/cookie.rs"),
    ),
    (
        "decision.rs",
        include_str!("../../../guest-sdk/src/decision.rs"),
    ),
    (
        "export.rs",
        include_str!("../../../guest-sdk/src/export.rs"),
    ),
    ("hash.rs", include_str!("../../../guest-sdk/src/hash.rs")),
    ("kv.rs", include_str!("../../../guest-sdk/src/kv.rs")),
    ("lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    ("log.rs", include_str!("../../../guest-sdk/src/log.rs")),
    (
        "request.rs",
        include_str!("../../../guest-sdk/src/request.rs"),
    ),
    ("rng.rs", include_str!("../../../guest-sdk/src/rng.rs")),
    (
        "router.rs",
        include_str!("../../../guest-sdk/src/router.rs"),
    ),
    ("stats.rs", include_str!("../../../guest-sdk/src/stats.rs")),
    ("table.rs", include_str!("../../../guest-sdk/src/table.rs")),
    (
        "testkit/attempts.rs",
        include_str!("../../../guest-sdk/src/testkit/attempts.rs"),
    ),
    (
        "testkit/backends.rs",
        include_str!("../../../guest-sdk/src/testkit/backends.rs"),
    ),
    (
        "testkit/feedback.rs",
        include_str!("../../../guest-sdk/src/testkit/feedback.rs"),
    ),
    (
        "testkit/mod.rs",
        include_str!("../../../guest-sdk/src/testkit/mod.rs"),
    ),
    (
        "testkit/request.rs",
        include_str!("../../../guest-sdk/src/testkit/request.rs"),
    ),
    (
        "weighted.rs",
        include_str!("../../../guest-sdk/src/weighted.rs"),
    ),
];

/// `sdk/python/lbx_router/*` (file name, contents).
pub const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/python/lbx_router/__init__.py"),
    ),
    (
        "backends.py",
        include_str!("../../../sdk/python/lbx_router/backends.py"),
    ),
    (
        "component.py",
        include_str!("../../../sdk/python/lbx_router/component.py"),
    ),
    (
        "decision.py",
        include_str!("../../../sdk/python/lbx_router/decision.py"),
    ),
    (
        "driver.py",
        include_str!("../../../sdk/python/lbx_router/driver.py"),
    ),
    (
        "host.py",
        include_str!("../../../sdk/python/lbx_router/host.py"),
    ),
    (
        "kv.py",
        include_str!("../../../sdk/python/lbx_router/kv.py"),
    ),
    (
        "outcome.py",
        include_str!("../../../sdk/python/lbx_router/outcome.py"),
    ),
    (
        "request.py",
        include_str!("../../../sdk/python/lbx_router/request.py"),
    ),
    (
        "router.py",
        include_str!("../../../sdk/python/lbx_router/router.py"),
    ),
    (
        "testkit.py",
        include_str!("../../../sdk/python/lbx_router/testkit.py"),
    ),
];

/// `sdk/js/*` without its tests (path relative to `sdk/js/`, contents).
pub const JS_SDK: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../sdk/js/README.md")),
    ("component.js", include_str!("../../../sdk/js/component.js")),
    ("index.d.ts", include_str!("../../../sdk/js/index.d.ts")),
    ("index.js", include_str!("../../../sdk/js/index.js")),
    (
        "lib/backends.js",
        include_str!("../../../sdk/js/lib/backends.js"),
    ),
    (
        "lib/decision.js",
        include_str!("../../../sdk/js/lib/decision.js"),
    ),
    (
        "lib/driver.js",
        include_str!("../../../sdk/js/lib/driver.js"),
    ),
    ("lib/host.js", include_str!("../../../sdk/js/lib/host.js")),
    ("lib/kv.js", include_str!("../../../sdk/js/lib/kv.js")),
    (
        "lib/outcome.js",
        include_str!("../../../sdk/js/lib/outcome.js"),
    ),
    (
        "lib/request.js",
        include_str!("../../../sdk/js/lib/request.js"),
    ),
    (
        "lib/router.js",
        include_str!("../../../sdk/js/lib/router.js"),
    ),
    ("lib/utf8.js", include_str!("../../../sdk/js/lib/utf8.js")),
    ("package.json", include_str!("../../../sdk/js/package.json")),
    ("testkit.d.ts", include_str!("../../../sdk/js/testkit.d.ts")),
    ("testkit.js", include_str!("../../../sdk/js/testkit.js")),
];

/// The JavaScript build script (bundle, then componentize), shared with examples/js/header_router.
pub const JS_BUILD: &str = include_str!("../../../examples/js/header_router/build.mjs");
