//! Tests of the SDK's pieces under node, as a plugin author relies on them: the test kit's
//! `Plugin` drives routers exactly as the Wasm glue does (the same `Driver`).
//!
//! Run: node --test sdk/js

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ConfigError, kv, KvError, log, LogLevel, noOpinion, nowUs, pick, reject, Router } from "../index.js";
import * as t from "../testkit.js";

class LeastLoaded extends Router {
  choose(_request, backends, retry) {
    const best = backends.leastInFlight(backends.candidates(retry));
    return best === undefined ? noOpinion() : pick(best);
  }
}

beforeEach(() => {
  t.freshHost();
});

test("candidates skip unhealthy and already tried backends", () => {
  const plugin = new t.Plugin(LeastLoaded);
  const stats = [t.backend({ inFlight: 0 }), t.backend({ healthy: false }), t.backend({ inFlight: 5 })];
  assert.equal(t.picked(plugin.choose(t.get("/"), stats)), 0);
  assert.equal(t.picked(plugin.choose(t.get("/"), stats, t.retry([0]))), 2);
  // Every healthy backend was tried: a retry still has somewhere to go.
  assert.equal(t.picked(plugin.choose(t.get("/"), stats, t.retry([0, 2]))), 0);
  assert.equal(t.picked(plugin.choose(t.get("/"), [t.backend({ healthy: false })])), undefined);
});

test("backends read stats by index, identities, labels and signals by name", () => {
  const names = ["queue", "kv_cache"];
  const backends = t.backends(
    [t.backend({ weight: 3, inFlight: 2, ewmaLatencyUs: 900, recentFailures: 1 }), t.backend({ healthy: false })],
    [t.labeled("a", { pool: "api" }), t.backendInfo("b", "10.0.0.2:8080", 2)],
    names,
    t.signals(names, { 0: [150, [4, 0.5]] }, 2),
  );
  assert.equal(backends.length, 2);
  assert.deepEqual(backends.at(0).flat(), [1, 3, 2, 900, 1]);
  assert.equal(backends.healthy(1), false);
  assert.equal(backends.weight(0), 3);
  assert.equal(backends.ewmaLatencyUs(0), 900);
  assert.equal(backends.recentFailures(0), 1);
  assert.deepEqual(backends.healthyIndices(), [0]);
  assert.equal(backends.info(1).address, "10.0.0.2:8080");
  assert.equal(backends.labels(0).pool, "api");
  assert.ok(backends.info(0).matches({ pool: "api" }));
  assert.ok(!backends.info(1).matches({ pool: "api" }));
  assert.equal(backends.signal(0, "queue"), 4);
  assert.equal(backends.signal(0, "kv_cache"), 0.5);
  assert.equal(backends.signalAgeMs(0), 150);
  // Never scraped (NaN), or a name nobody configured: no reading, never a number.
  assert.equal(backends.signal(1, "queue"), undefined);
  assert.equal(backends.signalAgeMs(1), undefined);
  assert.equal(backends.signal(0, "nope"), undefined);
  assert.throws(() => backends.at(2), RangeError);
});

test("a pick carries headers and options, a reject its status and headers", () => {
  const decision = pick(1, {
    upstreamHeaders: { "x-pool": "api" },
    downstreamHeaders: [["Set-Cookie", "b=1"]],
    fallbacks: [2, 0],
    retryOn: [503],
    rewrite: "/v2/users",
    tag: 42,
  });
  assert.deepEqual(t.attemptOrder(decision), [1, 2, 0]);
  assert.equal(t.upstreamHeader(decision, "X-Pool"), "api");
  assert.equal(t.downstreamHeader(decision, "set-cookie"), "b=1");
  assert.deepEqual(decision.retryOn, [503]);
  assert.equal(decision.rewrite, "/v2/users");
  assert.ok(decision.hasOptions);
  assert.ok(!pick(1).hasOptions);
  // A plain pick is made once per index: the glue sends it pre-lowered.
  assert.equal(pick(1), pick(1));
  const no = reject(429, { "retry-after": "2" });
  assert.equal(t.rejected(no), 429);
  assert.equal(t.downstreamHeader(no, "Retry-After"), "2");
  assert.equal(t.picked(no), undefined);
  assert.throws(() => t.expectPick(no), /expected a pick, got Reject/);
});

test("a request reads headers case-insensitively, cookies, the client and the body as JSON", () => {
  const request = t.post("/v1/chat?stream=1", {
    headers: { "X-Tenant": "acme", cookie: "session=s1; theme=dark" },
    cookies: { beta: "yes" },
    client: "[::1]:5000",
    body: { model: "llama-3", messages: [] },
  });
  assert.equal(request.method(), "POST");
  assert.equal(request.path(), "/v1/chat");
  assert.equal(request.query(), "stream=1");
  assert.equal(request.header("x-tenant"), "acme");
  assert.equal(request.header("X-TENANT"), "acme");
  assert.equal(request.header("x-missing"), undefined);
  assert.equal(request.cookie("beta"), "yes");
  assert.equal(request.cookie("theme"), "dark");
  assert.equal(request.clientIp(), "::1");
  assert.equal(request.client(), "[::1]:5000");
  assert.equal(request.bodyJson().model, "llama-3");
  assert.ok(request.bodyPrefix() instanceof Uint8Array);
  // A prefix cut mid-document is not JSON: the router routes without it.
  assert.equal(t.post("/", { body: '{"model": "lla' }).bodyJson(), undefined);
  assert.equal(t.get("/").bodyPrefix(), undefined);
});

test("the default init refuses a configuration it does not take; init errors are refusals", () => {
  assert.match(t.refusal(LeastLoaded, { typo: 1 }), /takes no configuration/);
  assert.equal(t.refusal(LeastLoaded, {}), undefined);
  assert.match(t.refusal(LeastLoaded, "{not json"), /not JSON/);
  class Strict extends Router {
    init(config) {
      if (!config.pool) throw new ConfigError("pool is required");
    }
  }
  assert.equal(t.refusal(Strict, {}), "invalid plugin config: pool is required");
});

test("outcomes reach only routers that ask for them, tagged as picked", () => {
  class Learner extends Router {
    static OUTCOMES = true;
    init() {
      this.seen = [];
    }
    choose() {
      return pick(0, { tag: 7 });
    }
    onOutcome(outcome) {
      this.seen.push([outcome.backend, outcome.status, outcome.tag]);
    }
  }
  const learner = new t.Plugin(Learner);
  const decision = learner.choose(t.get("/"), t.allHealthy(1));
  assert.ok(learner.deliver(t.outcomeOf(decision, 200, 1500)));
  assert.ok(learner.deliver(t.failed(0)));
  assert.deepEqual(learner.router.seen, [
    [0, 200, 7],
    [0, undefined, 0],
  ]);
  assert.equal(new t.Plugin(LeastLoaded).deliver(t.answered(0, 200, 10)), false);
});

test("kv keeps values and counters with the host's limits; log and clock are the host's", () => {
  const host = t.freshHost(64);
  kv.set("k", "v");
  assert.equal(kv.getText("k"), "v");
  assert.equal(kv.insert("k", "other"), false);
  assert.equal(kv.increment("n"), 1);
  assert.equal(kv.increment("n", 41), 42);
  assert.equal(kv.delete("k"), true);
  assert.equal(kv.get("k"), undefined);
  assert.throws(() => kv.set("x".repeat(257), "v"), (e) => e instanceof KvError && e.reason === "key-too-long");
  assert.throws(() => kv.set("big", new Uint8Array(100)), (e) => e instanceof KvError && e.reason === "store-full");
  log(LogLevel.WARN, "hello");
  assert.deepEqual(t.logs(), [["warn", "hello"]]);
  t.advanceClock(250);
  assert.equal(nowUs(), 250);
  assert.equal(host.store.size, 1);
});

test("a router is told its backends before choosing, and again when they change", () => {
  class ById extends Router {
    backendsChanged(infos) {
      this.ids = infos.map((b) => b.id);
    }
    choose(_request, backends) {
      return pick(this.ids.indexOf("b") >= 0 ? this.ids.indexOf("b") : 0);
    }
  }
  const plugin = new t.Plugin(ById, {}, [t.labeled("a"), t.labeled("b")]);
  assert.equal(t.picked(plugin.choose(t.get("/"), t.allHealthy(2))), 1);
  plugin.backendsChanged([t.labeled("b"), t.labeled("a")]);
  assert.equal(t.picked(plugin.choose(t.get("/"), t.allHealthy(2))), 0);
});
