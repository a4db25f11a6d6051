//! The glue between the engine's generated bindings (`wit/router.wit`, world `plugin`,
//! contract lbx:router@0.2.0) and the SDK's API. Plugin authors never edit this module: their
//! build entry hands their `Router` class to `bind` and exports the result as `router`:
//!
//! ```js
//! import { bind } from "@lbx/router/component";
//! import { MyRouter } from "./app.js";
//! export const router = bind(MyRouter);
//! ```
//!
//! Only the Wasm build loads this module (it imports the host's interfaces, which exist only
//! there); node never does, so the rest of the SDK and the test kit run as plain JavaScript.
//!
//! It works with both engines lbx builds JavaScript with, which differ in how they carry some
//! types (as componentize-js 0.20.0's jco bindings and componentize-qjs 0.4.5's type mapping
//! define them; test/component.test.js checks the glue against stand-ins of both):
//! - 64-bit integers (`now-us`, `kv.increment`, an outcome's times and tag, a pick's tag) are
//!   `BigInt` under componentize-js and `number` under QuickJS: the SDK speaks `number`, and
//!   the glue converts, finding out which the engine wants from the first `now-us` it reads;
//! - an absent `option` is `undefined` under componentize-js and `null` under QuickJS: the glue
//!   tests with `== null` and lowers `null`, which both accept;
//! - a refused `kv` write throws the `kv-error` case, bare (QuickJS) or as a `ComponentError`'s
//!   `payload` (componentize-js).
//!
//! Cost per decision (the reason for each choice below): each string the plugin reads is one
//! host call, so `HostRequest` asks lazily and caches path and method; stats stay the host's
//! flat list; a plain pick is lowered once per backend index and reused.

import * as wit from "lbx:router/host@0.2.0";
import * as witKv from "lbx:router/kv@0.2.0";

import { BackendInfo, RetryContext } from "./lib/backends.js";
import { NoOpinion, PLAIN_PICKS, Pick, Reject } from "./lib/decision.js";
import { Driver, Refused } from "./lib/driver.js";
import { install, KvError } from "./lib/host.js";
import { Outcome } from "./lib/outcome.js";
import { Request } from "./lib/request.js";

/** Whether this engine carries 64-bit integers as BigInt; found on first need. */
let bigInts;

function wideIntegers() {
  if (bigInts === undefined) bigInts = typeof wit.nowUs() === "bigint";
  return bigInts;
}

/** A number for a u64/s64 parameter of the host or field of a lowered record. */
function toWide(n) {
  return wideIntegers() ? BigInt(n) : n;
}

/** A u64/s64 the host sent, as a number (an absent option stays undefined). */
function fromWide(n) {
  return n == null ? undefined : Number(n);
}

function refusal(error) {
  const reason = typeof error === "string" ? error : (error?.payload ?? error?.message ?? String(error));
  return new KvError(reason);
}

/** The host's log, clock and key-value store, through the imported interfaces. */
class HostServices {
  log(level, message) {
    wit.log(level, message);
  }

  nowUs() {
    const now = wit.nowUs();
    if (bigInts === undefined) bigInts = typeof now === "bigint";
    return Number(now);
  }

  kvGet(key) {
    return witKv.get(key) ?? undefined;
  }

  kvSet(key, value) {
    try {
      witKv.set(key, value);
    } catch (error) {
      throw refusal(error);
    }
  }

  kvInsert(key, value) {
    try {
      return witKv.insert(key, value);
    } catch (error) {
      throw refusal(error);
    }
  }

  kvDelete(key) {
    return witKv.delete(key);
  }

  kvIncrement(key, delta) {
    try {
      return Number(witKv.increment(key, toWide(delta)));
    } catch (error) {
      throw refusal(error);
    }
  }
}

/** The host's request resource behind the SDK's `Request`; valid during one `choose`. */
class HostRequest extends Request {
  constructor(req) {
    super();
    this._req = req;
  }

  // The host matches header names case-insensitively itself: no lowercasing on the way.
  header(name) {
    return this._req.header(name) ?? undefined;
  }

  _fetchMethod() {
    return this._req.method();
  }

  _fetchPath() {
    return this._req.path();
  }

  _fetchQuery() {
    return this._req.query();
  }

  _fetchAuthority() {
    return this._req.authority();
  }

  _fetchHeader(lowerName) {
    return this._req.header(lowerName);
  }

  _fetchCookie(name) {
    return this._req.cookie(name);
  }

  _fetchClientIp() {
    return this._req.clientIp();
  }

  _fetchClientPort() {
    return this._req.clientPort();
  }

  _fetchBodyPrefix() {
    return this._req.bodyPrefix();
  }
}

function lowerHeaders(pairs) {
  return pairs.map(([name, value]) => ({ name, value }));
}

const NO_HEADERS = Object.freeze([]);
/** Lowered plain picks by backend index, reused: the engine only reads a returned value. */
const LOWERED_PLAIN = new Map();
const LOWERED_NO_OPINION = Object.freeze({ tag: "no-opinion" });

/** The SDK's decision as the contract's `decision` variant. */
function lower(decision) {
  if (decision instanceof Pick) {
    const backend = decision.backend;
    if (PLAIN_PICKS.get(backend) === decision) {
      let lowered = LOWERED_PLAIN.get(backend);
      if (lowered === undefined) {
        lowered = {
          tag: "pick",
          val: { backend, upstreamHeaders: NO_HEADERS, downstreamHeaders: NO_HEADERS, options: null },
        };
        LOWERED_PLAIN.set(backend, lowered);
      }
      return lowered;
    }
    const options = decision.hasOptions
      ? {
          fallbacks: decision.fallbacks,
          retryOn: decision.retryOn,
          rewrite: decision.rewrite ?? null,
          tag: toWide(decision.tag),
        }
      : null;
    return {
      tag: "pick",
      val: {
        backend,
        upstreamHeaders: lowerHeaders(decision.upstreamHeaders),
        downstreamHeaders: lowerHeaders(decision.downstreamHeaders),
        options,
      },
    };
  }
  if (decision instanceof Reject) {
    return { tag: "reject", val: { status: decision.status, headers: lowerHeaders(decision.headers) } };
  }
  if (decision instanceof NoOpinion) return LOWERED_NO_OPINION;
  // A router that returned something else made a mistake: say which, rather than guess.
  throw new TypeError(`choose must return pick(...), reject(...) or noOpinion(), got ${String(decision)}`);
}

/**
 * Make `RouterClass` the plugin's router and the host's services the SDK's; the result is the
 * `router` interface the component exports.
 */
export function bind(RouterClass) {
  const driver = new Driver(RouterClass);
  bigInts = undefined; // found again for this engine (tests bind under both conventions)
  install(new HostServices());
  return {
    init(config) {
      try {
        return { outcomes: driver.init(config) };
      } catch (problem) {
        // A thrown string is the `err` of `result<features, string>` in both engines.
        throw problem instanceof Refused ? problem.message : String(problem);
      }
    },

    backendsChanged(backends, signalNames) {
      const infos = backends.map((b) => new BackendInfo(b.id, b.address, b.weight, Object.fromEntries(b.labels)));
      driver.backendsChanged(infos, Array.from(signalNames));
    },

    choose(req, stats, signals, retry) {
      const context = retry == null ? undefined : new RetryContext(retry.attempt, Array.from(retry.tried));
      return lower(driver.choose(new HostRequest(req), stats, signals, context));
    },

    onOutcome(outcome) {
      driver.onOutcome(
        new Outcome({
          backend: outcome.backend,
          status: outcome.status,
          fault: outcome.fault,
          ttfbUs: fromWide(outcome.ttfbUs),
          firstByteUs: fromWide(outcome.firstByteUs),
          totalUs: fromWide(outcome.totalUs),
          bytesUp: fromWide(outcome.bytesUp),
          bytesDown: fromWide(outcome.bytesDown),
          attempt: outcome.attempt,
          tag: fromWide(outcome.tag),
        }),
      );
    },
  };
}
