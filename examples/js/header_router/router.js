// Header router for lbx, in JavaScript: the same rules as plugins/header_router (Rust) and
// examples/python/header_router.
//
// [plugin.config]
// default = { version = "stable" }
// rules = [
//   { path_prefix = "/api", group = { pool = "api" } },
//   { header = "x-canary", equals = "1", group = { version = "canary" } },
//   { percent = 5.0, group = { version = "canary" } },
// ]
//
// Build: bash examples/js/header_router/build.sh  (needs node and npm; installs jco locally)

import { log } from "lbx:router/host@0.1.0";

const STATS_FIELDS = 5; // healthy, weight, in-flight, ewma-latency-us, recent-failures

let rules = [];
let defaultGroup = {};
let labels = [];

function validate(rule, index) {
  const kinds = ["path_prefix", "header", "percent"].filter((k) => k in rule);
  if (kinds.length !== 1) {
    throw `invalid plugin config: rules[${index}] needs exactly one of path_prefix, header or percent`;
  }
  if (!rule.group || Object.keys(rule.group).length === 0) {
    throw `invalid plugin config: rules[${index}]: group is empty`;
  }
  if ("percent" in rule && !(rule.percent >= 0 && rule.percent <= 100)) {
    throw `invalid plugin config: rules[${index}]: percent ${rule.percent} is not within 0..=100`;
  }
  return rule;
}

function matches(rule, req) {
  if ("path_prefix" in rule) return req.path().startsWith(rule.path_prefix);
  if ("header" in rule) {
    const value = req.header(rule.header.toLowerCase());
    return value !== undefined && (!("equals" in rule) || value === rule.equals);
  }
  return Math.random() * 100 < rule.percent;
}

export const router = {
  init(config) {
    let settings;
    try {
      settings = JSON.parse(config || "{}");
    } catch (e) {
      throw `invalid plugin config: ${e}`;
    }
    rules = (settings.rules || []).map(validate);
    defaultGroup = settings.default || {};
    log("info", `js header router: ${rules.length} rules`);
  },

  backendsChanged(backends) {
    labels = backends.map((b) => Object.fromEntries(b.labels));
  },

  choose(req, stats, retry) {
    const tried = new Set(retry ? Array.from(retry.tried) : []);
    const count = stats.length / STATS_FIELDS;
    const healthy = [];
    for (let i = 0; i < count; i++) if (stats[i * STATS_FIELDS] === 1) healthy.push(i);
    let candidates = healthy.filter((i) => !tried.has(i));
    if (candidates.length === 0) candidates = healthy;
    const rule = rules.find((r) => matches(r, req));
    for (const selector of [rule && rule.group, defaultGroup]) {
      if (!selector) continue;
      const members = candidates.filter(
        (i) => i < labels.length && Object.entries(selector).every(([k, v]) => labels[i][k] === v),
      );
      if (members.length > 0) {
        const inFlight = (i) => stats[i * STATS_FIELDS + 2];
        const best = members.reduce((a, b) => (inFlight(b) < inFlight(a) ? b : a));
        return { tag: "pick", val: { backend: best, upstreamHeaders: [], downstreamHeaders: [] } };
      }
    }
    return { tag: "no-opinion" };
  },
};
