"""Native test kit: fakes of what the host hands a plugin (requests, backends with stats, labels
and signals, retry contexts, outcomes, the key-value store, the clock) and readers of what it
answers, so a plugin's logic runs under plain CPython and pytest, no Wasm build. The same pieces
as the Rust SDK's `lbx_guest::testkit`.

    from lbx_router import testkit as t

    plugin = t.Plugin(MyRouter, {"rules": []}, [t.labeled("a", pool="api"), t.labeled("b")])
    decision = plugin.choose(t.get("/api/x"), [t.backend(), t.backend(healthy=False)])
    assert t.picked(decision) == 0

`Plugin` drives the router through the same `Driver` as the Wasm glue: the configuration goes
through JSON text, a refusal is `init`'s error, and `Backends` carries the identities.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from . import host
from .backends import STATS_FIELDS, BackendInfo, Backends, BackendStats, RetryContext
from .decision import Decision, Pick, Reject
from .driver import Driver, Refused
from .outcome import Fault, Outcome
from .request import Request
from .router import Router

# ---------------------------------------------------------------------------------- requests


class FakeRequest(Request):
    """A request without a host: method, target (path and query), headers (case-insensitive),
    cookies, client address, authority and body prefix. Builder methods return `self`."""

    __slots__ = ("_m", "_p", "_q", "_headers", "_cookies", "_ip", "_port", "_authority",
                 "_prefix")

    def __init__(self, method: str = "GET", target: str = "/") -> None:
        Request.__init__(self)
        path, _, query = target.partition("?")
        self._m, self._p, self._q = method, path, (query if "?" in target else None)
        self._headers: dict[str, str] = {}
        self._cookies: dict[str, str] = {}
        self._ip, self._port = "127.0.0.1", 40000
        self._authority: Optional[str] = None
        self._prefix: Optional[bytes] = None

    def with_header(self, name: str, value: str) -> "FakeRequest":
        """Add a header (the first of a name wins, as with the host)."""
        self._headers.setdefault(name.lower(), value)
        return self

    def with_cookie(self, name: str, value: str) -> "FakeRequest":
        """Add a cookie."""
        self._cookies[name] = value
        return self

    def with_client(self, address: str) -> "FakeRequest":
        """Set the client's `ip:port` (`[ip]:port` for IPv6)."""
        ip, _, port = address.rpartition(":")
        self._ip, self._port = ip.strip("[]"), int(port)
        return self

    def with_authority(self, authority: str) -> "FakeRequest":
        """Set the Host header / `:authority`."""
        self._authority = authority
        return self

    def with_body(self, prefix: Union[bytes, str, Mapping[str, Any], list[Any]]) -> "FakeRequest":
        """Set the body prefix: bytes, text, or a value encoded as JSON."""
        if isinstance(prefix, str):
            prefix = prefix.encode()
        elif not isinstance(prefix, bytes):
            prefix = json.dumps(prefix).encode()
        self._prefix = prefix
        return self

    def _fetch_method(self) -> str:
        return self._m

    def _fetch_path(self) -> str:
        return self._p

    def _fetch_query(self) -> Optional[str]:
        return self._q

    def _fetch_authority(self) -> Optional[str]:
        return self._authority if self._authority is not None else self._headers.get("host")

    def _fetch_header(self, lower_name: str) -> Optional[str]:
        return self._headers.get(lower_name)

    def _fetch_cookie(self, name: str) -> Optional[str]:
        if name in self._cookies:
            return self._cookies[name]
        # A raw `cookie` header counts too, as the host parses it.
        for part in self._headers.get("cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
        return None

    def _fetch_client_ip(self) -> str:
        return self._ip

    def _fetch_client_port(self) -> int:
        return self._port

    def _fetch_body_prefix(self) -> Optional[bytes]:
        return self._prefix


def request(
    method: str = "GET",
    target: str = "/",
    *,
    headers: Optional[Mapping[str, str]] = None,
    cookies: Optional[Mapping[str, str]] = None,
    client: Optional[str] = None,
    body: Union[bytes, str, Mapping[str, Any], list[Any], None] = None,
) -> FakeRequest:
    """A fake request in one call: `request("POST", "/v1/chat", headers={...}, body={...})`."""
    fake = FakeRequest(method, target)
    for name, value in (headers or {}).items():
        fake.with_header(name, value)
    for name, value in (cookies or {}).items():
        fake.with_cookie(name, value)
    if client is not None:
        fake.with_client(client)
    if body is not None:
        fake.with_body(body)
    return fake


def get(target: str = "/", **kwargs: Any) -> FakeRequest:
    """A fake GET request (keywords as `request`)."""
    return request("GET", target, **kwargs)


def post(target: str = "/", **kwargs: Any) -> FakeRequest:
    """A fake POST request (keywords as `request`)."""
    return request("POST", target, **kwargs)


# ---------------------------------------------------------------------------------- backends


def backend(healthy: bool = True, in_flight: int = 0, *, weight: int = 1,
            ewma_latency_us: int = 0, recent_failures: int = 0) -> BackendStats:
    """One backend's live numbers."""
    return BackendStats(healthy, weight, in_flight, ewma_latency_us, recent_failures)


def all_healthy(n: int) -> list[BackendStats]:
    """`n` healthy, idle backends."""
    return [backend() for _ in range(n)]


def loads(in_flight: Sequence[int]) -> list[BackendStats]:
    """Healthy backends with these requests in flight."""
    return [backend(in_flight=n) for n in in_flight]


def weights(values: Sequence[int]) -> list[BackendStats]:
    """Healthy, idle backends with these weights."""
    return [backend(weight=w) for w in values]


def latencies(latencies_us: Sequence[int]) -> list[BackendStats]:
    """Healthy, idle backends with these moving-average latencies."""
    return [backend(ewma_latency_us=us) for us in latencies_us]


def backend_info(id: str, address: Optional[str] = None, weight: int = 1) -> BackendInfo:
    """A backend's identity without labels (the address defaults to `<id>:80`)."""
    return BackendInfo(id, address or f"{id}:80", weight, {})


def labeled(id: str, labels: Optional[Mapping[str, str]] = None, **more: str) -> BackendInfo:
    """A backend's identity with labels: `labeled("a", pool="api")`."""
    return BackendInfo(id, f"{id}:80", 1, {**(labels or {}), **more})


def signals(names: Sequence[str], readings: Mapping[int, tuple[float, Sequence[float]]],
            count: int) -> list[float]:
    """The host's flat signals list for `count` backends: `readings[i] = (age_ms, values)`;
    backends without a reading are NaN (never scraped)."""
    nan = float("nan")
    flat = [nan] * (count * (len(names) + 1))
    for index, (age, values) in readings.items():
        at = index * (len(names) + 1)
        flat[at] = age
        flat[at + 1: at + 1 + len(values)] = values
    return flat


# ---------------------------------------------------------------------------------- attempts


def first_attempt() -> RetryContext:
    """A request's first attempt."""
    return RetryContext()


def retry(tried: Iterable[int], attempt: Optional[int] = None) -> RetryContext:
    """A retry after these backends failed (attempt defaults to how many were tried)."""
    tried = tuple(tried)
    return RetryContext(len(tried) if attempt is None else attempt, tried)


# ---------------------------------------------------------------------------------- a plugin


class Plugin:
    """A router driven as lbx drives it: `init` with the configuration as JSON text, then
    `backends_changed`, then `choose` calls on fresh numbers, and outcomes if it asked."""

    def __init__(self, router_class: type[Router], config: Union[Mapping[str, Any], str, None] = None,
                 infos: Sequence[BackendInfo] = (), signal_names: Sequence[str] = ()) -> None:
        """Raises `Refused` (with init's error) when the router refuses the configuration."""
        self.driver = Driver(router_class)
        text = config if isinstance(config, str) else json.dumps(config or {})
        self.driver.init(text)
        self.driver.backends_changed(list(infos), list(signal_names))

    @property
    def router(self) -> Router:
        """The user's router instance (its state)."""
        assert self.driver.router is not None
        return self.driver.router

    def backends_changed(self, infos: Sequence[BackendInfo], signal_names: Sequence[str] = ()) -> None:
        """A new backend set."""
        self.driver.backends_changed(list(infos), list(signal_names))

    def choose(self, req: Request, stats: Sequence[BackendStats],
               retry: Optional[RetryContext] = None,
               signals: Optional[Sequence[float]] = None) -> Decision:
        """One decision; `stats` has one entry per backend, in the order of the infos."""
        flat = [n for b in stats for n in b.flat()]
        return self.driver.choose(req, flat, signals, retry)

    def deliver(self, outcome: Outcome) -> bool:
        """Deliver `outcome` if the router wants outcomes; whether it was delivered."""
        if not self.driver.outcomes:
            return False
        self.driver.on_outcome(outcome)
        return True


def refusal(router_class: type[Router], config: Union[Mapping[str, Any], str, None]) -> Optional[str]:
    """The error `init` returns for `config`, or None if the router accepts it."""
    try:
        Plugin(router_class, config)
    except Refused as refused:
        return str(refused)
    return None


def backends(stats: Sequence[BackendStats], infos: Sequence[BackendInfo] = (),
             signal_names: Sequence[str] = (), signal_values: Optional[Sequence[float]] = None
             ) -> Backends:
    """A `Backends` for calling a router's `choose` directly."""
    return Backends(list(stats), infos, signal_names, signal_values)


# ---------------------------------------------------------------------------------- answers


def picked(decision: Decision) -> Optional[int]:
    """The picked backend's index, or None for a reject or no-opinion."""
    return decision.backend if isinstance(decision, Pick) else None


def expect_pick(decision: Decision) -> Pick:
    """The pick, failing the test with the decision when it is not one."""
    assert isinstance(decision, Pick), f"expected a pick, got {decision!r}"
    return decision


def rejected(decision: Decision) -> Optional[int]:
    """The rejection's status, or None."""
    return decision.status if isinstance(decision, Reject) else None


def attempt_order(decision: Decision) -> list[int]:
    """The backends the pick's attempts go to, in order: the pick, then its fallbacks."""
    return [decision.backend, *decision.fallbacks] if isinstance(decision, Pick) else []


def upstream_header(decision: Decision, name: str) -> Optional[str]:
    """The value of an upstream header the pick adds (case-insensitive name)."""
    return _find(decision.upstream_headers, name) if isinstance(decision, Pick) else None


def downstream_header(decision: Decision, name: str) -> Optional[str]:
    """The value of a downstream header the pick (or rejection) adds."""
    if isinstance(decision, Pick):
        return _find(decision.downstream_headers, name)
    if isinstance(decision, Reject):
        return _find(decision.headers, name)
    return None


def _find(pairs: tuple[tuple[str, str], ...], name: str) -> Optional[str]:
    return next((v for n, v in pairs if n.lower() == name.lower()), None)


# ---------------------------------------------------------------------------------- feedback


def answered(index: int, status: int, ttfb_us: int, tag: int = 0) -> Outcome:
    """An attempt on backend `index` answered with `status` after `ttfb_us`."""
    return Outcome(index, status, None, ttfb_us, ttfb_us, ttfb_us, 0, 0, 0, tag)


def failed(index: int, fault: Fault = Fault.BACKEND, tag: int = 0) -> Outcome:
    """An attempt on backend `index` that failed (no response)."""
    return Outcome(index, None, fault, None, None, 0, 0, 0, 0, tag)


def outcome_of(decision: Decision, status: int, ttfb_us: int) -> Outcome:
    """The outcome of the pick `decision` answered with `status` (its backend and tag)."""
    chosen = expect_pick(decision)
    return answered(chosen.backend, status, ttfb_us, chosen.tag)


# ---------------------------------------------------------------------------------- host


def fresh_host(max_bytes: Optional[int] = None) -> host.MemoryServices:
    """Install and return empty in-memory services (kv, log, clock at 0): call it at the start of
    a test that reads them (or use the `lbx_host` pytest fixture idea in your conftest)."""
    services = host.MemoryServices(max_bytes)
    host.install(services)
    return services


def advance_clock(us: int) -> None:
    """Move the in-memory clock forward."""
    services = host.services()
    assert isinstance(services, host.MemoryServices), "advance_clock needs the in-memory host"
    services.clock_us += us


def logs() -> list[tuple[host.LogLevel, str]]:
    """The lines logged so far on the in-memory host."""
    services = host.services()
    assert isinstance(services, host.MemoryServices)
    return services.lines


__all__ = [
    "FakeRequest", "Plugin", "Refused", "STATS_FIELDS", "advance_clock", "all_healthy", "answered",
    "attempt_order", "backend", "backend_info", "backends", "downstream_header", "expect_pick",
    "failed", "first_attempt", "fresh_host", "get", "labeled", "latencies", "loads", "logs",
    "outcome_of", "picked", "post", "refusal", "rejected", "request", "retry", "signals",
    "upstream_header", "weights",
]
