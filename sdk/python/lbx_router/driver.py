"""What the host asks of a plugin, done once for both worlds: the Wasm glue
(`lbx_router.component`) and the test kit (`testkit.Plugin`) drive a user's `Router` through this
same `Driver`, so what the tests see (configuration parsing, refusals, the kept `Backends`,
outcome delivery) is what runs in lbx.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from .backends import FIRST_ATTEMPT, BackendInfo, Backends, RetryContext
from .decision import Decision
from .outcome import Outcome
from .request import Request
from .router import Router


class Refused(Exception):
    """`init` refused the plugin; the message is what lbx reports."""


class Driver:
    """One plugin instance: the user's router object (ONE, whatever componentize-py constructs
    per call), the backends' identities, and the `Backends` refilled per request."""

    def __init__(self, router_class: type[Router]) -> None:
        self.router_class = router_class
        self.router: Optional[Router] = None
        self.backends = Backends()
        self.outcomes = False

    def init(self, config: str) -> bool:
        """Parse `config` (JSON text), create and set up the router; whether it wants outcomes.
        Raises `Refused` with the reason when the configuration is bad."""
        try:
            parsed = json.loads(config) if config and config.strip() else {}
        except ValueError as problem:
            raise Refused(f"invalid plugin config (not JSON): {problem}") from None
        router = self.router_class()
        try:
            router.init(parsed)
            self.outcomes = bool(router.wants_outcomes())
        except Exception as problem:  # any failure of the user's init refuses the plugin
            raise Refused(f"invalid plugin config: {problem}") from None
        self.router = router
        return self.outcomes

    def backends_changed(self, infos: Sequence[BackendInfo], signal_names: Sequence[str]) -> None:
        """Keep the new backend set and tell the router."""
        infos = list(infos)
        self.backends.set_identities(infos, list(signal_names))
        self._router().backends_changed(infos)

    def choose(
        self,
        request: Request,
        stats: Sequence[int],
        signals: Optional[Sequence[float]],
        retry: Optional[RetryContext],
    ) -> Decision:
        """One decision on the host's flat numbers."""
        router = self.router
        if router is None:
            raise RuntimeError("the plugin was called before init")
        backends = self.backends
        backends.refill(stats, signals)
        return router.choose(request, backends, retry or FIRST_ATTEMPT)

    def on_outcome(self, outcome: Outcome) -> None:
        """Deliver an outcome (the host calls this only when `init` asked for outcomes)."""
        self._router().on_outcome(outcome)

    def _router(self) -> Router:
        if self.router is None:
            raise RuntimeError("the plugin was called before init")
        return self.router
