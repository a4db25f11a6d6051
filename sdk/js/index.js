//! @lbx/router: write lbx routing plugins in JavaScript (contract lbx:router@0.2.0).
//!
//! Extend `Router`, return `pick(...)`, `reject(...)` or `noOpinion()` from `choose`, and export
//! the class from your module. Test the logic with `@lbx/router/testkit` under `node --test`;
//! build with a three-line entry that hands the class to `@lbx/router/component`'s `bind` (see
//! examples/js/header_router: plugin.js, build.sh).
//!
//! Nothing here imports the host's interfaces: only `component.js` does, and only the Wasm
//! build loads it, so node runs every other module as is.

export * as kv from "./lib/kv.js";
export { BackendInfo, BackendStats, Backends, FIRST_ATTEMPT, RetryContext, STATS_FIELDS } from "./lib/backends.js";
export { NoOpinion, Pick, Reject, noOpinion, pick, reject } from "./lib/decision.js";
export { KvError, LogLevel, log, nowUs } from "./lib/host.js";
export { Fault, Outcome } from "./lib/outcome.js";
export { Request } from "./lib/request.js";
export { ConfigError, Router } from "./lib/router.js";
