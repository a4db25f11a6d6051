"""Header router for lbx, in Python on the lbx_router SDK: the same rules as plugins/header_router
(Rust).

Configuration ([plugin.config] in lbx.toml, reaching `init` as parsed JSON):

    [plugin.config]
    default = { version = "stable" }
    rules = [
      { path_prefix = "/api", group = { pool = "api" } },
      { header = "x-canary", equals = "1", group = { version = "canary" } },
      { percent = 5.0, group = { version = "canary" } },
    ]

The first matching rule picks a group of backends by labels; within it the healthy backend with
the fewest requests in flight wins (on a retry, one not yet tried); an empty group falls back to
`default`, then to lbx's own choice (no-opinion).

Test: python3 -m pytest -q examples/python/header_router   (no Wasm build needed)
Build: bash examples/python/header_router/build.sh          (needs componentize-py 0.25.1)
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Optional

import lbx_router
from lbx_router import Backends, BackendInfo, Decision, Request, RetryContext


class Rule:
    """One configured rule: a condition (path prefix, header, or percentage) and its group."""

    __slots__ = ("path_prefix", "header", "equals", "percent", "group", "members")

    def __init__(self, index: int, rule: Mapping[str, Any]) -> None:
        kinds = [k for k in ("path_prefix", "header", "percent") if k in rule]
        if len(kinds) != 1:
            raise lbx_router.ConfigError(
                f"rules[{index}] needs exactly one of path_prefix, header or percent")
        group = rule.get("group")
        if not group or not isinstance(group, dict):
            raise lbx_router.ConfigError(f"rules[{index}]: group is empty")
        self.group: dict[str, str] = group
        #: Indexes of the backends in the group (set by `backends_changed`).
        self.members: frozenset[int] = frozenset()
        self.path_prefix: Optional[str] = rule.get("path_prefix")
        self.header: Optional[str] = rule["header"].lower() if "header" in rule else None
        self.equals: Optional[str] = rule.get("equals")
        self.percent: Optional[float] = float(rule["percent"]) if "percent" in rule else None
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise lbx_router.ConfigError(
                f"rules[{index}]: percent {rule['percent']} is not within 0..=100")

    def matches(self, request: Request) -> bool:
        """Whether the request meets this rule's condition."""
        if self.path_prefix is not None:
            return request.path().startswith(self.path_prefix)
        if self.header is not None:
            value = request.header(self.header)
            return value is not None and (self.equals is None or value == self.equals)
        return random.random() * 100 < (self.percent or 0.0)


class HeaderRouter(lbx_router.Router):
    """Routes to a labelled group chosen by the first matching rule."""

    def init(self, config: Any) -> None:
        if not isinstance(config, dict):
            raise lbx_router.ConfigError("the configuration must be a table")
        self.rules = [Rule(i, r) for i, r in enumerate(config.get("rules", []))]
        self.default: dict[str, str] = config.get("default", {})
        self.default_members: frozenset[int] = frozenset()
        lbx_router.log(lbx_router.LogLevel.INFO, f"python header router: {len(self.rules)} rules")

    def backends_changed(self, backends: list[BackendInfo]) -> None:
        # Each group's members, found when the backend set changes rather than per request.
        for rule in self.rules:
            rule.members = frozenset(i for i, b in enumerate(backends) if b.matches(rule.group))
        self.default_members = frozenset(
            i for i, b in enumerate(backends) if b.matches(self.default))

    def choose(self, request: Request, backends: Backends, retry: RetryContext) -> Decision:
        candidates = backends.candidates(retry)
        for rule in self.rules:
            if rule.matches(request):
                best = backends.least_in_flight([i for i in candidates if i in rule.members])
                if best is not None:
                    return lbx_router.pick(best)
                break  # the group has nobody usable: the default group decides
        best = backends.least_in_flight([i for i in candidates if i in self.default_members])
        return lbx_router.no_opinion() if best is None else lbx_router.pick(best)


# componentize-py looks for the export class `Router` in this module.
Router = lbx_router.export(HeaderRouter)
