//! Tests of the Wasm glue (component.js) under node, against stand-ins of the generated
//! bindings in both engines' conventions (QuickJS: 64-bit numbers and null; StarlingMonkey:
//! BigInt, undefined and ComponentError): what the host sends is lifted into the SDK's types,
//! and what the router answers is lowered into the contract's.
//!
//! Run: node --test sdk/js

import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";

register("./fixtures/register.js", import.meta.url);
const { state } = await import("./fixtures/bindings.js");
const { bind } = await import("../component.js");
const { kv, KvError, log, LogLevel, noOpinion, nowUs, pick, reject, Router } = await import("../index.js");

/** Every outcome an `Echo` router was told of, across instances. */
const told = [];

class Echo extends Router {
  static OUTCOMES = true;
  init(config) {
    this.mode = config.mode;
  }
  backendsChanged(infos) {
    this.infos = infos;
  }
  choose(request, backends, retry) {
    switch (this.mode) {
      case "plain":
        return pick(backends.candidates(retry)[0]);
      case "full":
        return pick(1, {
          upstreamHeaders: { "x-path": request.path() },
          downstreamHeaders: { "x-client": request.header("X-Client") ?? "none" },
          fallbacks: [0],
          retryOn: [503],
          rewrite: "/v2",
          tag: 9,
        });
      case "reject":
        return reject(429, { "retry-after": String(backends.signal(0, "queue")) });
      case "bad":
        return 3;
      default:
        return noOpinion();
    }
  }
  onOutcome(outcome) {
    told.push(outcome);
  }
}

/** The host's request resource, as the engine hands it over. */
function hostRequest(engine, headers = {}) {
  const none = engine === "starlingmonkey" ? undefined : null;
  return {
    method: () => "GET",
    path: () => "/api/x",
    query: () => none,
    authority: () => none,
    header: (name) => headers[name.toLowerCase()] ?? none,
    cookie: () => none,
    clientIp: () => "127.0.0.1",
    clientPort: () => 4000,
    bodyPrefix: () => none,
  };
}

for (const engine of ["qjs", "starlingmonkey"]) {
  const big = engine === "starlingmonkey";
  const none = big ? undefined : null;
  const stats = big ? Uint32Array.from([0, 1, 0, 0, 0, 1, 1, 3, 0, 0]) : [0, 1, 0, 0, 0, 1, 1, 3, 0, 0];

  test(`${engine}: init answers features or a refusal string`, () => {
    state.engine = engine;
    const router = bind(Echo);
    assert.deepEqual(router.init('{"mode": "plain"}'), { outcomes: true });
    assert.throws(() => router.init("{nope"), (e) => typeof e === "string" && e.includes("not JSON"));
  });

  test(`${engine}: a plain pick is lowered without options, once per index`, () => {
    state.engine = engine;
    const router = bind(Echo);
    router.init('{"mode": "plain"}');
    router.backendsChanged([{ id: "a", address: "a:80", weight: 1, labels: [["pool", "api"]] }], []);
    const first = router.choose(hostRequest(engine), stats, none, none);
    assert.deepEqual(first, {
      tag: "pick",
      val: { backend: 1, upstreamHeaders: [], downstreamHeaders: [], options: null },
    });
    assert.equal(router.choose(hostRequest(engine), stats, none, none), first);
    // A retry that tried backend 1 still lands on a healthy backend.
    const retried = router.choose(hostRequest(engine), stats, none, { attempt: 1, tried: big ? Uint32Array.of(1) : [1] });
    assert.equal(retried.val.backend, 1);
  });

  test(`${engine}: a full pick carries headers and options, its tag in the engine's integers`, () => {
    state.engine = engine;
    const router = bind(Echo);
    router.init('{"mode": "full"}');
    router.backendsChanged([], []);
    const decision = router.choose(hostRequest(engine, { "x-client": "c1" }), stats, none, none);
    assert.deepEqual(decision, {
      tag: "pick",
      val: {
        backend: 1,
        upstreamHeaders: [{ name: "x-path", value: "/api/x" }],
        downstreamHeaders: [{ name: "x-client", value: "c1" }],
        options: { fallbacks: [0], retryOn: [503], rewrite: "/v2", tag: big ? 9n : 9 },
      },
    });
  });

  test(`${engine}: rejections, no-opinion and signals cross; a wrong answer is named`, () => {
    state.engine = engine;
    const router = bind(Echo);
    router.init('{"mode": "reject"}');
    router.backendsChanged([], ["queue"]);
    const signals = big ? Float64Array.of(12, 7, NaN, NaN) : [12, 7, NaN, NaN];
    assert.deepEqual(router.choose(hostRequest(engine), stats, signals, none), {
      tag: "reject",
      val: { status: 429, headers: [{ name: "retry-after", value: "7" }] },
    });
    router.init('{"mode": "none"}');
    assert.deepEqual(router.choose(hostRequest(engine), stats, none, none), { tag: "no-opinion" });
    router.init('{"mode": "bad"}');
    assert.throws(() => router.choose(hostRequest(engine), stats, none, none), /choose must return pick/);
  });

  test(`${engine}: outcomes are lifted to numbers, absent fields to undefined`, () => {
    state.engine = engine;
    const router = bind(Echo);
    router.init('{"mode": "plain"}');
    const w = (n) => (big ? BigInt(n) : n);
    router.onOutcome({
      backend: 1,
      status: 200,
      fault: none,
      ttfbUs: w(1500),
      firstByteUs: none,
      totalUs: w(2000),
      bytesUp: w(0),
      bytesDown: w(512),
      attempt: 0,
      tag: w(9),
    });
    const outcome = told.pop();
    assert.equal(outcome.status, 200);
    assert.equal(outcome.fault, undefined);
    assert.equal(outcome.ttfbUs, 1500);
    assert.equal(outcome.firstByteUs, undefined);
    assert.equal(outcome.bytesDown, 512);
    assert.equal(outcome.tag, 9);
    assert.equal(typeof outcome.totalUs, "number");
  });

  test(`${engine}: kv, log and clock reach the host; refusals become KvError`, () => {
    state.engine = engine;
    state.store.clear();
    state.lines.length = 0;
    bind(Echo);
    kv.set("k", "v");
    assert.deepEqual(Array.from(kv.get("k")), [118]);
    assert.equal(kv.get("absent"), undefined);
    assert.equal(kv.insert("k", "w"), false);
    assert.equal(kv.increment("n", 2), 2);
    assert.equal(kv.delete("k"), true);
    assert.throws(() => kv.set("x".repeat(300), "v"), (e) => e instanceof KvError && e.reason === "key-too-long");
    log(LogLevel.INFO, "hi");
    assert.deepEqual(state.lines, [["info", "hi"]]);
    assert.equal(nowUs(), 5);
  });
}
