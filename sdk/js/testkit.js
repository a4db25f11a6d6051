//! Native test kit: fakes of what the host hands a plugin (requests, backends with stats,
//! labels and signals, retry contexts, outcomes, the key-value store, the clock) and readers of
//! what it answers, so a plugin's logic runs under plain node and `node --test`, no Wasm build.
//! The same pieces as the Rust SDK's `lbx_guest::testkit` and the Python SDK's `testkit`.
//!
//! ```js
//! import * as t from "@lbx/router/testkit";
//! const plugin = new t.Plugin(MyRouter, { rules: [] }, [t.labeled("a", { pool: "api" }), t.labeled("b")]);
//! const decision = plugin.choose(t.get("/api/x"), [t.backend(), t.backend({ healthy: false })]);
//! assert.equal(t.picked(decision), 0);
//! ```
//!
//! `Plugin` drives the router through the same `Driver` as the Wasm glue: the configuration goes
//! through JSON text, a refusal is `init`'s error, and `Backends` carries the identities.

import { BackendInfo, Backends, BackendStats, RetryContext } from "./lib/backends.js";
import { Pick, Reject } from "./lib/decision.js";
import { Driver, Refused } from "./lib/driver.js";
import { install, MemoryServices, services } from "./lib/host.js";
import { Fault, Outcome } from "./lib/outcome.js";
import { Request } from "./lib/request.js";
import { utf8Encode } from "./lib/utf8.js";

export { Refused };

// ------------------------------------------------------------------------------------ requests

/**
 * A request without a host: method, target (path and query), headers (case-insensitive),
 * cookies, client address, authority and body prefix. Builder methods return `this`.
 */
export class FakeRequest extends Request {
  constructor(method = "GET", target = "/") {
    super();
    const q = target.indexOf("?");
    this._m = method;
    this._p = q < 0 ? target : target.slice(0, q);
    this._q = q < 0 ? undefined : target.slice(q + 1);
    this._headers = new Map();
    this._cookies = new Map();
    this._ip = "127.0.0.1";
    this._port = 40000;
    this._authority = undefined;
    this._prefix = undefined;
  }

  /** Add a header (the first of a name wins, as with the host). */
  withHeader(name, value) {
    const lower = name.toLowerCase();
    if (!this._headers.has(lower)) this._headers.set(lower, value);
    return this;
  }

  /** Add a cookie. */
  withCookie(name, value) {
    this._cookies.set(name, value);
    return this;
  }

  /** Set the client's `ip:port` (`[ip]:port` for IPv6). */
  withClient(address) {
    const colon = address.lastIndexOf(":");
    this._ip = address.slice(0, colon).replace(/^\[|\]$/g, "");
    this._port = Number(address.slice(colon + 1));
    return this;
  }

  /** Set the Host header / `:authority`. */
  withAuthority(authority) {
    this._authority = authority;
    return this;
  }

  /** Set the body prefix: bytes, text, or a value encoded as JSON. */
  withBody(prefix) {
    if (typeof prefix === "string") this._prefix = utf8Encode(prefix);
    else if (prefix instanceof Uint8Array) this._prefix = prefix;
    else this._prefix = utf8Encode(JSON.stringify(prefix));
    return this;
  }

  _fetchMethod() {
    return this._m;
  }

  _fetchPath() {
    return this._p;
  }

  _fetchQuery() {
    return this._q;
  }

  _fetchAuthority() {
    return this._authority ?? this._headers.get("host");
  }

  _fetchHeader(lowerName) {
    return this._headers.get(lowerName);
  }

  _fetchCookie(name) {
    if (this._cookies.has(name)) return this._cookies.get(name);
    // A raw `cookie` header counts too, as the host parses it.
    for (const part of (this._headers.get("cookie") ?? "").split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
  }

  _fetchClientIp() {
    return this._ip;
  }

  _fetchClientPort() {
    return this._port;
  }

  _fetchBodyPrefix() {
    return this._prefix;
  }
}

/** A fake request in one call: `request("POST", "/v1/chat", { headers: {...}, body: {...} })`. */
export function request(method = "GET", target = "/", { headers, cookies, client, authority, body } = {}) {
  const fake = new FakeRequest(method, target);
  for (const [name, value] of Object.entries(headers ?? {})) fake.withHeader(name, value);
  for (const [name, value] of Object.entries(cookies ?? {})) fake.withCookie(name, value);
  if (client !== undefined) fake.withClient(client);
  if (authority !== undefined) fake.withAuthority(authority);
  if (body !== undefined) fake.withBody(body);
  return fake;
}

/** A fake GET request (options as `request`). */
export function get(target = "/", options = {}) {
  return request("GET", target, options);
}

/** A fake POST request (options as `request`). */
export function post(target = "/", options = {}) {
  return request("POST", target, options);
}

// ------------------------------------------------------------------------------------ backends

/** One backend's live numbers: `backend()`, `backend({ healthy: false, inFlight: 3 })`. */
export function backend(stats = {}) {
  return new BackendStats(stats);
}

/** `n` healthy, idle backends. */
export function allHealthy(n) {
  return Array.from({ length: n }, () => backend());
}

/** Healthy backends with these requests in flight. */
export function loads(inFlight) {
  return inFlight.map((n) => backend({ inFlight: n }));
}

/** Healthy, idle backends with these weights. */
export function weights(values) {
  return values.map((weight) => backend({ weight }));
}

/** Healthy, idle backends with these moving-average latencies (µs). */
export function latencies(latenciesUs) {
  return latenciesUs.map((ewmaLatencyUs) => backend({ ewmaLatencyUs }));
}

/** A backend's identity without labels (the address defaults to `<id>:80`). */
export function backendInfo(id, address = `${id}:80`, weight = 1) {
  return new BackendInfo(id, address, weight, {});
}

/** A backend's identity with labels: `labeled("a", { pool: "api" })`. */
export function labeled(id, labels = {}) {
  return new BackendInfo(id, `${id}:80`, 1, labels);
}

/**
 * The host's flat signals list for `count` backends: `readings` maps an index to
 * `[ageMs, values]`; backends without a reading are NaN (never scraped).
 */
export function signals(names, readings, count) {
  const stride = names.length + 1;
  const flat = new Array(count * stride).fill(Number.NaN);
  for (const [index, [age, values]] of Object.entries(readings)) {
    const at = Number(index) * stride;
    flat[at] = age;
    values.forEach((v, k) => {
      flat[at + 1 + k] = v;
    });
  }
  return flat;
}

/** A `Backends` for calling a router's `choose` directly. */
export function backends(stats, infos = [], signalNames = [], signalValues = null) {
  return new Backends(stats, infos, signalNames, signalValues);
}

// ------------------------------------------------------------------------------------ attempts

/** A request's first attempt. */
export function firstAttempt() {
  return new RetryContext();
}

/** A retry after these backends failed (attempt defaults to how many were tried). */
export function retry(tried, attempt = tried.length) {
  return new RetryContext(attempt, [...tried]);
}

// ------------------------------------------------------------------------------------ a plugin

/**
 * A router driven as lbx drives it: `init` with the configuration as JSON text, then
 * `backendsChanged`, then `choose` calls on fresh numbers, and outcomes if it asked.
 * The constructor throws `Refused` (with init's error) when the router refuses the configuration.
 */
export class Plugin {
  constructor(RouterClass, config = {}, infos = [], signalNames = []) {
    this.driver = new Driver(RouterClass);
    this.driver.init(typeof config === "string" ? config : JSON.stringify(config ?? {}));
    this.driver.backendsChanged([...infos], [...signalNames]);
  }

  /** The user's router instance (its state). */
  get router() {
    return this.driver.router;
  }

  /** Whether the router asked for outcomes. */
  get wantsOutcomes() {
    return this.driver.outcomes;
  }

  /** A new backend set. */
  backendsChanged(infos, signalNames = []) {
    this.driver.backendsChanged([...infos], [...signalNames]);
  }

  /** One decision; `stats` has one `BackendStats` per backend, in the order of the infos. */
  choose(req, stats, retryContext = undefined, signalValues = undefined) {
    const flat = stats.flatMap((b) => b.flat());
    return this.driver.choose(req, flat, signalValues ?? null, retryContext);
  }

  /** Deliver `outcome` if the router wants outcomes; whether it was delivered. */
  deliver(outcome) {
    if (!this.driver.outcomes) return false;
    this.driver.onOutcome(outcome);
    return true;
  }
}

/** The error `init` returns for `config` (its message), or undefined if the router accepts it. */
export function refusal(RouterClass, config) {
  try {
    new Plugin(RouterClass, config);
  } catch (problem) {
    if (problem instanceof Refused) return problem.message;
    throw problem;
  }
  return undefined;
}

// ------------------------------------------------------------------------------------ answers

/** The picked backend's index, or undefined for a reject or no-opinion. */
export function picked(decision) {
  return decision instanceof Pick ? decision.backend : undefined;
}

/** The pick, throwing (failing the test) with the decision when it is not one. */
export function expectPick(decision) {
  if (!(decision instanceof Pick)) {
    throw new Error(`expected a pick, got ${describe(decision)}`);
  }
  return decision;
}

/** The rejection's status, or undefined. */
export function rejected(decision) {
  return decision instanceof Reject ? decision.status : undefined;
}

/** The backends the pick's attempts go to, in order: the pick, then its fallbacks. */
export function attemptOrder(decision) {
  return decision instanceof Pick ? [decision.backend, ...decision.fallbacks] : [];
}

/** The value of an upstream header the pick adds (case-insensitive name). */
export function upstreamHeader(decision, name) {
  return decision instanceof Pick ? find(decision.upstreamHeaders, name) : undefined;
}

/** The value of a downstream header the pick (or rejection) adds. */
export function downstreamHeader(decision, name) {
  if (decision instanceof Pick) return find(decision.downstreamHeaders, name);
  if (decision instanceof Reject) return find(decision.headers, name);
  return undefined;
}

function find(pairs, name) {
  const lower = name.toLowerCase();
  const hit = pairs.find(([n]) => n.toLowerCase() === lower);
  return hit === undefined ? undefined : hit[1];
}

function describe(decision) {
  const kind = decision?.constructor?.name ?? typeof decision;
  return `${kind} ${JSON.stringify(decision)}`;
}

// ------------------------------------------------------------------------------------ feedback

/** An attempt on backend `index` answered with `status` after `ttfbUs`. */
export function answered(index, status, ttfbUs, tag = 0) {
  return new Outcome({ backend: index, status, ttfbUs, firstByteUs: ttfbUs, totalUs: ttfbUs, tag });
}

/** An attempt on backend `index` that failed (no response). */
export function failed(index, fault = Fault.BACKEND, tag = 0) {
  return new Outcome({ backend: index, fault, tag });
}

/** The outcome of the pick `decision` answered with `status` (its backend and tag). */
export function outcomeOf(decision, status, ttfbUs) {
  const chosen = expectPick(decision);
  return answered(chosen.backend, status, ttfbUs, chosen.tag);
}

// ------------------------------------------------------------------------------------ host

/**
 * Install and return empty in-memory services (kv, log, clock at 0): call it at the start of a
 * test that reads them, e.g. in `beforeEach`.
 */
export function freshHost(maxBytes = undefined) {
  return install(new MemoryServices(maxBytes));
}

function memory(what) {
  const current = services();
  if (!(current instanceof MemoryServices)) throw new Error(`${what} needs the in-memory host`);
  return current;
}

/** Move the in-memory clock forward. */
export function advanceClock(us) {
  memory("advanceClock").clockUs += us;
}

/** The lines logged so far on the in-memory host, as `[level, message]`. */
export function logs() {
  return memory("logs").lines;
}
