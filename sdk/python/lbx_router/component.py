"""The glue between componentize-py's generated bindings (`wit/router.wit`, world `plugin`,
contract lbx:router@0.2.0) and the SDK's API. Plugin authors never edit or import this module:
`lbx_router.export` loads it only in the Wasm build, where the bindings (`wit_world`) exist, so
plain CPython (the test kit) never imports them.

componentize-py constructs a new `Router` export object for every call, so the plugin's state
cannot live on it: one `Driver` at module level holds the user's one router instance and the
`Backends` reused across requests, and every export method delegates to it.

Cost per decision (the reason for each choice below): each string the plugin reads is one host
call and one `str`, so `HostRequest` asks lazily and caches path and method; stats stay the
host's flat list (no per-backend objects); a plain pick is lowered without options, which the
host then lifts as cheaply as a 0.1 pick.
"""

from __future__ import annotations

from typing import Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import router as wit_router
from wit_world.imports import host as wit_host
from wit_world.imports import kv as wit_kv
from wit_world.imports import types

from .backends import BackendInfo, RetryContext
from .decision import PLAIN_PICKS, Decision, Pick, Reject
from .driver import Driver, Refused
from .host import KvError, LogLevel, Services, install
from .outcome import Fault, Outcome
from .request import _UNSET, Request
from .router import Router as UserRouter

_driver: Optional[Driver] = None

_LEVELS = {level: getattr(wit_host.LogLevel, level.name) for level in LogLevel}
_KV_REASONS = {wit_kv.KvError.KEY_TOO_LONG: "key-too-long", wit_kv.KvError.STORE_FULL: "store-full"}
_FAULTS = {getattr(types.Fault, fault.name): fault for fault in Fault}
_NO_FEATURES = wit_router.Features(0)


class HostServices(Services):
    """The host's log, clock and key-value store, through the imported interfaces."""

    def log(self, level: LogLevel, message: str) -> None:
        wit_host.log(_LEVELS[level], message)

    def now_us(self) -> int:
        return wit_host.now_us()

    def kv_get(self, key: str) -> Optional[bytes]:
        return wit_kv.get(key)

    def kv_set(self, key: str, value: bytes) -> None:
        try:
            wit_kv.set(key, value)
        except Err as refused:
            raise KvError(_KV_REASONS.get(refused.value, str(refused.value))) from None

    def kv_insert(self, key: str, value: bytes) -> bool:
        try:
            return wit_kv.insert(key, value)
        except Err as refused:
            raise KvError(_KV_REASONS.get(refused.value, str(refused.value))) from None

    def kv_delete(self, key: str) -> bool:
        return wit_kv.delete(key)

    def kv_increment(self, key: str, delta: int) -> int:
        try:
            return wit_kv.increment(key, delta)
        except Err as refused:
            raise KvError(_KV_REASONS.get(refused.value, str(refused.value))) from None


class HostRequest(Request):
    """The host's request resource behind the SDK's `Request`; valid during one `choose`."""

    __slots__ = ("_req",)

    def __init__(self, req: types.Request) -> None:
        # Inline rather than `Request.__init__`: one call fewer on every decision.
        self._req = req
        self._path = self._method = self._body = self._json = _UNSET

    # The two reads nearly every router makes, without the base class's extra call level (a
    # Python call costs ~0.3 µs in the Wasm build). The host matches header names
    # case-insensitively itself.
    def path(self) -> str:
        path = self._path
        if path is _UNSET:
            path = self._path = self._req.path()
        return path

    def header(self, name: str) -> Optional[str]:
        return self._req.header(name)

    def _fetch_method(self) -> str:
        return self._req.method()

    def _fetch_path(self) -> str:
        return self._req.path()

    def _fetch_query(self) -> Optional[str]:
        return self._req.query()

    def _fetch_authority(self) -> Optional[str]:
        return self._req.authority()

    def _fetch_header(self, lower_name: str) -> Optional[str]:
        return self._req.header(lower_name)

    def _fetch_cookie(self, name: str) -> Optional[str]:
        return self._req.cookie(name)

    def _fetch_client_ip(self) -> str:
        return self._req.client_ip()

    def _fetch_client_port(self) -> int:
        return self._req.client_port()

    def _fetch_body_prefix(self) -> Optional[bytes]:
        body = self._req.body_prefix()
        return None if body is None else bytes(body)


def _headers(pairs: tuple[tuple[str, str], ...]) -> list[types.Header]:
    return [types.Header(n, v) for n, v in pairs] if pairs else []


# Pre-lowered answers, reused: componentize-py only reads a returned value to lower it.
_LOWERED_PLAIN: dict[int, types.Decision] = {}
_LOWERED_NO_OPINION = types.Decision_NoOpinion()


def _lower(decision: Decision) -> types.Decision:
    """The SDK's decision as the contract's."""
    if type(decision) is Pick:
        backend = decision.backend
        if decision is PLAIN_PICKS.get(backend):
            lowered = _LOWERED_PLAIN.get(backend)
            if lowered is None:
                lowered = _LOWERED_PLAIN[backend] = types.Decision_Pick(
                    types.Pick(backend, [], [], None))
            return lowered
        options = None
        if decision.has_options:
            options = types.PickOptions(list(decision.fallbacks), list(decision.retry_on),
                                        decision.rewrite, decision.tag)
        return types.Decision_Pick(types.Pick(decision.backend,
                                              _headers(decision.upstream_headers),
                                              _headers(decision.downstream_headers), options))
    if type(decision) is Reject:
        return types.Decision_Reject(types.Rejection(decision.status, _headers(decision.headers)))
    return _LOWERED_NO_OPINION


class Router(exports.Router):
    """The export componentize-py instantiates per call: every method delegates to `_driver`."""

    def init(self, config: str) -> wit_router.Features:
        assert _driver is not None, "lbx_router.export was not called"
        try:
            wants = _driver.init(config)
        except Refused as refused:
            raise Err(str(refused)) from None
        return wit_router.Features.OUTCOMES if wants else _NO_FEATURES

    def backends_changed(self, backends: list[types.BackendInfo], signals: list[str]) -> None:
        assert _driver is not None
        _driver.backends_changed(
            [BackendInfo(b.id, b.address, b.weight, dict(b.labels)) for b in backends], signals)

    def choose(self, req: types.Request, stats: list[int], signals: Optional[list[float]],
               retry: Optional[types.RetryContext]) -> types.Decision:
        assert _driver is not None
        context = None if retry is None else RetryContext(retry.attempt, retry.tried)
        return _lower(_driver.choose(HostRequest(req), stats, signals, context))

    def on_outcome(self, outcome: types.Outcome) -> None:
        assert _driver is not None
        fault = None if outcome.fault is None else _FAULTS[outcome.fault]
        _driver.on_outcome(Outcome(outcome.backend, outcome.status, fault, outcome.ttfb_us,
                                   outcome.first_byte_us, outcome.total_us, outcome.bytes_up,
                                   outcome.bytes_down, outcome.attempt, outcome.tag))


def bind(router_class: type[UserRouter]) -> type[Router]:
    """Make `router_class` the plugin's router and the host's services the SDK's."""
    global _driver
    _driver = Driver(router_class)
    install(HostServices())
    return Router
