"""lbx_router: write lbx routing plugins in Python.

Subclass `Router`, return `pick(...)`, `reject(...)` or `no_opinion()` from `choose`, and end the
module with `Router = lbx_router.export(MyRouter)` (componentize-py looks for the export named
`Router` in the app module). Test the logic with `lbx_router.testkit` and pytest; build with
componentize-py against `wit/` (see examples/python/header_router/build.sh).

This package imports only the standard library; the Wasm glue (`lbx_router.component`, which
imports componentize-py's bindings) is loaded by `export` only when those bindings exist.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from . import kv
from .backends import (
    FIRST_ATTEMPT,
    STATS_FIELDS,
    BackendInfo,
    Backends,
    BackendStats,
    RetryContext,
)
from .decision import Decision, NoOpinion, Pick, Reject, no_opinion, pick, reject
from .host import KvError, LogLevel, log, now_us
from .outcome import Fault, Outcome
from .request import Request
from .router import ConfigError, Router

__all__ = [
    "FIRST_ATTEMPT", "STATS_FIELDS", "BackendInfo", "BackendStats", "Backends", "ConfigError",
    "Decision", "Fault", "KvError", "LogLevel", "NoOpinion", "Outcome", "Pick", "Reject",
    "Request", "RetryContext", "Router", "export", "kv", "log", "no_opinion", "now_us", "pick",
    "reject",
]


def export(router_class: type[Router]) -> Any:
    """Register `router_class` as the plugin's router; assign the result to `Router` in the app
    module. In the Wasm build it returns the export class that delegates to one instance of
    `router_class`; under plain CPython (no bindings) it returns `router_class` unchanged."""
    if not (isinstance(router_class, type) and issubclass(router_class, Router)):
        raise TypeError(f"export needs a subclass of lbx_router.Router, got {router_class!r}")
    # componentize-py generates `wit_world` for the build; without it this is a test run.
    # (Already imported counts too: a module made at run time may have no spec to find.)
    if "wit_world" not in sys.modules and importlib.util.find_spec("wit_world") is None:
        return router_class
    from . import component

    return component.bind(router_class)
