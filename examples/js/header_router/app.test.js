//! Tests of the JavaScript header router's rules on the SDK's native test kit (no Wasm build).
//!
//! Run: node --test examples/js/header_router   (after `npm ci` in that directory)

import assert from "node:assert/strict";
import { test } from "node:test";

import * as t from "@lbx/router/testkit";

import { HeaderRouter } from "./app.js";

const CONFIG = {
  default: { version: "stable" },
  rules: [
    { path_prefix: "/api", group: { pool: "api" } },
    { header: "x-canary", equals: "1", group: { version: "canary" } },
  ],
};
// 0: stable, 1: canary, 2: api (also stable), 3: a second stable.
const INFOS = [
  t.labeled("stable", { version: "stable" }),
  t.labeled("canary", { version: "canary" }),
  t.labeled("api", { pool: "api", version: "stable" }),
  t.labeled("stable-2", { version: "stable" }),
];

const plugin = () => new t.Plugin(HeaderRouter, CONFIG, INFOS);

test("a path under /api goes to the api pool", () => {
  assert.equal(t.picked(plugin().choose(t.get("/api/users"), t.allHealthy(4))), 2);
});

test("the canary header goes to the canary", () => {
  const request = t.get("/", { headers: { "X-Canary": "1" } });
  assert.equal(t.picked(plugin().choose(request, t.allHealthy(4))), 1);
});

test("another canary value is the default group", () => {
  const request = t.get("/", { headers: { "x-canary": "0" } });
  assert.equal(t.picked(plugin().choose(request, t.loads([3, 0, 5, 1]))), 3);
});

test("no rule is the default group, least in flight, never the canary", () => {
  assert.equal(t.picked(plugin().choose(t.get("/home"), t.loads([4, 0, 1, 2]))), 2);
});

test("a down backend is avoided", () => {
  const stats = [t.backend(), t.backend(), t.backend({ healthy: false }), t.backend({ inFlight: 9 })];
  // The api pool's only member is down: the default group decides instead.
  assert.equal(t.picked(plugin().choose(t.get("/api/users"), stats)), 0);
});

test("a retry avoids the backend already tried", () => {
  assert.equal(t.picked(plugin().choose(t.get("/home"), t.loads([0, 0, 5, 7]), t.retry([0]))), 2);
});

test("a group with nobody usable leaves the choice to lbx", () => {
  const stats = [t.backend({ healthy: false }), t.backend(), t.backend({ healthy: false }), t.backend({ healthy: false })];
  assert.equal(t.picked(plugin().choose(t.get("/home"), stats)), undefined);
});

test("a bad config is refused, naming the rule", () => {
  assert.match(
    t.refusal(HeaderRouter, { rules: [{ path_prefix: "/a", header: "x" }] }),
    /rules\[0\] needs exactly one of/,
  );
  assert.match(t.refusal(HeaderRouter, { rules: [{ percent: 150, group: { v: "c" } }] }), /percent 150/);
  assert.match(t.refusal(HeaderRouter, { rules: [{ path_prefix: "/" }] }), /group is empty/);
  assert.notEqual(t.refusal(HeaderRouter, "not json"), undefined);
  assert.equal(t.refusal(HeaderRouter, CONFIG), undefined);
});

test("init logs the number of rules", () => {
  t.freshHost();
  plugin();
  assert.ok(t.logs().some(([, line]) => line.includes("2 rules")));
});
