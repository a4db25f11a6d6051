"""Tests of the Wasm glue (`lbx_router.component`) under plain CPython, against stand-ins for
componentize-py's generated bindings with the same names and shapes as those generated from
`wit/router.wit`: every conversion the integration test (plain picks only) does not reach —
pick options and headers, rejections, init refusals, features, outcomes, kv refusals, logging.

Run: python3 -m pytest -q sdk/python
"""

import importlib
import sys
import types as pytypes
from dataclasses import dataclass
from enum import Enum, Flag, auto
from typing import Any, Iterator, Optional

import pytest

import lbx_router
from lbx_router import host


def _bindings() -> dict[str, pytypes.ModuleType]:
    """Stand-ins for `componentize_py_types` and `wit_world`, recording host calls."""
    cpt = pytypes.ModuleType("componentize_py_types")

    class Err(Exception):
        def __init__(self, value: Any) -> None:
            super().__init__(value)
            self.value = value

    cpt.Err = Err  # type: ignore[attr-defined]

    t = pytypes.ModuleType("wit_world.imports.types")

    @dataclass
    class BackendInfo:
        id: str
        address: str
        weight: int
        labels: list

    @dataclass
    class RetryContext:
        attempt: int
        tried: list

    @dataclass
    class Header:
        name: str
        value: str

    @dataclass
    class PickOptions:
        fallbacks: list
        retry_on: list
        rewrite: Optional[str]
        tag: int

    @dataclass
    class Pick:
        backend: int
        upstream_headers: list
        downstream_headers: list
        options: Optional[PickOptions]

    @dataclass
    class Rejection:
        status: int
        headers: list

    @dataclass
    class Decision_Pick:
        value: Pick

    @dataclass
    class Decision_Reject:
        value: Rejection

    @dataclass
    class Decision_NoOpinion:
        pass

    class Fault(Enum):
        CLIENT = 0
        BACKEND = 1
        LBX = 2

    @dataclass
    class Outcome:
        backend: int
        status: Optional[int]
        fault: Optional[Fault]
        ttfb_us: Optional[int]
        first_byte_us: Optional[int]
        total_us: int
        bytes_up: int
        bytes_down: int
        attempt: int
        tag: int

    for item in (BackendInfo, RetryContext, Header, PickOptions, Pick, Rejection, Decision_Pick,
                 Decision_Reject, Decision_NoOpinion, Fault, Outcome):
        setattr(t, item.__name__, item)

    h = pytypes.ModuleType("wit_world.imports.host")

    class LogLevel(Enum):
        TRACE = 0
        DEBUG = 1
        INFO = 2
        WARN = 3
        ERROR = 4

    h.LogLevel = LogLevel  # type: ignore[attr-defined]
    h.lines = []  # type: ignore[attr-defined]
    h.log = lambda level, message: h.lines.append((level, message))  # type: ignore[attr-defined]
    h.now_us = lambda: 42  # type: ignore[attr-defined]

    k = pytypes.ModuleType("wit_world.imports.kv")

    class KvError(Enum):
        KEY_TOO_LONG = 0
        STORE_FULL = 1

    def refuse(*_: Any) -> None:
        raise Err(KvError.STORE_FULL)

    k.KvError = KvError  # type: ignore[attr-defined]
    k.get = lambda key: None  # type: ignore[attr-defined]
    k.set = k.insert = k.increment = refuse  # type: ignore[attr-defined]
    k.delete = lambda key: False  # type: ignore[attr-defined]

    r = pytypes.ModuleType("wit_world.exports.router")

    class Features(Flag):
        OUTCOMES = auto()

    r.Features = Features  # type: ignore[attr-defined]
    e = pytypes.ModuleType("wit_world.exports")
    e.Router = type("Router", (), {})  # type: ignore[attr-defined]
    e.router = r  # type: ignore[attr-defined]
    i = pytypes.ModuleType("wit_world.imports")
    i.types, i.host, i.kv = t, h, k  # type: ignore[attr-defined]
    w = pytypes.ModuleType("wit_world")
    w.exports, w.imports = e, i  # type: ignore[attr-defined]
    return {"componentize_py_types": cpt, "wit_world": w, "wit_world.exports": e,
            "wit_world.exports.router": r, "wit_world.imports": i, "wit_world.imports.types": t,
            "wit_world.imports.host": h, "wit_world.imports.kv": k}


@pytest.fixture
def glue() -> Iterator[pytypes.ModuleType]:
    """`lbx_router.component` imported against the stand-ins; everything undone afterwards."""
    stubs = _bindings()
    sys.modules.update(stubs)
    sys.modules.pop("lbx_router.component", None)
    try:
        yield importlib.import_module("lbx_router.component")
    finally:
        for name in [*stubs, "lbx_router.component"]:
            sys.modules.pop(name, None)
        host.install(host.MemoryServices())


class Learner(lbx_router.Router):
    """Answers by path, wants outcomes, remembers them."""

    OUTCOMES = True

    def init(self, config: Any) -> None:
        if "bad" in config:
            raise lbx_router.ConfigError("bad is not a setting")
        self.outcomes: list[lbx_router.Outcome] = []

    def choose(self, request, backends, retry):  # type: ignore[no-untyped-def]
        if request.path() == "/reject":
            return lbx_router.reject(429, {"retry-after": "2"})
        if request.path() == "/plain":
            return lbx_router.pick(1)
        if request.path() == "/none":
            return lbx_router.no_opinion()
        fresh = backends.candidates(retry)
        return lbx_router.pick(fresh[0], upstream_headers={"x-via": "py"}, fallbacks=fresh[1:],
                               retry_on=[503], rewrite="/v2", tag=9)

    def on_outcome(self, outcome: lbx_router.Outcome) -> None:
        self.outcomes.append(outcome)


class HostReq:
    """The host's request resource, as the bindings hand it over."""

    def __init__(self, path: str) -> None:
        self.reads = 0
        self._path = path

    def path(self) -> str:
        self.reads += 1
        return self._path

    def header(self, name: str) -> Optional[str]:
        return "1" if name.lower() == "x-canary" else None


def test_the_glue_delegates_every_call_to_one_router_instance(glue: pytypes.ModuleType) -> None:
    export = lbx_router.export(Learner)
    assert export is glue.Router
    t = sys.modules["wit_world.imports.types"]
    assert export().init('{"a": 1}') == sys.modules["wit_world.exports.router"].Features.OUTCOMES
    export().backends_changed([t.BackendInfo("a", "a:80", 1, [("pool", "api")]),
                               t.BackendInfo("b", "b:80", 2, [])], [])
    stats = [1, 1, 0, 0, 0, 1, 2, 0, 0, 0]
    # A new export object per call, as componentize-py does: the state is the driver's.
    rich = export().choose(HostReq("/x"), stats, None, None)
    assert rich == t.Decision_Pick(t.Pick(0, [t.Header("x-via", "py")], [],
                                          t.PickOptions([1], [503], "/v2", 9)))
    retried = export().choose(HostReq("/x"), stats, None, t.RetryContext(1, [0]))
    assert retried.value.backend == 1 and retried.value.options.fallbacks == []
    plain = export().choose(HostReq("/plain"), stats, None, None)
    assert plain == t.Decision_Pick(t.Pick(1, [], [], None))
    assert export().choose(HostReq("/plain"), stats, None, None) is plain  # lowered once
    assert export().choose(HostReq("/reject"), stats, None, None) == t.Decision_Reject(
        t.Rejection(429, [t.Header("retry-after", "2")]))
    assert export().choose(HostReq("/none"), stats, None, None) == t.Decision_NoOpinion()
    export().on_outcome(t.Outcome(0, None, t.Fault.BACKEND, None, None, 5, 0, 0, 1, 9))
    router = glue._driver.router
    assert router.outcomes == [lbx_router.Outcome(0, None, lbx_router.Fault.BACKEND, None, None,
                                                  5, 0, 0, 1, 9)]
    assert glue._driver.backends.labels(0) == {"pool": "api"}


def test_the_glue_refuses_a_bad_config_with_inits_message(glue: pytypes.ModuleType) -> None:
    export = lbx_router.export(Learner)
    err = sys.modules["componentize_py_types"].Err
    with pytest.raises(err) as refused:
        export().init('{"bad": true}')
    assert "bad is not a setting" in refused.value.value
    with pytest.raises(err):
        export().init("{")


def test_the_request_reads_the_host_once_per_decision(glue: pytypes.ModuleType) -> None:
    req = HostReq("/a")
    wrapped = glue.HostRequest(req)
    assert wrapped.path() == "/a" and wrapped.path() == "/a" and req.reads == 1
    assert wrapped.header("X-Canary") == "1"


def test_the_hosts_services_are_installed(glue: pytypes.ModuleType) -> None:
    lbx_router.export(Learner)
    lbx_router.log(lbx_router.LogLevel.WARN, "w")
    h = sys.modules["wit_world.imports.host"]
    assert h.lines == [(h.LogLevel.WARN, "w")] and lbx_router.now_us() == 42
    with pytest.raises(lbx_router.KvError) as full:
        lbx_router.kv.set("k", b"v")
    assert full.value.reason == "store-full"
    assert lbx_router.kv.get("k") is None and not lbx_router.kv.delete("k")
