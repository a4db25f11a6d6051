//! Header router for lbx, in JavaScript on the @lbx/router SDK (sdk/js): the same rules as
//! plugins/header_router (Rust) and examples/python/header_router.
//!
//! Configuration ([plugin.config] in lbx.toml, reaching `init` as parsed JSON):
//!
//!     [plugin.config]
//!     default = { version = "stable" }
//!     rules = [
//!       { path_prefix = "/api", group = { pool = "api" } },
//!       { header = "x-canary", equals = "1", group = { version = "canary" } },
//!       { percent = 5.0, group = { version = "canary" } },
//!     ]
//!
//! The first matching rule picks a group of backends by labels; within it the healthy backend
//! with the fewest requests in flight wins (on a retry, one not yet tried); an empty group falls
//! back to `default`, then to lbx's own choice (no-opinion).
//!
//! Test:  node --test examples/js/header_router   (no Wasm build; after `npm ci` there)
//! Build: bash examples/js/header_router/build.sh

import { ConfigError, log, LogLevel, noOpinion, pick, Router } from "@lbx/router";

/** One configured rule: a condition (path prefix, header, or percentage) and its group. */
class Rule {
  constructor(index, rule) {
    const kinds = ["path_prefix", "header", "percent"].filter((k) => k in rule);
    if (kinds.length !== 1) {
      throw new ConfigError(`rules[${index}] needs exactly one of path_prefix, header or percent`);
    }
    const group = rule.group;
    if (group === null || typeof group !== "object" || Object.keys(group).length === 0) {
      throw new ConfigError(`rules[${index}]: group is empty`);
    }
    this.group = group;
    /** Indexes of the backends in the group (set by `backendsChanged`). */
    this.members = new Set();
    this.pathPrefix = rule.path_prefix;
    // Header names reach the host lowercase: it matches them case-insensitively anyway.
    this.header = "header" in rule ? String(rule.header).toLowerCase() : undefined;
    this.equals = rule.equals;
    this.percent = "percent" in rule ? Number(rule.percent) : undefined;
    if (this.percent !== undefined && !(this.percent >= 0 && this.percent <= 100)) {
      throw new ConfigError(`rules[${index}]: percent ${rule.percent} is not within 0..=100`);
    }
  }

  /** Whether the request meets this rule's condition. */
  matches(request) {
    if (this.pathPrefix !== undefined) return request.path().startsWith(this.pathPrefix);
    if (this.header !== undefined) {
      const value = request.header(this.header);
      return value !== undefined && (this.equals === undefined || value === this.equals);
    }
    return Math.random() * 100 < this.percent;
  }
}

/** Routes to a labelled group chosen by the first matching rule. */
export class HeaderRouter extends Router {
  init(config) {
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      throw new ConfigError("the configuration must be a table");
    }
    this.rules = (config.rules ?? []).map((rule, i) => new Rule(i, rule));
    this.default = config.default ?? {};
    this.defaultMembers = new Set();
    log(LogLevel.INFO, `js header router: ${this.rules.length} rules`);
  }

  backendsChanged(backends) {
    // Each group's members, found when the backend set changes rather than per request.
    const members = (selector) => new Set(backends.flatMap((b, i) => (b.matches(selector) ? [i] : [])));
    for (const rule of this.rules) rule.members = members(rule.group);
    this.defaultMembers = members(this.default);
  }

  choose(request, backends, retry) {
    const candidates = backends.candidates(retry);
    for (const rule of this.rules) {
      if (rule.matches(request)) {
        const best = backends.leastInFlight(candidates.filter((i) => rule.members.has(i)));
        if (best !== undefined) return pick(best);
        break; // the group has nobody usable: the default group decides
      }
    }
    const best = backends.leastInFlight(candidates.filter((i) => this.defaultMembers.has(i)));
    return best === undefined ? noOpinion() : pick(best);
  }
}
