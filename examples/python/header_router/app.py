"""Header router for lbx, in Python: the same rules as plugins/header_router (Rust).

Configuration ([plugin.config] in lbx.toml, reaching `init` as JSON):

    [plugin.config]
    default = { version = "stable" }
    rules = [
      { path_prefix = "/api", group = { pool = "api" } },
      { header = "x-canary", equals = "1", group = { version = "canary" } },
      { percent = 5.0, group = { version = "canary" } },
    ]

The first matching rule picks a group of backends by labels; within it the healthy backend with
the fewest requests in flight wins; an empty group falls back to `default`, then to lbx's own
choice (no-opinion).

Build: bash examples/python/header_router/build.sh  (needs componentize-py 0.25.1)
"""

import json
import random

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

STATS_FIELDS = 5  # healthy, weight, in-flight, ewma-latency-us, recent-failures


class State:
    """The plugin's state. componentize-py creates a new `Router` for every call, so state
    lives at module level: one per plugin instance, like a Rust plugin's struct."""

    rules: list = []
    default: dict = {}
    labels: list = []


class Router(exports.Router):
    def init(self, config: str) -> None:
        try:
            settings = json.loads(config or "{}")
            State.rules = [validate(i, rule) for i, rule in enumerate(settings.get("rules", []))]
            State.default = settings.get("default", {})
        except (ValueError, TypeError, KeyError) as problem:
            raise Err(f"invalid plugin config: {problem}")
        host.log(host.LogLevel.INFO, f"python header router: {len(State.rules)} rules")

    def backends_changed(self, backends: list) -> None:
        State.labels = [dict(b.labels) for b in backends]

    def choose(self, req, stats: list, retry) -> types.Decision:
        tried = set(retry.tried) if retry else set()
        count = len(stats) // STATS_FIELDS
        healthy = [i for i in range(count) if stats[i * STATS_FIELDS] == 1]
        candidates = [i for i in healthy if i not in tried] or healthy
        group = next((rule["group"] for rule in State.rules if matches(rule, req)), None)
        for selector in (group, State.default):
            if selector is None:
                continue
            members = [
                i for i in candidates
                if i < len(State.labels)
                and all(State.labels[i].get(k) == v for k, v in selector.items())
            ]
            if members:
                best = min(members, key=lambda i: stats[i * STATS_FIELDS + 2])
                return types.Decision_Pick(types.Pick(best, [], []))
        return types.Decision_NoOpinion()


def validate(index: int, rule: dict) -> dict:
    kinds = [k for k in ("path_prefix", "header", "percent") if k in rule]
    if len(kinds) != 1:
        raise ValueError(f"rules[{index}] needs exactly one of path_prefix, header or percent")
    if not rule.get("group"):
        raise ValueError(f"rules[{index}]: group is empty")
    if "percent" in rule and not 0 <= float(rule["percent"]) <= 100:
        raise ValueError(f"rules[{index}]: percent {rule['percent']} is not within 0..=100")
    return rule


def matches(rule: dict, req) -> bool:
    if "path_prefix" in rule:
        return req.path().startswith(rule["path_prefix"])
    if "header" in rule:
        value = req.header(rule["header"].lower())
        return value is not None and ("equals" not in rule or value == rule["equals"])
    return random.random() * 100 < float(rule["percent"])
