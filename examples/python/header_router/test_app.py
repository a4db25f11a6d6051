"""Tests of the Python header router's rules on the SDK's native test kit (no Wasm build).

Run: python3 -m pytest -q examples/python/header_router
"""

from lbx_router import testkit as t

from app import HeaderRouter

CONFIG = {
    "default": {"version": "stable"},
    "rules": [
        {"path_prefix": "/api", "group": {"pool": "api"}},
        {"header": "x-canary", "equals": "1", "group": {"version": "canary"}},
    ],
}
# 0: stable, 1: canary, 2: api (also stable), 3: a second stable.
INFOS = [
    t.labeled("stable", version="stable"),
    t.labeled("canary", version="canary"),
    t.labeled("api", pool="api", version="stable"),
    t.labeled("stable-2", version="stable"),
]


def plugin() -> t.Plugin:
    return t.Plugin(HeaderRouter, CONFIG, INFOS)


def test_a_path_under_api_goes_to_the_api_pool() -> None:
    assert t.picked(plugin().choose(t.get("/api/users"), t.all_healthy(4))) == 2


def test_the_canary_header_goes_to_the_canary() -> None:
    request = t.get("/", headers={"X-Canary": "1"})
    assert t.picked(plugin().choose(request, t.all_healthy(4))) == 1


def test_another_canary_value_is_the_default_group() -> None:
    request = t.get("/", headers={"x-canary": "0"})
    assert t.picked(plugin().choose(request, t.loads([3, 0, 5, 1]))) == 3


def test_no_rule_is_the_default_group_least_in_flight_never_the_canary() -> None:
    decision = plugin().choose(t.get("/home"), t.loads([4, 0, 1, 2]))
    assert t.picked(decision) == 2


def test_a_down_backend_is_avoided() -> None:
    stats = [t.backend(), t.backend(), t.backend(healthy=False), t.backend(in_flight=9)]
    # The api pool's only member is down: the default group decides instead.
    assert t.picked(plugin().choose(t.get("/api/users"), stats)) == 0


def test_a_retry_avoids_the_backend_already_tried() -> None:
    decision = plugin().choose(t.get("/home"), t.loads([0, 0, 5, 7]), t.retry([0]))
    assert t.picked(decision) == 2


def test_a_group_with_nobody_usable_leaves_the_choice_to_lbx() -> None:
    stats = [t.backend(False), t.backend(), t.backend(False), t.backend(False)]
    assert t.picked(plugin().choose(t.get("/home"), stats)) is None


def test_a_bad_config_is_refused_naming_the_rule() -> None:
    refusal = t.refusal(HeaderRouter, {"rules": [{"path_prefix": "/a", "header": "x"}]})
    assert refusal is not None and "rules[0] needs exactly one of" in refusal
    assert "percent 150" in (t.refusal(HeaderRouter, {"rules": [
        {"percent": 150, "group": {"v": "c"}}]}) or "")
    assert "group is empty" in (t.refusal(HeaderRouter, {"rules": [{"path_prefix": "/"}]}) or "")
    assert t.refusal(HeaderRouter, "not json") is not None
    assert t.refusal(HeaderRouter, CONFIG) is None


def test_init_logs_the_number_of_rules() -> None:
    t.fresh_host()
    plugin()
    assert any("2 rules" in line for _, line in t.logs())
