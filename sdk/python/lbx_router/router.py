"""The `Router` base class a plugin subclasses: the same shape as the Rust SDK's `Router` trait
(guest-sdk/src/router.rs). One instance lives per plugin instance in the host; calls never
overlap, so its attributes are the plugin's state, no locking needed.
"""

from __future__ import annotations

from typing import Any

from .backends import BackendInfo, Backends, RetryContext
from .decision import Decision
from .outcome import Outcome
from .request import Request


class ConfigError(Exception):
    """A configuration the plugin refuses; raised from `init`, its message reaches the operator.
    (Any exception raised by `init` refuses the plugin; this one says so on purpose.)"""


class Router:
    """A routing plugin: set up by `init`, asked to `choose` a backend for each request, and
    optionally told how each attempt went (`on_outcome`).

    Example::

        class FirstHealthy(lbx_router.Router):
            def choose(self, request, backends, retry):
                healthy = backends.candidates(retry)
                return lbx_router.pick(healthy[0]) if healthy else lbx_router.no_opinion()

        Router = lbx_router.export(FirstHealthy)
    """

    #: Whether the plugin wants `on_outcome` calls (off by default: feedback then costs nothing).
    #: For a choice that depends on the configuration, override `wants_outcomes`.
    OUTCOMES: bool = False

    def init(self, config: Any) -> None:
        """Set up from the configuration, parsed from JSON (`{}` when the operator gave none).
        Raising (e.g. `ConfigError`) refuses the plugin with the exception's message.

        The default accepts only an empty configuration, so that a typo in the operator's file
        is reported instead of silently ignored (the Rust SDK's `init_default`)."""
        if config not in (None, {}):
            raise ConfigError(f"this plugin takes no configuration, got {config!r}")

    def wants_outcomes(self) -> bool:
        """Whether this instance wants `on_outcome` calls, asked once right after `init`."""
        return self.OUTCOMES

    def backends_changed(self, backends: list[BackendInfo]) -> None:
        """Called before the first `choose` and whenever the backend set changes; position in
        `backends` is the index used by `choose`. The SDK also keeps them for `Backends.info`.
        The default does nothing."""

    def choose(self, request: Request, backends: Backends, retry: RetryContext) -> Decision:
        """Choose a backend for one request: return `pick(i, ...)`, `reject(status)` or
        `no_opinion()`. `retry.tried` lists the backends
        that already failed this request."""
        raise NotImplementedError(f"{type(self).__name__} must define choose")

    def on_outcome(self, outcome: Outcome) -> None:
        """How one attempt went, if the plugin wants outcomes; possibly on another instance than
        the one that decided (match by `outcome.tag`). The default does nothing."""
