"""Tests of the lbx_router SDK itself, under plain CPython: stats layout, candidates, signals,
requests, decisions, configuration refusals, outcomes, kv/log/clock, and that the runtime modules
never import componentize-py's bindings.

Run: python3 -m pytest -q sdk/python
"""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lbx_router
from lbx_router import Backends, ConfigError, Fault, kv, testkit as t


class FirstCandidate(lbx_router.Router):
    """Picks the first candidate; counts outcomes when configured to."""

    def init(self, config: Any) -> None:
        self.learn = bool(config.get("learn", False))
        self.answers = 0
        self.seen: list[lbx_router.BackendInfo] = []

    def wants_outcomes(self) -> bool:
        return self.learn

    def backends_changed(self, backends: list[lbx_router.BackendInfo]) -> None:
        self.seen = backends

    def choose(self, request, backends, retry):  # type: ignore[no-untyped-def]
        candidates = backends.candidates(retry)
        return lbx_router.pick(candidates[0], tag=7) if candidates else lbx_router.no_opinion()

    def on_outcome(self, outcome: lbx_router.Outcome) -> None:
        self.answers += outcome.status is not None


def test_the_flat_stats_read_as_five_numbers_per_backend_in_wire_order() -> None:
    backends = Backends([1, 3, 7, 250, 0, 0, 1, 0, 0, 2, 9])  # a trailing partial is ignored
    assert len(backends) == 2
    assert backends[0] == lbx_router.BackendStats(True, 3, 7, 250, 0)
    assert not backends[1].healthy and backends[1].recent_failures == 2
    assert (backends.weight(0), backends.in_flight(0), backends.ewma_latency_us(0)) == (3, 7, 250)
    assert [b.flat() for b in t.backends(list(backends))] == [b.flat() for b in backends]
    with pytest.raises(IndexError):
        backends[2]


def test_candidates_are_healthy_and_untried_unless_every_healthy_one_was_tried() -> None:
    backends = t.backends([t.backend(), t.backend(False), t.backend(), t.backend()])
    assert backends.candidates() == [0, 2, 3]
    assert backends.candidates(t.retry([0, 3])) == [2]
    assert backends.candidates(t.retry([0, 2, 3])) == [0, 2, 3]
    assert backends.least_in_flight([]) is None
    assert t.backends(t.loads([3, 1, 1])).least_in_flight([0, 1, 2]) == 1


def test_signals_read_by_name_and_missing_values_are_none() -> None:
    names = ["queue", "kv_cache"]
    flat = t.signals(names, {0: (12.0, [3.0, 0.5])}, count=2)
    backends = t.backends(t.all_healthy(2), signal_names=names, signal_values=flat)
    assert backends.signal(0, "queue") == 3.0 and backends.signal(0, "kv_cache") == 0.5
    assert backends.signal_age_ms(0) == 12.0
    assert backends.signal(1, "queue") is None and backends.signal_age_ms(1) is None
    assert backends.signal(0, "unknown") is None
    assert t.backends(t.all_healthy(1)).signal(0, "queue") is None


def test_the_fake_request_answers_like_the_host() -> None:
    req = t.post("/v1/chat?x=1", headers={"Content-Type": "application/json",
                                            "Cookie": "a=1; session=abc"},
                 client="[::1]:5000", body={"model": "m"})
    assert (req.method(), req.path(), req.query()) == ("POST", "/v1/chat", "x=1")
    assert req.header("Content-TYPE") == "application/json" and req.header("x-no") is None
    assert req.cookie("session") == "abc" and req.cookie("none") is None
    assert (req.client_ip(), req.client_port(), req.client()) == ("::1", 5000, "[::1]:5000")
    assert req.body_json() == {"model": "m"}
    assert t.get("/").body_prefix() is None and t.get("/").body_json() is None
    assert t.post("/", body=b'{"trunc').body_json() is None
    assert t.post("/", body=b"\xff\xfe").body_json() is None


def test_a_pick_carries_its_options_and_a_plain_pick_has_none() -> None:
    plain = lbx_router.pick(2)
    assert not plain.has_options and t.attempt_order(plain) == [2]
    rich = lbx_router.pick(1, upstream_headers={"x-a": "1"}, downstream_headers=[("Set-Cookie", "s=1")],
                           fallbacks=[2, 0], retry_on=[503], rewrite="/v2", tag=9)
    assert rich.has_options and t.attempt_order(rich) == [1, 2, 0]
    assert lbx_router.pick(0, tag=1).has_options and lbx_router.pick(0, rewrite="/").has_options
    assert lbx_router.pick(0, retry_on=[429]).has_options
    assert t.upstream_header(rich, "X-A") == "1" and t.downstream_header(rich, "set-cookie") == "s=1"
    assert t.rejected(lbx_router.reject(429, {"retry-after": "2"})) == 429
    assert t.picked(lbx_router.no_opinion()) is None


def test_the_plugin_harness_parses_config_keeps_identities_and_delivers_outcomes() -> None:
    infos = [t.labeled("a", pool="api"), t.backend_info("b", "10.0.0.2:80")]
    plugin = t.Plugin(FirstCandidate, {"learn": True}, infos)
    decision = plugin.choose(t.get("/"), [t.backend(False), t.backend()])
    assert t.picked(decision) == 1
    assert plugin.router.seen == infos and plugin.driver.backends.labels(0) == {"pool": "api"}
    assert plugin.deliver(t.outcome_of(decision, 200, 900)) and plugin.router.answers == 1
    assert plugin.deliver(t.failed(1, Fault.BACKEND)) and plugin.router.answers == 1
    quiet = t.Plugin(FirstCandidate, {}, infos)
    assert not quiet.deliver(t.answered(0, 200, 1)) and quiet.router.answers == 0


def test_init_refusals_carry_the_message() -> None:
    class Strict(lbx_router.Router):
        def init(self, config: Any) -> None:
            raise ConfigError("seed must be a number")

    assert "seed must be a number" in (t.refusal(Strict, {}) or "")
    assert "not JSON" in (t.refusal(FirstCandidate, "{") or "")
    # The default init takes no configuration, and says so.
    assert t.refusal(lbx_router.Router, {}) is None
    assert "takes no configuration" in (t.refusal(lbx_router.Router, {"a": 1}) or "")


def test_kv_log_and_clock_run_in_memory_with_the_hosts_limits() -> None:
    host = t.fresh_host(max_bytes=64)
    kv.set("k", "v")
    assert kv.get("k") == b"v" and not kv.insert("k", b"w") and kv.get("k") == b"v"
    assert kv.increment("n") == 1 and kv.increment("n", 5) == 6 and kv.get("n") == (6).to_bytes(8, "little")
    assert kv.delete("k") and not kv.delete("k")
    with pytest.raises(lbx_router.KvError) as refused:
        kv.set("x" * 257, b"")
    assert refused.value.reason == "key-too-long"
    with pytest.raises(lbx_router.KvError) as full:
        kv.set("big", b"x" * 100)
    assert full.value.reason == "store-full"
    lbx_router.log(lbx_router.LogLevel.WARN, "hello")
    assert t.logs() == [(lbx_router.LogLevel.WARN, "hello")] and host.lines == t.logs()
    start = lbx_router.now_us()
    t.advance_clock(1500)
    assert lbx_router.now_us() - start == 1500


def test_export_outside_the_wasm_build_returns_the_class_and_refuses_a_non_router() -> None:
    assert lbx_router.export(FirstCandidate) is FirstCandidate
    with pytest.raises(TypeError):
        lbx_router.export(object)  # type: ignore[arg-type]


def test_the_sdk_imports_nothing_but_the_standard_library() -> None:
    # A fresh interpreter: importing the SDK and its test kit must not pull in the bindings.
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; import lbx_router, lbx_router.testkit; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('wit_world', 'componentize_py_types', 'lbx_router.component', 'pytest')] + "
            "[m for m in sys.modules if m == 'lbx_router.component']; print(bad); sys.exit(bool(bad))")
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
